"""Salesforce through the guard: sync into the store, decide the stories, write flags and tasks."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from connectors.base import MemoryBookmarks
from guard.crm.sync import StoreBookmarks, run_sync
from guard.crm.writeback import flags_watermark, pending_flag_updates, push_tasks, write_flags
from guard.store.tables import crm_writes, ledger, people, records
from tests.connectors.salesforce.conftest import make_connector as make_salesforce
from tests.connectors.salesforce.org import REP_USER, build_dealer_org
from tests.crm.conftest import check


@pytest.fixture
def synced(org, salesforce, guard):
    ids = build_dealer_org(org)
    # Ben's colleague: no case, no opt-out, only the company's contract speaks for him.
    ids["carl"] = org.insert("Contact", Name="Carl Ode", Email="carl@acme.example",
                             AccountId=ids["acme"], OwnerId=REP_USER, HasOptedOutOfEmail=False,
                             DoNotCall=False)
    org.advance(minutes=5)
    summary, rejected = run_sync(guard, salesforce)
    assert (summary.stopped, rejected) == (None, [])
    return ids


STORIES = [
    ("anna", dict(channel="email", purpose="price_offer", sender="oem", product="audi-a4"),
     "block", "purchase-cooldown"),
    ("anna", dict(channel="email", purpose="trade_in", sender="sales"),
     "block", "replacement-cycle"),
    ("carl", dict(channel="call", purpose="prospecting", sender="sales"),
     "reroute", "existing-customer"),
    ("ben", dict(channel="email", purpose="newsletter", sender="oem"), "block", "consent"),
    ("anna", dict(channel="call", purpose="service_reminder", sender="service"),
     "block", "consent"),
    ("ben", dict(channel="call", purpose="promotion", sender="oem"), "block", "open-complaint"),
]


@pytest.mark.parametrize("who, attempt, verdict, rule", STORIES, ids=[
    "no-sale-on-the-car-just-bought", "no-trade-in-for-a-ten-year-driver",
    "no-cold-call-into-a-company-under-contract", "email-opt-out", "do-not-call",
    "no-marketing-during-an-open-case"])
def test_salesforce_data_alone_decides_the_stories(synced, guard, who, attempt, verdict, rule):
    got, rules = check(guard, {"salesforce": synced[who]}, **attempt)

    assert rule in rules
    assert got == verdict


def test_a_case_deleted_in_salesforce_no_longer_blocks(synced, org, guard):
    org.delete(synced["case"])
    org.advance(minutes=1)

    summary, rejected = run_sync(guard, make_salesforce(org))

    assert summary.deleted["Case"] == 1 and rejected == []
    _, rules = check(guard, {"salesforce": synced["ben"]}, channel="call", purpose="promotion",
                     sender="oem")
    assert "open-complaint" not in rules


def _stored(engine):
    with engine.connect() as conn:
        keys = conn.execute(sa.select(records.c.type, records.c.source_system,
                                      records.c.source_type, records.c.source_id)).all()
        touches = conn.execute(sa.select(sa.func.count()).select_from(ledger)
                               .where(ledger.c.source.is_not(None))).scalar()
    return keys, touches


def test_a_sync_that_crashes_midway_resumes_without_losing_or_duplicating(org, guard, engine):
    build_dealer_org(org)
    org.advance(minutes=5)
    expected = set()
    for batch in make_salesforce(org).sync(MemoryBookmarks()):
        expected |= {(e["type"], e["source"]["system"], e["source"].get("type", ""),
                      e["source"]["id"]) for e in batch.events if not e.get("deleted")}
    real_ingest, calls = guard.ingest, []

    def ingest_then_crash(events):
        calls.append(len(events))
        if len(calls) == 5:
            raise RuntimeError("the store went away")
        return real_ingest(events)

    guard.ingest = ingest_then_crash
    with pytest.raises(RuntimeError):
        run_sync(guard, make_salesforce(org))
    saved = StoreBookmarks(engine, "salesforce").all()
    guard.ingest = real_ingest

    summary, rejected = run_sync(guard, make_salesforce(org))

    assert saved, "some batches were stored (and bookmarked) before the crash"
    assert (summary.stopped, rejected) == (None, [])
    keys, touches = _stored(engine)
    assert len(keys) == len(set(keys))
    assert set(keys) == expected
    assert touches == len([key for key in expected if key[0] == "touch"])


def _flags_of(org, record_id):
    record = org.record(record_id)
    return record.get("Guard_Status__c"), record.get("Guard_Flags__c")


def test_flags_are_written_once_and_again_only_when_they_change(synced, org, salesforce, guard,
                                                                engine):
    first = write_flags(guard, salesforce)
    org.collections.clear()
    second = write_flags(guard, salesforce)

    assert (first, second) == (4, 0)
    assert org.collections == []
    status, flags = _flags_of(org, synced["anna"])
    assert status == "Caution"
    assert "Existing customer: Acme Logistics contract until 2027-03-31" in flags
    assert "In purchase cool-down until 2026-12-21" in flags
    with engine.connect() as conn:
        hashes = dict(conn.execute(sa.select(crm_writes.c.record_id,
                                             crm_writes.c.flags_hash)).all())
        current = {p["crm_ids"]["salesforce"]: h for p, h in conn.execute(
            sa.select(people.c.profile, people.c.flags_hash)).all()}
    assert hashes == current

    # Our own write comes back on the next sync (SystemModstamp moved): nothing to write.
    org.advance(minutes=1)
    org.update(synced["lead"], HasOptedOutOfEmail=True)
    org.advance(minutes=1)
    run_sync(guard, salesforce)
    org.collections.clear()

    assert write_flags(guard, salesforce) == 1
    assert org.collections == [("PATCH", 1)]
    assert _flags_of(org, synced["lead"])[1].startswith("Opted out of email")


def test_a_failed_record_is_written_on_a_later_push(synced, org, salesforce, guard, clock):
    # The integration user cannot see one plugin field on Lead: Salesforce refuses the
    # Lead write whole (INVALID_FIELD), which an admin can fix.
    org.schema["Lead"].discard("Guard_Updated__c")

    assert write_flags(guard, salesforce) == 3
    assert any(synced["lead"] in error and "INVALID_FIELD" in error
               for error in salesforce.write_errors)
    clock.advance(hours=1)
    # The lead was not recorded as written, so it is tried again (and only it).
    assert [u.record_id for u, _, _ in pending_flag_updates(
        guard, "salesforce", since=flags_watermark(guard, "salesforce"))] == [synced["lead"]]
    org.schema["Lead"].add("Guard_Updated__c")
    assert write_flags(guard, salesforce) == 1


def test_a_record_purged_from_salesforce_is_skipped_not_offered_again(synced, org, salesforce,
                                                                     guard, clock):
    org.delete(synced["lead"])
    org.purge(synced["lead"])  # gone from Salesforce before the guard heard of it

    assert write_flags(guard, salesforce) == 3
    assert salesforce.write_errors == []
    assert any(synced["lead"] in line for line in salesforce.write_skipped)
    clock.advance(hours=1)
    assert pending_flag_updates(
        guard, "salesforce", since=flags_watermark(guard, "salesforce")) == []


def test_an_owner_task_is_created_once_on_the_contact_and_marked_done(synced, org, salesforce,
                                                                      guard):
    decision = guard.check({"to": {"salesforce": synced["carl"]}, "channel": "call",
                            "purpose": "prospecting", "sender": "sales",
                            "at": "2026-11-23T10:00:00Z"})
    assert decision.verdict == "reroute"

    def mark_then_crash(*args, **kwargs):
        raise RuntimeError("crashed before marking the task done")

    real_mark, guard.mark_task_done = guard.mark_task_done, mark_then_crash
    with pytest.raises(RuntimeError):
        push_tasks(guard, salesforce)
    guard.mark_task_done = real_mark
    again = push_tasks(guard, salesforce)
    third = push_tasks(guard, salesforce)

    person = guard.person(decision.person)
    tasks = [t for t in org.tables["Task"].values() if t.get("Guard_Dedupe_Key__c")]
    assert (again, third) == (0, 0)
    assert sorted(t["Guard_Dedupe_Key__c"] for t in tasks) == sorted(
        t["dedupe_key"] for t in person["tasks"])
    assert {t["status"] for t in person["tasks"]} == {"done"}
    for task in tasks:
        assert task["WhoId"] == synced["carl"]
        assert task["OwnerId"] == REP_USER, "rerouted to the account owner, a Salesforce user"
        assert task["Subject"].startswith("Contact Guard: prospecting by call rerouted to you")
