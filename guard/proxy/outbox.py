"""The durable outbox: every send the guard owns, from first try to delivery.

A row's life (``status``):

    held ──claim──▶ claimed ──begin_send──▶ sending ──▶ sent
     ▲                 │                       │  ├──▶ rejected  provider said 4xx: final
     │                 │ re-check: defer       │  └──▶ unknown   no answer after sending:
     └─────────────────┘◀── provider 429/5xx ──┘                 a human decides
                       └──▶ dropped            re-check said block or reroute

``held`` rows wait for ``not_before``: deferred recipients (``needs_check``:
checked again at release, the person may have bought or opted out since) and
sends the provider failed to take (retried with backoff, never dropped).

Exactly once. A row is claimed by one worker at a time (``FOR UPDATE SKIP
LOCKED`` on PostgreSQL, and on every database a compare-and-set ``UPDATE …
WHERE status = 'held'``), with a claim token that every later transition
must present. A row is committed as ``sending`` *before* the provider is
called, so a crash mid-send leaves a ``sending`` row behind. Neither SendGrid
nor Twilio accepts an idempotency key for sends, so such a row cannot be
safely resent: when its lease runs out it becomes ``unknown`` for a human,
never sent again. A crash *before* ``sending`` (claimed, not yet sent)
loses nothing: the row is simply claimable again. ``idempotency_key`` is
unique per recipient per message, so the same message is never queued twice.

Settling a delivered send (``sending`` → ``sent``) may wait until the
caller has had its answer (``finish(..., defer=True)``, then
``settle_deferred`` once the response is out): it is off the request's
latency, and the sends that finish together still share one transaction.
Only a delivered send waits, so a crash before its settle lands leaves a
``sending`` row, which becomes ``unknown`` (never sent again), exactly as a
crash between the provider's answer and a synchronous settle does; a failure
to retry or a rejection is always settled before ``finish`` returns. Reads
through the outbox write the pending settles of their process first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import secrets
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection, Engine

from guard.checks.batching import Batcher, Job
from guard.proxy.transport import FAILED, REJECTED, SENT, Outcome
from guard.store.compiled import run as run_compiled
from guard.store.tables import (
    CLAIMED,
    DONE_REJECTED,
    DONE_SENT,
    DROPPED,
    HELD,
    SENDING,
    UNKNOWN,
    outbox,
)
from guard.store.util import utc_now

log = logging.getLogger(__name__)


# Built once: the request path inserts and settles a row per send. A duplicate key is
# skipped by the database itself (ON CONFLICT DO NOTHING), so the unique index, not a
# read before the write, keeps a message from being queued twice, even across replicas.
_INSERT = {
    name: insert(outbox).on_conflict_do_nothing(index_elements=["idempotency_key"])
    .returning(outbox.c.id)
    for name, insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}


def _settle_statement(from_status: tuple[str, ...]) -> sa.Update:
    # ``status = a OR status = b``, not ``IN``: an IN list is re-rendered on every
    # execution (an expanding parameter), these compile once.
    return (outbox.update()
            .where(outbox.c.id == sa.bindparam("row_id"),
                   outbox.c.claim_token == sa.bindparam("token"),
                   sa.or_(*(outbox.c.status == state for state in from_status))))


_SETTLE = {states: _settle_statement(states)
           for states in ((CLAIMED,), (SENDING, UNKNOWN))}


def idempotency_key(message_key: str, *parts: Any) -> str:
    """Derive the key of one recipient (or recipient set) of one message."""
    text = json.dumps([message_key, *parts], sort_keys=True, separators=(",", ":"),
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _utc(value: datetime | None) -> datetime | None:
    # SQLite keeps no offset: everything is stored in UTC and read back as UTC.
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


@dataclass(frozen=True)
class Item:
    """A send to put in the outbox."""

    provider: str
    resource: str
    payload: Any
    idempotency_key: str
    recipients: Sequence[str] = ()
    checks: Sequence[Mapping] = ()
    defaults: Mapping[str, str] = field(default_factory=dict)
    decision_ids: Sequence[str] = ()
    key_id: str | None = None
    not_before: datetime | None = None
    needs_check: bool = False


@dataclass(frozen=True)
class Claim:
    """A row one worker (or request) holds, and the token that proves it."""

    id: str
    token: str
    provider: str
    resource: str
    payload: Any
    checks: tuple[Mapping, ...]
    defaults: Mapping[str, str]
    needs_check: bool
    tries: int
    decision_ids: tuple[str, ...]
    # The API key that queued the send: a revoked key's sends are dropped at release.
    key_id: str | None = None


def _claim_from(row, token: str) -> Claim:
    return Claim(row.id, token, row.provider, row.resource, row.payload, tuple(row.checks),
                 dict(row.defaults), bool(row.needs_check), row.tries, tuple(row.decision_ids),
                 row.key_id)


class Outbox:
    """Queue, claim and settle sends; every transition is one short transaction.

    The ``*_in`` methods write inside a caller's transaction instead (a
    check's, so the row commits with the decision or not at all). Settling
    goes through a group commit: the outcomes of sends that finish together
    share one transaction.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        clock: Callable[[], datetime] | None = None,
        lease: timedelta = timedelta(minutes=5),
        retry_base: timedelta = timedelta(seconds=30),
        retry_max: timedelta = timedelta(hours=1),
    ):
        self.engine = engine
        self.clock = clock or utc_now
        self.lease = lease
        self.retry_base = retry_base
        self.retry_max = retry_max
        self._settler = Batcher(self._settle_jobs)
        self._later = _Deferred(self)

    def _now(self) -> datetime:
        return _utc(self.clock())

    def _row(self, item: Item, status: str, token: str | None) -> dict:
        now = self._now()
        return {
            "id": "out_" + secrets.token_hex(12), "idempotency_key": item.idempotency_key,
            "provider": item.provider, "resource": item.resource, "payload": item.payload,
            "recipients": list(item.recipients), "checks": [dict(c) for c in item.checks],
            "defaults": dict(item.defaults), "decision_ids": list(item.decision_ids),
            "key_id": item.key_id, "status": status, "needs_check": item.needs_check,
            "not_before": _utc(item.not_before) or now, "tries": 0, "claim_token": token,
            "claimed_at": now if token else None, "last_error": None,
            "response_status": None, "response_body": None, "created_at": now,
            "updated_at": now,
        }

    def _insert(self, conn: Connection, item: Item, status: str, token: str | None) -> str | None:
        row = self._row(item, status, token)
        return run_compiled(conn, ("insert",), _INSERT[conn.dialect.name], row).scalar()

    def hold(self, item: Item) -> str | None:
        """Queue ``item`` until its ``not_before``; None if its key was queued before."""
        with self.engine.begin() as conn:
            return self.hold_in(conn, item)

    def hold_in(self, conn: Connection, item: Item) -> str | None:
        """Queue ``item`` in the caller's transaction; None if its key was queued before."""
        return self._insert(conn, item, HELD, None)

    def hold_all(self, items: Iterable[Item]) -> list[str | None]:
        """Queue every item in one transaction; None for each key queued before."""
        with self.engine.begin() as conn:
            return self.hold_all_in(conn, items)

    def hold_all_in(self, conn: Connection, items: Iterable[Item]) -> list[str | None]:
        """Queue every item in the caller's transaction; None for each key queued before."""
        return [self._insert(conn, item, HELD, None) for item in items]

    def start_sending(self, item: Item) -> Claim | None:
        """Record ``item`` as being sent now (before calling the provider); None if known."""
        with self.engine.begin() as conn:
            return self.start_sending_in(conn, item)

    def start_sending_in(self, conn: Connection, item: Item) -> Claim | None:
        """Record ``item`` as being sent in the caller's transaction; None if known.

        The provider may be called only once that transaction has committed.
        """
        token = secrets.token_hex(16)
        row_id = self._insert(conn, item, SENDING, token)
        if row_id is None:
            return None
        return Claim(row_id, token, item.provider, item.resource, item.payload,
                     tuple(item.checks), dict(item.defaults), False, 0,
                     tuple(item.decision_ids))

    def withdraw(self, row_ids: Iterable[str | None]) -> int:
        """Remove rows still held and unclaimed (never sent); return how many went."""
        ids = [row_id for row_id in row_ids if row_id]
        if not ids:
            return 0
        with self.engine.begin() as conn:
            return conn.execute(outbox.delete().where(outbox.c.id.in_(ids),
                                                      outbox.c.status == HELD)).rowcount

    def claim_due(self, exclude: Iterable[str] = ()) -> Claim | None:
        """Claim the next held row that is due (other than ``exclude``), or None."""
        now = self._now()
        token = secrets.token_hex(16)
        skip = list(exclude)
        for _ in range(10):
            with self.engine.begin() as conn:
                query = sa.select(outbox).where(outbox.c.status == HELD,
                                                outbox.c.not_before <= now)
                if skip:
                    query = query.where(outbox.c.id.not_in(skip))
                row = conn.execute(
                    query
                    .order_by(outbox.c.not_before, outbox.c.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    return None
                # The compare-and-set is what makes the claim exclusive on SQLite, where
                # FOR UPDATE does not exist; on PostgreSQL it is a no-op safety net.
                taken = conn.execute(
                    outbox.update()
                    .where(outbox.c.id == row.id, outbox.c.status == HELD)
                    .values(status=CLAIMED, claim_token=token, claimed_at=now, updated_at=now)
                ).rowcount
                if taken == 1:
                    return _claim_from(row, token)
        return None

    def _settle(self, claim: Claim, from_status: tuple[str, ...], **values) -> bool:
        values.setdefault("updated_at", self._now())
        return self._settler.submit(Job([(claim, from_status, values)]))[0]

    def _settle_in(self, conn: Connection, claim: Claim, from_status: tuple[str, ...],
                   **values) -> bool:
        values.setdefault("updated_at", self._now())
        keys = tuple(sorted(values))
        return run_compiled(conn, ("settle", from_status, keys), _SETTLE[from_status],
                    {**values, "row_id": claim.id, "token": claim.token},
                    column_keys=keys).rowcount == 1

    def _settle_jobs(self, jobs: list[Job]) -> None:
        """Settle the rows of concurrent callers in one transaction."""
        with self.engine.begin() as conn:
            for job in jobs:
                job.result = [self._settle_in(conn, claim, states, **values)
                              for claim, states, values in job.items]

    def checked_in(self, conn: Connection, claim: Claim, decision_ids: Sequence[str]) -> Claim:
        """Record in the caller's transaction that the release check allowed the row."""
        ids = [*claim.decision_ids, *decision_ids]
        self._settle_in(conn, claim, (CLAIMED,), needs_check=False, decision_ids=ids)
        return Claim(claim.id, claim.token, claim.provider, claim.resource, claim.payload,
                     claim.checks, claim.defaults, False, claim.tries, tuple(ids))

    def defer_again_in(self, conn: Connection, claim: Claim, not_before: datetime,
                       decision_ids: Sequence[str]) -> bool:
        """Put a claimed row back to wait, in the caller's transaction."""
        return self._settle_in(conn, claim, (CLAIMED,), status=HELD,
                               not_before=_utc(not_before), claim_token=None, claimed_at=None,
                               decision_ids=[*claim.decision_ids, *decision_ids])

    def drop(self, claim: Claim, reason: str, decision_ids: Sequence[str]) -> bool:
        """Give up a claimed row because the release check no longer allows it."""
        with self.engine.begin() as conn:
            return self.drop_in(conn, claim, reason, decision_ids)

    def drop_in(self, conn: Connection, claim: Claim, reason: str,
                decision_ids: Sequence[str]) -> bool:
        """Give up a claimed row, in the caller's transaction."""
        return self._settle_in(conn, claim, (CLAIMED,), status=DROPPED, last_error=reason,
                               decision_ids=[*claim.decision_ids, *decision_ids])

    def begin_send(self, claim: Claim) -> bool:
        """Commit that the provider is about to be called; False if the claim was lost."""
        return self._settle(claim, (CLAIMED,), status=SENDING, claimed_at=self._now())

    def finish(self, claim: Claim, outcome: Outcome, *, defer: bool = False) -> str:
        """Record how a send ended and return the row's new status.

        With ``defer``, a delivered send is settled by ``settle_deferred`` (see the
        module's docstring); any other outcome is settled before returning.
        """
        reply = outcome.reply
        values: dict[str, Any] = {
            "response_status": reply.status if reply else None,
            "response_body": reply.body.decode("utf-8", "replace") if reply else None,
            "last_error": outcome.error,
            "tries": claim.tries + outcome.attempts,
        }
        if outcome.state == SENT:
            status = DONE_SENT
        elif outcome.state == REJECTED:
            status = DONE_REJECTED
        elif outcome.state == FAILED:
            status = HELD
            values.update(claim_token=None, claimed_at=None,
                          not_before=self._now() + self._backoff(claim.tries, outcome))
        else:
            status = UNKNOWN
        if defer and status == DONE_SENT:
            self._later.add(claim, {**values, "status": status, "updated_at": self._now()})
            return status
        # A slow sender whose row was already marked unknown still reports what it learnt.
        self._settle(claim, (SENDING, UNKNOWN), status=status, **values)
        return status

    def settle_deferred(self) -> None:
        """Write the settles ``finish`` deferred (call it once the response is sent)."""
        self._later.write()

    def flush(self) -> None:
        """Write every deferred settle of this process, waiting for those under way."""
        self._later.flush()

    def _backoff(self, tries: int, outcome: Outcome) -> timedelta:
        delay = min(self.retry_base * (2 ** min(tries, 20)), self.retry_max)
        delay += self.retry_base * random.random()
        if outcome.retry_after is not None:
            delay = max(delay, timedelta(seconds=outcome.retry_after))
        return delay

    def recover_stale(self) -> dict[str, int]:
        """Free claims whose worker died: unsent ones are due again, sending ones unknown."""
        self.flush()
        now = self._now()
        cutoff = now - self.lease
        with self.engine.begin() as conn:
            freed = conn.execute(
                outbox.update()
                .where(outbox.c.status == CLAIMED, outbox.c.claimed_at < cutoff)
                .values(status=HELD, claim_token=None, claimed_at=None, updated_at=now)
            ).rowcount
            unknown = conn.execute(
                outbox.update()
                .where(outbox.c.status == SENDING, outbox.c.claimed_at < cutoff)
                .values(status=UNKNOWN, updated_at=now,
                        last_error="the sender stopped before the provider's answer was "
                                   "recorded; check the provider before retrying")
            ).rowcount
        return {"freed": freed, "unknown": unknown}

    def get(self, row_id: str) -> dict | None:
        """Return one row as a dict, or None."""
        self.flush()
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(outbox).where(outbox.c.id == row_id)).first()
        return _as_dict(row) if row else None

    def rows(self, status: str | None = None, limit: int = 100) -> list[dict]:
        """List rows, newest first, optionally of one status."""
        self.flush()
        query = sa.select(outbox).order_by(outbox.c.created_at.desc(), outbox.c.id).limit(limit)
        if status:
            query = query.where(outbox.c.status == status)
        with self.engine.connect() as conn:
            return [_as_dict(r) for r in conn.execute(query)]

    def counts(self) -> dict[str, int]:
        """Count rows per status."""
        self.flush()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(outbox.c.status, sa.func.count()).group_by(outbox.c.status))
            return {status: n for status, n in rows}

    def retry(self, row_id: str) -> bool:
        """Send an unknown or rejected row again (a human checked it was not delivered)."""
        self.flush()
        now = self._now()
        with self.engine.begin() as conn:
            return conn.execute(
                outbox.update()
                .where(outbox.c.id == row_id,
                       outbox.c.status.in_([UNKNOWN, DONE_REJECTED]))
                .values(status=HELD, not_before=now, claim_token=None, claimed_at=None,
                        updated_at=now)
            ).rowcount == 1

    def mark_sent(self, row_id: str) -> bool:
        """Settle an unknown row as sent (a human found it at the provider)."""
        self.flush()
        with self.engine.begin() as conn:
            return conn.execute(
                outbox.update()
                .where(outbox.c.id == row_id, outbox.c.status == UNKNOWN)
                .values(status=DONE_SENT, updated_at=self._now())
            ).rowcount == 1


