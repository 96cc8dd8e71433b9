"""The Guard façade: ingest events, check attempts, screen lists, look up decisions and people.

Everything the HTTP API, the proxy, the worker and the CLI do with the store
goes through one ``Guard(engine, policy, clock)``.

A committed check is race-free: it reads the person's profile and ledger,
decides and writes the ledger in one transaction that holds the person's
lock (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT … FOR UPDATE`` on the
person row), so concurrent sends can never exceed a frequency cap. A recipient
who matches no person has no ledger to count (their decision reads only
erasures and bare consents), so their check locks nothing.
"""

from __future__ import annotations

import os
import secrets
from bisect import insort
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

from guard.checks.batching import Batcher, Job
from guard.config import ConfigurationError
from guard.errors import GuardError, InvalidField, NotFound
from guard.ingest import erasure
from guard.ingest import events as event_store
from guard.ingest.events import resolve_person
from guard.ingest.identity import (
    ID_MAX,
    SENDER_MAX,
    Ref,
    erased_recipient,
    erasure_hash,
    identifier,
    reference,
)
from guard.store import ledger as contact_ledger
from guard.store.codec import loads_json
from guard.store.engine import read_only
from guard.store.tables import campaigns, erasures, identities, ledger, owner_tasks, people, records
from policies import decide
from policies.model import (
    Attempt,
    Campaign,
    Consent,
    Decision,
    Evidence,
    LedgerEntry,
    Profile,
    parse_datetime,
)

SCREEN_BATCH = 500
BATCH_LIMIT = 256  # checks of concurrent callers in one transaction, at most
# Check transactions of one process at once on PostgreSQL, whose row locks keep caps exact
# while their round trips overlap; SQLite has one writer at a time, so one there. With the
# database on the same few cores, one lane makes bigger shared transactions instead
# (GUARD_CHECK_LANES=1: +15-20 % concurrent checks/s with both on two cores).
CHECK_LANES = 2
TASK_OPEN, TASK_DONE, TASK_FAILED = "open", "done", "failed"

# The check path's statements, built once: reused with new parameters, they skip
# SQLAlchemy's per-call construction and cache-key work (half of a check's time before).
# A known recipient in one query: their profile (as text, decoded once) with their
# committed ledger entries since :since, one row per entry (or one row without).
_PROFILE_AND_LEDGER = (
    sa.cast(people.c.profile, sa.Text).label("profile"), people.c.id,
    # The attempt's campaign (NULL without one) rides along in the same query.
    sa.cast(sa.select(campaigns.c.campaign).where(campaigns.c.id == sa.bindparam("campaign"))
            .scalar_subquery(), sa.Text).label("campaign_record"),
    *contact_ledger.ENTRY_COLUMNS)
_SINCE = sa.bindparam("since", type_=ledger.c.at.type)
_PERSON_BY_IDENTITY = (
    sa.select(*_PROFILE_AND_LEDGER)
    .select_from(identities.join(people, people.c.id == identities.c.person_id)
                 .outerjoin(ledger, contact_ledger.counted_since(people.c.id, _SINCE)))
    .where(identities.c.kind == sa.bindparam("kind"),
           identities.c.value == sa.bindparam("value"))
    .order_by(ledger.c.at)
)
_PERSON_BY_ID = (
    sa.select(*_PROFILE_AND_LEDGER)
    .select_from(people.outerjoin(ledger, contact_ledger.counted_since(people.c.id, _SINCE)))
    .where(people.c.id == sa.bindparam("person_id"))
    .order_by(ledger.c.at)
)
# PostgreSQL: a committed check first takes the person's row lock, held until it has
# written. Its own statement: a statement that waited for the lock still reads the
# snapshot from before the wait, and so would miss the contact the holder just wrote.
_LOCK_BY_IDENTITY = (
    sa.select(people.c.id)
    .join_from(identities, people, people.c.id == identities.c.person_id)
    .where(identities.c.kind == sa.bindparam("kind"),
           identities.c.value == sa.bindparam("value"))
    .with_for_update(of=people)
)
_LOCK_BY_ID = sa.select(people.c.id).where(
    people.c.id == sa.bindparam("person_id")).with_for_update()


