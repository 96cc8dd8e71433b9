"""Batched checks: many attempts in one transaction decide as if checked one by one."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter

import pytest
import sqlalchemy as sa

from guard.checks.batching import Batcher, Job
from guard.checks.service import Guard
from guard.errors import InvalidField
from guard.store.engine import make_engine
from guard.store.tables import ledger
from policies import parse_policy
from tests.conftest import NOW, accepted, person

from .conftest import CAP, CAP_POLICY

NEWSLETTER = {"channel": "email", "purpose": "newsletter", "sender": "oem"}


@pytest.fixture
def capped(engine):
    guard = Guard(engine, parse_policy([("cap.yaml", CAP_POLICY)]), clock=lambda: NOW)
    accepted(guard.ingest([person("003A", "anna@example.com"),
                           person("003B", "ben@example.com")]))
    return guard


def _ledger_rows(guard, committed=True):
    with guard.engine.connect() as conn:
        return conn.execute(sa.select(ledger.c.person_id, ledger.c.verdict)
                            .where(ledger.c.committed.is_(committed))).all()


def test_a_batch_counts_its_own_earlier_attempts_toward_the_cap(capped):
    bodies = [{**NEWSLETTER, "to": to} for to in ["anna@example.com", "ben@example.com"] * 5]
    outcomes = capped.check_many(bodies)
    anna = [d.verdict for d in outcomes[0::2]]
    ben = [d.verdict for d in outcomes[1::2]]
    assert anna == ["allow"] * CAP + ["block"] * (5 - CAP)
    assert ben == anna
    assert outcomes[2 * CAP].rules == ("cap",)
    # Every decision is in the ledger, counted, and can be looked up by its id.
    assert Counter(v for _, v in _ledger_rows(capped)) == {"allow": 2 * CAP,
                                                           "block": 2 * (5 - CAP)}
    assert capped.decision(outcomes[0].decision_id)["verdict"] == "allow"
    # The next single check sees the batch as past contacts.
    assert capped.check({**NEWSLETTER, "to": "anna@example.com"}).verdict == "block"


def test_a_batch_matches_the_same_checks_made_one_by_one(engine, policy):
    from tests.conftest import purchase

    events = [person("003A", "anna@example.com", owner="dealer:muc"),
              purchase("P1", {"email": "anna@example.com"}),
              person("003B", "ben@example.com", do_not_market_until="2027-01-01")]
    bodies = [
        {**NEWSLETTER, "to": "anna@example.com"},
        {"channel": "email", "purpose": "price_offer", "sender": "oem",
         "to": "anna@example.com", "product": "audi-a4"},
        {**NEWSLETTER, "to": "ben@example.com"},
        {**NEWSLETTER, "to": "stranger@example.com"},
        {"channel": "sms", "purpose": "service_reminder", "sender": "dealer:muc",
         "to": "+4917012345678"},
        {**NEWSLETTER, "to": "anna@example.com"},
    ]
    one = Guard(engine, policy, clock=lambda: NOW)
    accepted(one.ingest(events))
    singly = [one.check(b) for b in bodies]
    with engine.begin() as conn:
        conn.execute(sa.delete(ledger))
    batched = one.check_many(bodies)
    assert [(d.verdict, d.rules, d.person) for d in batched] == \
        [(d.verdict, d.rules, d.person) for d in singly]
    assert {d.verdict for d in singly} >= {"allow", "block"}


def test_a_bad_attempt_is_an_error_in_its_place_and_the_rest_is_decided(capped):
    outcomes = capped.check_many([
        {**NEWSLETTER, "to": "anna@example.com"},
        {**NEWSLETTER, "to": "not an address"},
        {**NEWSLETTER, "to": {"person": "per_nobody"}},
        {**NEWSLETTER, "channel": "pigeon", "to": "ben@example.com"},
        {**NEWSLETTER, "to": "ben@example.com"},
    ])
    assert outcomes[0].verdict == outcomes[4].verdict == "allow"
    assert [(o.field, type(o)) for o in outcomes[1:4]] == [("to", InvalidField),
                                                           ("to", InvalidField),
                                                           ("channel", InvalidField)]
    assert "no person per_nobody" in outcomes[2].detail
    assert len(_ledger_rows(capped)) == 2


def test_the_hook_commits_with_the_decisions_or_neither_is_stored(capped):
    seen = []

    def hook(conn, outcomes):
        seen.append([o.verdict for o in outcomes])
        raise RuntimeError("outbox full")

    with pytest.raises(RuntimeError, match="outbox full"):
        capped.check_many([{**NEWSLETTER, "to": "anna@example.com"}] * 2, then=hook)
    assert seen == [["allow", "allow"]]
    assert _ledger_rows(capped) == []
    # Nothing was counted: the cap still has all its room.
    assert [d.verdict for d in capped.check_many(
        [{**NEWSLETTER, "to": "anna@example.com"}] * 4)] == ["allow"] * CAP + ["block"]


def test_a_dry_run_batch_records_uncounted_decisions(capped):
    outcomes = capped.check_many([{**NEWSLETTER, "to": "anna@example.com"}] * 5, commit=False)
    # Dry runs never count, so each one alone has the whole cap before it.
    assert [d.verdict for d in outcomes] == ["allow"] * 5
    assert len(_ledger_rows(capped, committed=False)) == 5
    assert _ledger_rows(capped) == []


def test_a_committed_screen_holds_the_cap_within_one_list(capped):
    recipients = ["anna@example.com"] * 5 + ["ben@example.com", "x"]
    results = list(capped.screen(NEWSLETTER, recipients, commit=True))
    verdicts = [getattr(o, "verdict", None) for _, o in results]
    assert verdicts == ["allow"] * CAP + ["block"] * (5 - CAP) + ["allow", None]
    assert isinstance(results[-1][1], InvalidField)


# -- group commit ---------------------------------------------------------------------


def test_jobs_that_arrive_while_a_batch_runs_share_the_next_one():
    release = threading.Event()
    batches: list[list[str]] = []

    def run(jobs):
        batches.append([job.items[0] for job in jobs])
        if len(batches) == 1:
            release.wait(5)
        for job in jobs:
            job.result = job.items[0].upper()

    batcher = Batcher(run)
    answers = {}

    def submit(name):
        answers[name] = batcher.submit(Job([name]))

    first = threading.Thread(target=submit, args=("a",))
    first.start()
    while not batches:
        time.sleep(0.001)
    others = [threading.Thread(target=submit, args=(n,)) for n in "bcd"]
    for t in others:
        t.start()
    while len(batcher._queue) < 3:
        time.sleep(0.001)
    release.set()
    for t in [first, *others]:
        t.join(5)
    assert batches[0] == ["a"]
    assert sorted(batches[1]) == ["b", "c", "d"] and len(batches) == 2
    assert answers == {"a": "A", "b": "B", "c": "C", "d": "D"}


def test_a_failing_job_fails_only_its_own_caller(capped):
    """A batch whose hook fails is re-run job by job: the others still land."""
    capped._batcher.lanes = 1  # PostgreSQL runs two batches at once; this needs one queue
    gate = threading.Event()
    entered = threading.Event()
    outcomes: dict[str, object] = {}

    def slow(conn, _):
        entered.set()
        gate.wait(5)

    def broken(conn, _):
        raise RuntimeError("broken hook")

    def call(name, to, hook):
        try:
            outcomes[name] = capped.check_many([{**NEWSLETTER, "to": to}], then=hook)[0].verdict
        except RuntimeError as exc:
            outcomes[name] = str(exc)

    first = threading.Thread(target=call, args=("first", "anna@example.com", slow))
    first.start()
    entered.wait(5)
    later = [threading.Thread(target=call, args=("good", "ben@example.com", None)),
             threading.Thread(target=call, args=("bad", "anna@example.com", broken))]
    for t in later:
        t.start()
    while len(capped._batcher._queue) < 2:
        time.sleep(0.001)
    gate.set()
    for t in [first, *later]:
        t.join(10)
    assert outcomes == {"first": "allow", "good": "allow", "bad": "broken hook"}
    assert sorted(p for p, _ in _ledger_rows(capped)) == sorted(
        [capped.resolve("anna@example.com"), capped.resolve("ben@example.com")])


@pytest.mark.parametrize("lanes", [1, 4])
def test_threads_checking_at_once_allow_exactly_the_cap(capped, lanes):
    capped._batcher.lanes = lanes  # one batch at a time, or several side by side
    verdicts: list[str] = []
    start = threading.Barrier(8)

    def send():
        start.wait(5)
        for _ in range(3):
            verdicts.append(capped.check({**NEWSLETTER, "to": "anna@example.com"}).verdict)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert Counter(verdicts) == {"allow": CAP, "block": 24 - CAP}


def send_batches(url: str, start_at: float) -> list[str]:
    """In a fresh process: commit batches that share people with the other processes."""
    engine = make_engine(url)
    guard = Guard(engine, parse_policy([("cap.yaml", CAP_POLICY)]))
    guard.erasure_salt()
    time.sleep(max(0.0, start_at - time.time()))
    verdicts = []
    for order in (["anna@example.com", "ben@example.com"], ["ben@example.com",
                                                              "anna@example.com"]) * 2:
        verdicts += [d.verdict for d in guard.check_many(
            [{**NEWSLETTER, "to": to} for to in order])]
    engine.dispose()
    return verdicts


def test_batches_from_several_processes_hold_the_cap_without_deadlock(db_url, capped):
    context = multiprocessing.get_context("spawn")
    with context.Pool(3) as pool:
        start_at = time.time() + 3
        results = pool.starmap(send_batches, [(db_url, start_at)] * 3)
    verdicts = Counter(v for result in results for v in result)
    assert verdicts == {"allow": 2 * CAP, "block": 3 * 8 - 2 * CAP}


def test_a_batch_makes_one_task_per_owner_rule_and_day(store):
    accepted(store.ingest([person("003A", "anna@example.com", stage="customer",
                                  owner="dealer:munich"),
                           person("003B", "ben@example.com", stage="customer",
                                  owner="dealer:berlin")]))
    offer = {**NEWSLETTER, "purpose": "upgrade_offer"}
    outcomes = store.check_many([{**offer, "to": "anna@example.com"},
                                 {**offer, "to": "ben@example.com"},
                                 {**offer, "to": "anna@example.com"}])
    assert [d.verdict for d in outcomes] == ["reroute"] * 3
    tasks = store.pending_tasks()
    assert sorted(t["owner"] for t in tasks) == ["dealer:berlin", "dealer:munich"]
    # A later batch the same day adds none.
    store.check_many([{**offer, "to": "ben@example.com"}] * 2)
    assert len(store.pending_tasks()) == 2