class _Deferred:
    """Delivered sends whose settle waits until their response has gone out."""

    def __init__(self, box: Outbox):
        self._box = box
        self._lock = threading.Condition()
        self._pending: list[tuple[Claim, dict]] = []
        self._writing = 0

    def add(self, claim: Claim, values: dict) -> None:
        with self._lock:
            self._pending.append((claim, values))

    def write(self) -> None:
        """Write every settle pending now, in one group commit with concurrent ones."""
        with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return
            self._writing += 1
        try:
            self._box._settler.submit(Job([(claim, (SENDING, UNKNOWN), values)
                                           for claim, values in batch]))
        except Exception:  # noqa: BLE001 - the send went out; its row must not fail the caller
            log.exception("outbox: could not record %d delivered sends; they stay 'sending' "
                          "and become 'unknown' when their lease ends", len(batch))
        finally:
            with self._lock:
                self._writing -= 1
                self._lock.notify_all()

    def flush(self) -> None:
        """Write what is pending and wait for the writes other threads have under way."""
        while True:
            self.write()
            with self._lock:
                while self._writing and not self._pending:
                    self._lock.wait()
                if not self._pending and not self._writing:
                    return


def _as_dict(row) -> dict:
    data = dict(row._mapping)
    for name in ("not_before", "claimed_at", "created_at", "updated_at"):
        value = _utc(data.get(name))
        data[name] = value.isoformat() if value else None
    data.pop("claim_token", None)
    return data