def _stranger_query(erased: sa.ColumnElement) -> sa.CompoundSelect:
    """An unknown recipient in one query: erased (a row without a source), and bare consents."""
    return sa.union_all(
        sa.select(sa.cast(sa.null(), records.c.payload.type).label("payload"),
                  sa.cast(sa.null(), records.c.source_system.type).label("source_system"),
                  sa.cast(sa.null(), records.c.source_type.type).label("source_type"),
                  sa.cast(sa.null(), records.c.source_id.type).label("source_id"))
        .where(erased),
        sa.select(records.c.payload, records.c.source_system, records.c.source_type,
                  records.c.source_id)
        .where(records.c.address == sa.bindparam("address"), records.c.person_id.is_(None),
               records.c.type == "consent"),
    )


_STRANGER = _stranger_query(erasures.c.hash == sa.bindparam("hash"))
# Without the erasure key a recipient cannot be told apart from the erased: any erasure at
# all stops the check (ErasureKeyMissing) rather than let an erased person through.
_STRANGER_WITHOUT_KEY = _stranger_query(sa.exists(sa.select(erasures.c.hash)))
_ANY_ERASURE = sa.select(erasures.c.hash).limit(1)


def _in_json_list(column: sa.Column, name: str) -> sa.ColumnElement:
    """Return "``column`` is in the JSON array ``:name``" (SQLite)."""
    listed = sa.select(sa.column("value")).select_from(
        sa.func.json_each(sa.bindparam(name, type_=sa.JSON))).scalar_subquery()
    return column.in_(listed)


def _in_array(column: sa.Column, name: str) -> sa.ColumnElement:
    """Return "``column`` is one of the array ``:name``" (PostgreSQL)."""
    # TEXT[]: a cast to varchar(n)[] would silently truncate, and could match a wrong row.
    return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.Text)))


def _per_dialect(build: Callable[[Callable[[sa.Column, str], sa.ColumnElement]], Any]
                 ) -> dict[str, Any]:
    """Build a statement whose list parameter is one value, for each dialect by name.

    One parameter, a JSON array (SQLite) or an array (PostgreSQL), instead of an
    IN list with a parameter per value: SQLAlchemy rendered that list anew for
    every execution, and every batch size was new SQL to the driver, parsed
    afresh and never prepared. The query plans are the same index look-ups.
    """
    return {"sqlite": build(_in_json_list), "postgresql": build(_in_array)}


# A batch: its people locked in id order (two batches cannot deadlock), then read.
_LOCK_MANY = _per_dialect(lambda one_of: sa.select(people.c.id).where(
    one_of(people.c.id, "ids")).order_by(people.c.id).with_for_update())
_PROFILES = _per_dialect(lambda one_of: sa.select(people.c.id, people.c.profile).where(
    one_of(people.c.id, "ids")))
_RESOLVE_MANY = _per_dialect(lambda one_of: sa.select(
    identities.c.value, identities.c.person_id).where(
    identities.c.kind == sa.bindparam("kind"), one_of(identities.c.value, "values")))
_ERASED_MANY = _per_dialect(lambda one_of: sa.select(erasures.c.hash).where(
    one_of(erasures.c.hash, "hashes")))
_BARE_MANY = _per_dialect(lambda one_of: sa.select(
    records.c.address, records.c.payload, records.c.source_system, records.c.source_type,
    records.c.source_id).where(one_of(records.c.address, "addresses"),
                               records.c.person_id.is_(None), records.c.type == "consent"))
_CAMPAIGNS_MANY = _per_dialect(lambda one_of: sa.select(
    campaigns.c.id, campaigns.c.campaign).where(one_of(campaigns.c.id, "ids")))
_LEDGER_MANY = _per_dialect(lambda one_of: sa.select(
    ledger.c.person_id, ledger.c.at, ledger.c.channel, ledger.c.purpose, ledger.c.sender,
    ledger.c.campaign, ledger.c.template, ledger.c.product, ledger.c.verdict, ledger.c.source)
    .where(one_of(ledger.c.person_id, "ids"), ledger.c.committed == sa.true(),
           ledger.c.at >= _SINCE)
    .order_by(ledger.c.at))
_CAMPAIGN = sa.select(campaigns.c.campaign).where(campaigns.c.id == sa.bindparam("id"))
_TASKS_EXISTING = _per_dialect(lambda one_of: sa.select(owner_tasks.c.dedupe_key).where(
    one_of(owner_tasks.c.dedupe_key, "keys")))
_INSERT_TASK = sa.insert(owner_tasks)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ErasureKeyMissing(GuardError):
    """People were erased in this store, and this process has no key to recognise them."""

    status = 503
    title = "Service Unavailable"

    def __init__(self) -> None:
        super().__init__(f"{erasure.SETTING}: not set, and people were erased in this store; "
                         "no recipient who matches no person can be checked without it",
                         field=erasure.SETTING)


