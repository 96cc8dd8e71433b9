"""The Guard: check attempts, screen lists, ingest events, look up decisions and people.

The HTTP API, the proxy, the worker and the CLI reach the store through one
``Guard(engine, policy, clock)``. Its checks have one path: a single check
is a batch of one. A batch's attempts are read (``facts.read_facts``),
decided in order, and recorded in one transaction; concurrent callers of one
process share that transaction (group commit, ``batching``).

A committed check is race-free: it reads the person's profile and ledger,
decides and writes the ledger in one transaction that holds the person's
lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT … FOR UPDATE`` on the
person row), so concurrent sends can never exceed a frequency cap. A recipient
who matches no person has no ledger to count (their decision reads only
erasures and bare consents), so their check locks nothing.
"""

from __future__ import annotations

import os
from bisect import insort
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection, Engine

from guard.checks import lookups, tasks
from guard.checks.attempts import read_attempt, read_template
from guard.checks.batching import Batcher, Job
from guard.checks.facts import Facts, read_facts
from guard.config import ConfigurationError
from guard.errors import InvalidField
from guard.ingest import erasure
from guard.ingest import writer as event_writer
from guard.ingest.identity import Ref, erased_recipient, reference
from guard.ingest.people import resolve_person
from guard.store import ledger as contact_ledger
from guard.store.engine import read_only
from guard.store.util import utc_now
from policies import decide
from policies.model import Attempt, Decision, LedgerEntry

SCREEN_BATCH = 500
BATCH_LIMIT = 256  # checks of concurrent callers in one transaction, at most
# Check transactions of one process at once on PostgreSQL, whose row locks keep caps exact
# while their round trips overlap; SQLite has one writer at a time, so one there. With the
# database on the same few cores, GUARD_CHECK_LANES=1 makes bigger shared transactions.
CHECK_LANES = 2


@dataclass(slots=True)
class _Item:
    """One parsed attempt of a batch, and its outcome once decided."""

    index: int
    target: Ref
    attempt: Attempt
    timed: bool
    commit: bool
    outcome: Decision | InvalidField | None = None


def _entry_time(entry: LedgerEntry) -> datetime:
    return entry.at


def _noting_via(via: str, then: Callable[[Connection, list], Any] | None
                ) -> Callable[[Connection, list], Any]:
    """Return a ``then`` hook that records ``via`` on the decisions, then runs ``then``."""
    def note(conn: Connection, outcomes: list) -> Any:
        contact_ledger.mark_via(conn, [o.decision_id for o in outcomes
                                       if isinstance(o, Decision) and o.decision_id], via)
        return then(conn, outcomes) if then is not None else None
    return note