@dataclass(slots=True)
class _Item:
    """One parsed attempt of a batch, and its outcome once decided."""

    index: int
    target: Ref
    attempt: Attempt
    timed: bool
    commit: bool
    outcome: Decision | InvalidField | None = None


@dataclass(slots=True)
class _Known:
    """What a batch's bulk reads found: people, their profiles and ledgers, strangers."""

    people_of: dict[Ref, str]
    profiles: dict[str, Profile]
    entries: dict[str, list[LedgerEntry]]
    erased: set[Ref]
    bare: dict[str, list]
    campaigns: dict[str, Campaign]


def _entry_time(entry: LedgerEntry) -> datetime:
    return entry.at


class Guard:
    """The service's one entry point to the store and the policy."""

    def __init__(self, engine: Engine, policy, clock: Callable[[], datetime] | None = None,
                 *, check_lanes: int = CHECK_LANES, erasure_key: str | bytes | None = None):
        self.engine = engine
        self.policy = policy
        self.clock = clock or _utc_now
        # GUARD_ERASURE_SALT: the secret of the keyed hashes erasure keeps; never in the store.
        key = erasure_key or os.environ.get(erasure.SETTING) or None
        self._erasure_key = key.encode() if isinstance(key, str) else key
        # Concurrent checks of this process share transactions (group commit).
        self._batcher = Batcher(self._run_jobs, limit=BATCH_LIMIT,
                                lanes=1 if engine.dialect.name == "sqlite" else check_lanes)

    # -- events -----------------------------------------------------------------------

    def ingest(self, events: list[Mapping]) -> dict:
        """Store a batch of events (SPEC §6); return accepted count and rejections."""
        salt = self.erasure_salt()
        with self.engine.begin() as conn:
            return event_store.ingest(conn, list(events), self.policy, self.clock(), salt)

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

    def check(self, body: Mapping, *, commit: bool = True,
              defaults: Mapping | None = None) -> Decision:
        """Decide one attempt (SPEC §5 fields); record it; commit counts it toward caps."""
        template = self._template(body, defaults)
        target, attempt = self._attempt(template, body.get("to") if body else None)
        item = _Item(0, target, attempt, timed=template["at"] is not None, commit=commit)
        outcome = self._batcher.submit(Job([item]))[0]
        if isinstance(outcome, InvalidField):
            raise outcome
        return outcome

    def check_many(self, bodies: Sequence[Mapping], *, commit: bool = True,
                   defaults: Mapping | None = None,
                   then: Callable[[Connection, list], Any] | None = None,
                   ) -> list[Decision | InvalidField]:
        """Decide many attempts in one transaction; a bad one is an InvalidField in its place.

        Attempts to the same person see each other in order, as separate
        checks would (the second of two to one person counts the first toward
        caps). ``then(conn, outcomes)`` runs inside the same transaction after
        the decisions are written, so what it stores (an outbox row) commits
        with them or not at all.
        """
        outcomes: list[Any] = [None] * len(bodies)
        items = []
        for index, body in enumerate(bodies):
            try:
                template = self._template(body, defaults)
                target, attempt = self._attempt(template, body.get("to"))
            except InvalidField as exc:
                outcomes[index] = exc
                continue
            items.append(_Item(index, target, attempt, timed=template["at"] is not None,
                               commit=commit))
        return self._batcher.submit(Job(items, then, outcomes))

    def screen(self, attempt: Mapping, recipients: Iterable[Any], *,
               commit: bool = False) -> Iterator[tuple[Any, Decision | InvalidField]]:
        """Decide one attempt template for many recipients, streaming (recipient, outcome)."""
        template = self._template(attempt, None)
        batch: list[Any] = []
        for recipient in recipients:
            batch.append(recipient)
            if len(batch) >= SCREEN_BATCH:
                yield from self._screen_batch(template, batch, commit)
                batch = []
        if batch:
            yield from self._screen_batch(template, batch, commit)

    def _run_jobs(self, jobs: list[Job]) -> None:
        """Decide every item of ``jobs`` in one transaction, then run their hooks."""
        items = [item for job in jobs for item in job.items]
        if not items and all(job.then is None for job in jobs):
            return  # every attempt was invalid: nothing to read, write or lock
        with self.engine.begin() as conn:
            if len(items) == 1:
                self._decide_one(conn, items[0])
            elif items:
                self._decide_many(conn, items)
            for job in jobs:
                for item in job.items:
                    job.result[item.index] = item.outcome
                if job.then is not None:
                    job.then(conn, job.result)

    def _decide_one(self, conn: Connection, item: _Item) -> None:
        """Decide one item with the single-check queries (fewest round trips)."""
        try:
            decision, attempt, now = self._decide(conn, item.attempt, item.target,
                                                  lock=item.commit, timed=item.timed)
        except InvalidField as exc:
            item.outcome = exc
            return
        contact_ledger.record_decision(conn, decision, attempt, committed=item.commit, now=now)
        if item.commit:
            self._tasks(conn, [(decision, attempt)], now)
        item.outcome = decision

    def _decide_many(self, conn: Connection, items: list[_Item]) -> None:
        """Decide a batch with a handful of bulk reads, then write it with one insert.

        PostgreSQL: the people of committed items are locked first, in id order
        (two batches sharing people cannot deadlock), then read.
        """
        window = self.policy.ledger_window
        earliest = min([self.clock(), *(i.attempt.at for i in items if i.timed)]) - window
        known = self._read_many(conn, [i.target for i in items], earliest,
                                {i.attempt.campaign for i in items if i.attempt.campaign},
                                lock={i.target for i in items if i.commit})
        now = self.clock()
        recorded: list[tuple[Decision, Attempt, bool]] = []
        for item in items:
            attempt = item.attempt if item.timed else replace(item.attempt, at=now)
            outcome = self._decide_known(known, item.target, attempt, now)
            item.outcome = outcome
            if isinstance(outcome, InvalidField):
                continue
            recorded.append((outcome, self._unnamed(attempt, item.target)
                             if item.target in known.erased else attempt, item.commit))
            person_id = known.people_of.get(item.target)
            if item.commit and person_id in known.entries:
                # Counted at once: a later item of the batch to the same person sees it.
                insort(known.entries[person_id], LedgerEntry(
                    at=contact_ledger.utc(attempt.at), channel=attempt.channel,
                    purpose=attempt.purpose, sender=attempt.sender, campaign=attempt.campaign,
                    template=attempt.template, product=attempt.product,
                    verdict=outcome.verdict), key=_entry_time)
        for committed in (True, False):
            rows = [(d, a) for d, a, c in recorded if c is committed]
            if rows:
                contact_ledger.record_many(conn, rows, committed=committed, now=now)
        self._tasks(conn, [(d, a) for d, a, committed in recorded if committed], now)

    def _template(self, body: Mapping | None, defaults: Mapping | None) -> dict:
        """Merge body over defaults and validate everything but the recipient."""
        if body is not None and not isinstance(body, Mapping):
            raise InvalidField("body", "expected an object")
        merged = {k: v for k, v in (defaults or {}).items() if v not in (None, "")}
        merged.update({k: v for k, v in (body or {}).items() if v is not None})
        policy = self.policy
        channel = merged.get("channel")
        if channel in (None, ""):
            raise InvalidField("channel", "required")
        if channel not in policy.channels:
            raise InvalidField("channel", f"unknown channel {channel!r} (known: "
                                          f"{', '.join(policy.channels)})")
        purpose = merged.get("purpose")
        if purpose in (None, ""):
            raise InvalidField("purpose", "required (or a default purpose on the API key)")
        if not isinstance(purpose, str) or policy.category(purpose) is None:
            raise InvalidField("purpose", f"unknown purpose {purpose!r} (known: "
                                          f"{', '.join(sorted(policy.purposes))})")
        sender = merged.get("sender")
        if sender in (None, ""):
            raise InvalidField("sender", "required (or a default sender on the API key)")
        if not isinstance(sender, str) or not policy.knows_sender(sender):
            raise InvalidField("sender", f"unknown sender {sender!r} (known: "
                                         f"{', '.join(policy.senders)})")
        # A pattern such as dealer:* matches any text, a line break included.
        merged["sender"] = _identifier("sender", sender, SENDER_MAX)
        at = merged.get("at")
        if at not in (None, ""):
            try:
                merged["at"] = parse_datetime(at)
            except (TypeError, ValueError):
                raise InvalidField("at", f"not a time: {at!r}") from None
        else:
            merged["at"] = None
        for name in ("campaign", "template", "product"):
            value = merged.get(name)
            merged[name] = _identifier(name, value, ID_MAX) if value not in (None, "") \
                else None
        return merged

    def _attempt(self, template: Mapping, to: Any) -> tuple[Ref, Attempt]:
        if to in (None, ""):
            raise InvalidField("to", "required")
        try:
            target = reference(to, self.policy.defaults.region)
        except ValueError as exc:
            raise InvalidField("to", str(exc)) from None
        attempt = Attempt(
            channel=template["channel"], to=target.value, purpose=template["purpose"],
            sender=template["sender"], at=template["at"] or self.clock(),
            campaign=template["campaign"], template=template["template"],
            product=template["product"])
        return target, attempt

    def _decide(self, conn: Connection, attempt: Attempt, target: Ref, *, lock: bool,
                timed: bool) -> tuple[Decision, Attempt, datetime]:
        """Read what the rules need in a constant number of indexed queries, then decide.

        The decision time is read once the person's lock is held, so a check
        that waited for another one sees that one's contact as past.
        """
        lock = lock and conn.dialect.name == "postgresql"
        window = self.policy.ledger_window
        # The clock only moves on while this waits for the lock, so entries from this
        # provisional ``since`` on include every one the decision can count.
        earliest = self.clock()
        since = min(earliest, attempt.at if timed else earliest) - window
        params = {"since": contact_ledger.utc(since), "campaign": attempt.campaign}
        person_id = None
        if target.kind == "person":
            person_id = resolve_person(conn, target)
            if person_id is None:
                raise InvalidField("to", f"no person {target.value}")
            if lock:
                person_id = conn.execute(_LOCK_BY_ID, {"person_id": person_id}).scalar()
        elif lock:
            person_id = conn.execute(_LOCK_BY_IDENTITY,
                                     {"kind": target.kind, "value": target.value}).scalar()
        if person_id is not None:
            rows = conn.execute(_PERSON_BY_ID, {**params, "person_id": person_id}).all()
        elif target.kind != "person" and not lock:
            rows = conn.execute(_PERSON_BY_IDENTITY,
                                {**params, "kind": target.kind, "value": target.value}).all()
        else:
            rows = []
        if rows:
            person_id = rows[0].id
            profile = Profile.from_stored(loads_json(rows[0].profile))
            data = rows[0].campaign_record
            found = {attempt.campaign: Campaign.from_dict(loads_json(data))} if data else {}
        else:
            person_id = None
            profile = self._stranger(conn, target)
            found = self._campaigns(conn, attempt)
        now = self.clock()
        if not timed:
            attempt = replace(attempt, at=now)
        entries: list[LedgerEntry] = []
        if person_id is not None and not profile.erased:
            entries = contact_ledger.entries(rows, min(now, attempt.at) - window)
        decision = decide(attempt, profile, entries, self.policy, now, found)
        if person_id is None and profile.erased:
            attempt = self._unnamed(attempt, target)
        return decision.with_id(contact_ledger.new_decision_id()), attempt, now

    def _unnamed(self, attempt: Attempt, target: Ref) -> Attempt:
        """Return the attempt as the ledger keeps it for an erased recipient: by keyed hash."""
        return replace(attempt, to=erased_recipient(self._erasure_key, target))

    def _stranger(self, conn: Connection, target: Ref) -> Profile:
        """The profile of a recipient who matches no person: erased, or bare consents only."""
        address = target.value if target.kind in ("email", "phone") else None
        key = self._erasure_key
        if key is None:
            rows = conn.execute(_STRANGER_WITHOUT_KEY, {"address": address}).all()
        else:
            rows = conn.execute(_STRANGER, {"hash": erasure_hash(key, target),
                                            "address": address}).all()
        if any(row.source_system is None for row in rows):
            if key is None:
                raise ErasureKeyMissing()
            return Profile(id=None, erased=True)
        if address is None:
            return Profile(id=None)
        return _stranger_profile(target, rows)

    def _campaigns(self, conn: Connection, attempt: Attempt) -> dict[str, Campaign]:
        if not attempt.campaign:
            return {}
        data = conn.execute(_CAMPAIGN, {"id": attempt.campaign}).scalar()
        return {attempt.campaign: Campaign.from_dict(data)} if data else {}

    def _screen_batch(self, template: Mapping, recipients: list[Any], commit: bool
                      ) -> Iterator[tuple[Any, Decision | InvalidField]]:
        """Decide a batch of one template's recipients and yield (recipient, outcome)."""
        outcomes: list[Any] = []
        items = []
        for index, recipient in enumerate(recipients):
            try:
                target, attempt = self._attempt(template, recipient)
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
            now = self.clock()
            window = self.policy.ledger_window
            with read_only(self.engine.connect()) as conn:
                known = self._read_many(conn, [i.target for i in items],
                                        min(now, *(i.attempt.at for i in items)) - window,
                                        {template["campaign"]} if template["campaign"] else ())
            recorded = []
            for item in items:
                outcome = self._decide_known(known, item.target, item.attempt, now)
                outcomes[item.index] = outcome
                if not isinstance(outcome, InvalidField):
                    recorded.append((outcome, self._unnamed(item.attempt, item.target)
                                     if item.target in known.erased else item.attempt))
            if recorded:
                rows = contact_ledger.ledger_rows(self.engine.dialect, recorded,
                                                  committed=False, now=now)
                with self.engine.begin() as conn:
                    contact_ledger.insert_rows(conn, rows)
        yield from zip(recipients, outcomes, strict=True)

    def _read_many(self, conn: Connection, targets: list[Ref], since: datetime,
                   campaign_ids: Iterable[str], *, lock: Collection[Ref] = ()) -> _Known:
        """Read what deciding ``targets`` needs in a few bulk queries; lock ``lock``'s people."""
        people_of = self._resolve_many(conn, targets)
        if lock and conn.dialect.name == "postgresql":
            self._lock_many(conn, people_of, [t for t in lock if t in people_of])
        ids = sorted(set(people_of.values()))
        profiles = {
            row.id: Profile.from_stored(row.profile) for row in conn.execute(
                _PROFILES[conn.dialect.name], {"ids": ids})
        } if ids else {}
        entries: dict[str, list[LedgerEntry]] = {i: [] for i in profiles}
        if profiles:
            for person_id, entry in _ledger_many(conn, sorted(profiles), since):
                entries[person_id].append(entry)
        strangers = [t for t in targets if t not in people_of or people_of[t] not in profiles]
        erased, bare = self._strangers_many(conn, [t for t in strangers if t.kind != "person"])
        campaign_ids = sorted(set(campaign_ids))
        found = {
            row.id: Campaign.from_dict(row.campaign) for row in conn.execute(
                _CAMPAIGNS_MANY[conn.dialect.name], {"ids": campaign_ids})
        } if campaign_ids else {}
        return _Known(people_of, profiles, entries, erased, bare, found)

    def _lock_many(self, conn: Connection, people_of: dict[Ref, str],
                   targets: list[Ref]) -> None:
        """Lock the people of ``targets`` in id order; follow anyone merged meanwhile."""
        wanted = sorted({people_of[t] for t in targets})
        if not wanted:
            return
        lock = _LOCK_MANY[conn.dialect.name]
        locked = set(conn.execute(lock, {"ids": wanted}).scalars())
        gone = [t for t in targets if people_of[t] not in locked]
        if not gone:
            return
        # A merge removed a person between resolving and locking: resolve again, lock
        # the survivors (already-held locks stay; a rare out-of-order wait at worst).
        for target in gone:
            del people_of[target]
        again = self._resolve_many(conn, gone)
        people_of.update(again)
        more = sorted(set(again.values()) - locked)
        if more:
            conn.execute(lock, {"ids": more}).all()

    def _decide_known(self, known: _Known, target: Ref, attempt: Attempt,
                      now: datetime) -> Decision | InvalidField:
        """Decide one attempt from bulk-read facts; a person reference to no one is invalid."""
        person_id = known.people_of.get(target)
        profile = known.profiles.get(person_id) if person_id is not None else None
        if profile is not None:
            since = min(now, attempt.at) - self.policy.ledger_window
            ledger_entries = [] if profile.erased else \
                [e for e in known.entries.get(person_id, ()) if e.at >= since]
        elif target.kind == "person":
            return InvalidField("to", f"no person {target.value}")
        else:
            profile = Profile(id=None, erased=True) if target in known.erased \
                else _stranger_profile(target, known.bare.get(target.value, ()))
            ledger_entries = []
        found = {attempt.campaign: known.campaigns[attempt.campaign]} \
            if attempt.campaign in known.campaigns else {}
        decision = decide(attempt, profile, ledger_entries, self.policy, now, found)
        return decision.with_id(contact_ledger.new_decision_id())

    def _resolve_many(self, conn: Connection, targets: list[Ref]) -> dict[Ref, str]:
        found: dict[Ref, str] = {}
        by_kind: dict[str, set[str]] = {}
        for target in targets:
            by_kind.setdefault(target.kind, set()).add(target.value)
        for kind, values in by_kind.items():
            if kind == "person":
                for target in (t for t in targets if t.kind == "person"):
                    person_id = resolve_person(conn, target)
                    if person_id:
                        found[target] = person_id
                continue
            rows = conn.execute(_RESOLVE_MANY[conn.dialect.name],
                                {"kind": kind, "values": sorted(values)}).all()
            for value, person_id in rows:
                found[Ref(kind, value)] = person_id
        return found

    def _strangers_many(self, conn: Connection, targets: list[Ref]
                        ) -> tuple[set[Ref], dict[str, list]]:
        if not targets:
            return set(), {}
        key = self._erasure_key
        if key is None:
            if conn.execute(_ANY_ERASURE).first() is not None:
                raise ErasureKeyMissing()
            erased: set[Ref] = set()
        else:
            hashes = {erasure_hash(key, t): t for t in targets}
            erased = {hashes[h] for h in conn.execute(
                _ERASED_MANY[conn.dialect.name], {"hashes": sorted(hashes)}).scalars()}
        addresses = sorted({t.value for t in targets if t.kind in ("email", "phone")})
        bare: dict[str, list] = {}
        if addresses:
            for row in conn.execute(_BARE_MANY[conn.dialect.name],
                                    {"addresses": addresses}).all():
                bare.setdefault(row.address, []).append(row[1:])
        return erased, bare

    def _tasks(self, conn: Connection, decided: Iterable[tuple[Decision, Attempt]],
               now: datetime) -> None:
        """Turn notices and reroutes to an owner into tasks for that owner's CRM."""
        wanted: dict[str, dict] = {}
        for decision, attempt in decided:
            for task in _owner_tasks(decision, attempt, now):
                wanted.setdefault(task["dedupe_key"], task)
        if not wanted:
            return
        # One task per owner, person, rule and campaign a day, however often it is sent.
        existing = set(conn.execute(_TASKS_EXISTING[conn.dialect.name],
                                    {"keys": sorted(wanted)}).scalars())
        new = [task for key, task in wanted.items() if key not in existing]
        if new:
            conn.execute(_INSERT_TASK, new)

    # -- look-ups ---------------------------------------------------------------------

    def decision(self, decision_id: str) -> dict:
        """Return a recorded decision (SPEC §4) with its attempt and time; raise NotFound."""
        with read_only(self.engine.connect()) as conn:
            row = conn.execute(sa.select(ledger).where(ledger.c.id == decision_id)
                               ).mappings().first()
        if row is None or row["decision"] is None:
            raise NotFound(f"no decision {decision_id}")
        return {**row["decision"], "decision_id": row["id"], "attempt": row["attempt"],
                "at": parse_datetime(row["created_at"]).isoformat(),
                "committed": row["committed"]}

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
        with read_only(self.engine.connect()) as conn:
            current = resolve_person(conn, Ref("person", person_id))
            row = conn.execute(sa.select(people).where(people.c.id == current)
                               ).mappings().first() if current else None
            if row is None:
                raise NotFound(f"no person {person_id}")
            recent = contact_ledger.for_person(conn, current, ledger_limit)
            tasks = conn.execute(
                sa.select(owner_tasks).where(owner_tasks.c.person_id == current)
                .order_by(owner_tasks.c.created_at.desc()).limit(50)).mappings().all()
        flags = row["flags"] or {"status": "Clear", "flags": []}
        return {"id": current, "profile": row["profile"], "erased": row["erased"],
                "flags": flags, "ledger": recent, "tasks": [_task(t) for t in tasks]}

    def pending_tasks(self, limit: int = 100) -> list[dict]:
        """Return open owner tasks, oldest first, with the person's CRM ids for write-back."""
        with read_only(self.engine.connect()) as conn:
            rows = conn.execute(
                sa.select(owner_tasks, people.c.profile)
                .join(people, people.c.id == owner_tasks.c.person_id, isouter=True)
                .where(owner_tasks.c.status == TASK_OPEN)
                .order_by(owner_tasks.c.created_at, owner_tasks.c.id).limit(limit)
            ).mappings().all()
        return [{**_task(r), "crm_ids": (r["profile"] or {}).get("crm_ids") or {}} for r in rows]

    def mark_task_done(self, task_id: str, result: Mapping | None = None, *,
                       failed: bool = False) -> None:
        """Record that a task reached the CRM (or failed for good); raise NotFound."""
        with self.engine.begin() as conn:
            done = conn.execute(sa.update(owner_tasks).where(owner_tasks.c.id == task_id).values(
                status=TASK_FAILED if failed else TASK_DONE, done_at=self.clock(),
                result=dict(result) if result else None))
        if not done.rowcount:
            raise NotFound(f"no task {task_id}")

    def flag_updates(self, since: datetime | None = None, limit: int = 1000) -> list[dict]:
        """Return people whose flags changed after ``since``, with their CRM ids."""
        query = sa.select(people.c.id, people.c.profile, people.c.flags, people.c.updated_at)
        query = query.where(people.c.flags.is_not(None))
        if since is not None:
            query = query.where(people.c.updated_at > since.astimezone(UTC))
        with read_only(self.engine.connect()) as conn:
            rows = conn.execute(query.order_by(people.c.updated_at, people.c.id).limit(limit)
                                ).all()
        out = []
        for row in rows:
            flags = row.flags or {}
            updated = flags.get("updated")
            if since is not None and updated and parse_datetime(updated) <= since:
                continue
            out.append({"id": row.id, "crm_ids": (row.profile or {}).get("crm_ids") or {},
                        "status": flags.get("status"), "flags": list(flags.get("flags") or ()),
                        "updated": updated})
        return out


def _identifier(name: str, value: Any, limit: int) -> str:
    """Return an attempt's identifier field as text, or raise InvalidField naming it."""
    try:
        return identifier(value, limit)
    except ValueError as exc:
        raise InvalidField(name, str(exc)) from None


def _owner_tasks(decision: Decision, attempt: Attempt, now: datetime) -> list[dict]:
    """Return the owner tasks a decision's notices and reroute call for, as rows."""
    if decision.person is None:
        return []
    subject_of = attempt.campaign or attempt.template or attempt.purpose
    day = attempt.at.astimezone(UTC).date().isoformat()
    intended = (f"{attempt.sender} wanted to contact this person ({attempt.purpose} by "
                f"{attempt.channel}, {subject_of}).")
    rerouted_to = (decision.reroute or {}).get("owner") if decision.verdict == "reroute" \
        else None
    wanted: list[tuple[str, str, str, str]] = []
    for notice in decision.notify:
        if notice.owner == rerouted_to:
            subject = (f"Contact Guard: {attempt.purpose.replace('_', ' ')} by "
                       f"{attempt.channel} rerouted to you")
        else:
            subject = f"Contact Guard: {notice.rule} ({subject_of})"
        wanted.append((notice.owner, notice.rule, subject, f"{intended} {notice.message}"))
    if rerouted_to and all(w[0] != rerouted_to for w in wanted):
        why = " ".join(r.message for r in decision.reasons if r.effect == "reroute")
        wanted.append((rerouted_to, "reroute",
                       f"Contact Guard: {attempt.purpose.replace('_', ' ')} by "
                       f"{attempt.channel} rerouted to you", f"{intended} {why}".strip()))
    return [dict(
        id="tsk_" + secrets.token_hex(10), person_id=decision.person,
        decision_id=decision.decision_id, owner=owner, rule=rule, subject=subject[:255],
        description=description, dedupe_key=f"{decision.person}:{owner}:{rule}:{subject_of}:{day}",
        status=TASK_OPEN, created_at=now) for owner, rule, subject, description in wanted]