class Guard:
    """The service's one entry point to the store and the policy."""

    def __init__(self, engine: Engine, policy, clock: Callable[[], datetime] | None = None,
                 *, check_lanes: int = CHECK_LANES, erasure_key: str | bytes | None = None):
        self.engine = engine
        self.policy = policy
        self.clock = clock or utc_now
        # GUARD_ERASURE_SALT: the secret of the keyed hashes erasure keeps; never in the store.
        key = erasure_key or os.environ.get(erasure.SETTING) or None
        self._erasure_key = key.encode() if isinstance(key, str) else key
        # Told of every batch of decisions inside the transaction that records it, so an
        # observer (metrics) sees a decision once it is written and never one rolled back.
        self.recorders: list[Callable[[Connection, list[tuple[Decision, Attempt, bool]]],
                                      None]] = []
        # Concurrent checks of this process share transactions (group commit).
        self._batcher = Batcher(self._run_jobs, limit=BATCH_LIMIT,
                                lanes=1 if engine.dialect.name == "sqlite" else check_lanes)

    # -- events -----------------------------------------------------------------------

    def ingest(self, events: list[Mapping]) -> dict:
        """Store a batch of events (SPEC §6); return accepted count and rejections."""
        with self.engine.begin() as conn:
            return event_writer.ingest(conn, list(events), self.policy, self.clock(),
                                       self._erasure_key)

    def erasure_salt(self) -> bytes | None:
        """Return the secret key of erasure hashes (GUARD_ERASURE_SALT), or None when unset."""
        return self._erasure_key

    def verify_erasure_key(self) -> None:
        """Refuse to start without the right erasure key once anyone was erased; adopt it.

        A store that kept its own salt (before the key had to live outside it)
        loses that copy here, once the key configured is that salt.
        """
        with read_only(self.engine.connect()) as conn:
            state = erasure.key_state(conn)
        problem = erasure.key_problem(state, self._erasure_key)
        if problem:
            raise ConfigurationError(f"{erasure.SETTING}: {problem}")
        if state.stored_salt is not None or (
                self._erasure_key is not None and state.erased and state.check is None):
            with self.engine.begin() as conn:
                # Read again under the write lock: another process may have adopted it.
                state = erasure.key_state(conn)
                if erasure.key_problem(state, self._erasure_key) is None:
                    erasure.adopt_key(conn, state, self._erasure_key)

    # -- checks -----------------------------------------------------------------------

    def template(self, body: Mapping | None, defaults: Mapping | None = None) -> dict:
        """Validate the fields of an attempt but its recipient; raise InvalidField."""
        return read_template(self.policy, body, defaults)

    def check(self, body: Mapping, *, commit: bool = True,
              defaults: Mapping | None = None, via: str | None = None) -> Decision:
        """Decide one attempt (SPEC §5 fields); record it; commit counts it toward caps."""
        [outcome] = self.check_many([body if body is not None else {}], commit=commit,
                                    defaults=defaults, via=via)
        if isinstance(outcome, InvalidField):
            raise outcome
        return outcome

    def check_many(self, bodies: Sequence[Mapping], *, commit: bool = True,
                   defaults: Mapping | None = None,
                   then: Callable[[Connection, list], Any] | None = None,
                   via: str | None = None) -> list[Decision | InvalidField]:
        """Decide many attempts in one transaction; a bad one is an InvalidField in its place.

        Attempts to the same person see each other in order, as separate
        checks would (the second of two to one person counts the first toward
        caps). ``then(conn, outcomes)`` runs inside the same transaction after
        the decisions are written, so what it stores (an outbox row) commits
        with them or not at all. ``via`` names the integration the attempts came
        through (``hubspot_workflow``); the ledger keeps it with each decision.
        """
        if via is not None:
            then = _noting_via(via, then)
        outcomes: list[Any] = [None] * len(bodies)
        items = []
        now = self.clock()
        for index, body in enumerate(bodies):
            try:
                template = self.template(body, defaults)
                target, attempt = read_attempt(self.policy, template, body.get("to"), now)
            except InvalidField as exc:
                outcomes[index] = exc
                continue
            items.append(_Item(index, target, attempt, timed=template["at"] is not None,
                               commit=commit))
        return self._batcher.submit(Job(items, then, outcomes))

    def screen(self, attempt: Mapping, recipients: Iterable[Any], *,
               commit: bool = False) -> Iterator[tuple[Any, Decision | InvalidField]]:
        """Decide one attempt template for many recipients, streaming (recipient, outcome)."""
        template = self.template(attempt, None)
        batch: list[Any] = []
        for recipient in recipients:
            batch.append(recipient)
            if len(batch) >= SCREEN_BATCH:
                yield from self._screen_batch(template, batch, commit)
                batch = []
        if batch:
            yield from self._screen_batch(template, batch, commit)

    def _screen_batch(self, template: Mapping, recipients: list[Any], commit: bool
                      ) -> Iterator[tuple[Any, Decision | InvalidField]]:
        """Decide a batch of one template's recipients and yield (recipient, outcome)."""
        outcomes: list[Any] = []
        items = []
        now = self.clock()
        for index, recipient in enumerate(recipients):
            try:
                target, attempt = read_attempt(self.policy, template, recipient, now)
            except InvalidField as exc:
                outcomes.append(exc)
                continue
            outcomes.append(None)
            items.append(_Item(index, target, attempt, timed=template["at"] is not None,
                               commit=commit))
        if commit:
            outcomes = self._batcher.submit(Job(items, None, outcomes))
        elif items:
            # A dry run reads outside the write lock and holds it only to record.
            with read_only(self.engine.connect()) as conn:
                recorded = self._decide(conn, items)
            with self.engine.begin() as conn:
                self._record(conn, recorded)
            for item in items:
                outcomes[item.index] = item.outcome
        yield from zip(recipients, outcomes, strict=True)

    def _run_jobs(self, jobs: list[Job]) -> None:
        """Decide every item of ``jobs`` in one transaction, then run their hooks."""
        items = [item for job in jobs for item in job.items]
        if not items and all(job.then is None for job in jobs):
            return  # every attempt was invalid: nothing to read, write or lock
        with self.engine.begin() as conn:
            if items:
                self._record(conn, self._decide(conn, items))
            for job in jobs:
                for item in job.items:
                    job.result[item.index] = item.outcome
                if job.then is not None:
                    job.then(conn, job.result)

    def _decide(self, conn: Connection, items: list[_Item]
                ) -> list[tuple[Decision, Attempt, bool]]:
        """Read and decide ``items`` in order; return what to record (decision, attempt, commit).

        The decision time is read once the people's locks are held, so a check
        that waited for another one sees that one's contact as past.
        """
        window = self.policy.ledger_window
        # The clock only moves on while this waits for locks, so entries from this
        # provisional ``since`` on include every one the decisions can count.
        earliest = min([self.clock(), *(i.attempt.at for i in items if i.timed)]) - window
        facts = read_facts(conn, [i.target for i in items], since=earliest,
                           campaign_ids=[i.attempt.campaign for i in items],
                           lock={i.target for i in items if i.commit},
                           erasure_key=self._erasure_key)
        now = self.clock()
        recorded: list[tuple[Decision, Attempt, bool]] = []
        for item in items:
            attempt = item.attempt if item.timed else replace(item.attempt, at=now)
            outcome = self._decide_one(facts, item.target, attempt, now)
            item.outcome = outcome
            if isinstance(outcome, InvalidField):
                continue
            erased = item.target in facts.erased
            recorded.append((outcome, replace(attempt, to=erased_recipient(
                self._erasure_key, item.target)) if erased else attempt, item.commit))
            person_id = facts.people_of.get(item.target)
            if item.commit and person_id in facts.entries:
                # Counted at once: a later item of the batch to the same person sees it.
                insort(facts.entries[person_id], LedgerEntry(
                    at=contact_ledger.utc(attempt.at), channel=attempt.channel,
                    purpose=attempt.purpose, sender=attempt.sender, campaign=attempt.campaign,
                    template=attempt.template, product=attempt.product,
                    verdict=outcome.verdict), key=_entry_time)
        return recorded

    def _decide_one(self, facts: Facts, target: Ref, attempt: Attempt,
                    now: datetime) -> Decision | InvalidField:
        """Decide one attempt from the batch's facts; a person reference to no one is invalid."""
        profile, entries = facts.profile_of(target)
        if profile is not None:
            since = min(now, attempt.at) - self.policy.ledger_window
            entries = [e for e in entries if e.at >= since]
        elif target.kind == "person":
            return InvalidField("to", f"no person {target.value}")
        else:
            profile = facts.stranger(target)
        found = {attempt.campaign: facts.campaigns[attempt.campaign]} \
            if attempt.campaign in facts.campaigns else {}
        decision = decide(attempt, profile, entries, self.policy, now, found)
        return decision.with_id(contact_ledger.new_decision_id())

    def _record(self, conn: Connection, recorded: list[tuple[Decision, Attempt, bool]]) -> None:
        """Write decided attempts to the ledger, and committed ones' owner tasks."""
        now = self.clock()
        for committed in (True, False):
            rows = [(d, a) for d, a, c in recorded if c is committed]
            if rows:
                contact_ledger.record_many(conn, rows, committed=committed, now=now)
        tasks.record_tasks(conn, [(d, a) for d, a, committed in recorded if committed], now)
        for recorder in self.recorders:
            recorder(conn, recorded)

    # -- look-ups ---------------------------------------------------------------------

    def decision(self, decision_id: str) -> dict:
        """Return a recorded decision (SPEC §4) with its attempt and time; raise NotFound."""
        return lookups.decision(self.engine, decision_id)

    def resolve(self, to: Any) -> str | None:
        """Return the id of the person a recipient or reference names, or None."""
        try:
            target = reference(to, self.policy.defaults.region)
        except ValueError as exc:
            raise InvalidField("to", str(exc)) from None
        with read_only(self.engine.connect()) as conn:
            return resolve_person(conn, target)

    def person(self, person_id: str, *, ledger_limit: int = 50) -> dict:
        """Return a person's merged profile, flags, recent ledger and tasks; raise NotFound."""
        return lookups.person(self.engine, person_id, ledger_limit=ledger_limit)

    def pending_tasks(self, limit: int = 100) -> list[dict]:
        """Return open owner tasks, oldest first, with the person's CRM ids for write-back."""
        return tasks.pending(self.engine, limit)

    def mark_task_done(self, task_id: str, result: Mapping | None = None, *,
                       failed: bool = False) -> None:
        """Record that a task reached the CRM (or failed for good); raise NotFound."""
        tasks.mark_done(self.engine, task_id, self.clock(), result, failed=failed)

    def flag_updates(self, since: datetime | None = None, limit: int = 1000) -> list[dict]:
        """Return people whose flags changed after ``since``, with their CRM ids."""
        return lookups.flag_updates(self.engine, since, limit)