def _task(row: Mapping) -> dict:
    return {
        "id": row["id"], "person_id": row["person_id"], "decision_id": row["decision_id"],
        "owner": row["owner"], "rule": row["rule"], "subject": row["subject"],
        "description": row["description"], "dedupe_key": row["dedupe_key"],
        "status": row["status"], "created_at": parse_datetime(row["created_at"]).isoformat(),
    }


def _stranger_profile(target: Ref, rows: Iterable) -> Profile:
    consents = tuple(
        Consent.from_dict({**{k: payload.get(k) for k in ("channel", "purpose", "status", "at")},
                           "source": Evidence(system, source_type or "", source_id).to_dict()})
        for payload, system, source_type, source_id in rows
    )
    return Profile(
        id=None,
        emails=(target.value,) if target.kind == "email" else (),
        phones=(target.value,) if target.kind == "phone" else (),
        consents=consents,
        sources=tuple(c.source for c in consents if c.source),
    )


def _ledger_many(conn: Connection, person_ids: list[str], since: datetime
                 ) -> Iterator[tuple[str, LedgerEntry]]:
    rows = conn.execute(_LEDGER_MANY[conn.dialect.name],
                        {"ids": person_ids, "since": since.astimezone(UTC)}).all()
    for r in rows:
        yield r.person_id, LedgerEntry(
            at=parse_datetime(r.at), channel=r.channel, purpose=r.purpose, sender=r.sender,
            campaign=r.campaign, template=r.template, product=r.product, verdict=r.verdict,
            source=Evidence.from_dict(r.source) if r.source else None)
