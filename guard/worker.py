"""The background worker: release the outbox when sends are due, and run scheduled jobs.

Several workers (or replicas) may run against one PostgreSQL store: each row
is claimed by one of them (see ``guard.outbox``). A worker stopped with
SIGTERM finishes the row in hand; one killed outright leaves at most one row
``sending``, which becomes ``unknown`` when its lease ends, never sent twice.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from guard.checks import flags
from guard.errors import InvalidField
from guard.http import keys
from guard.proxy import delivery
from guard.proxy.outbox import DROPPED, FINISHED, Claim, Outbox
from guard.services import services
from guard.store.tables import hook_inbox, idempotency_keys, ledger, outbox
from policies.model import VERDICT_RANK

log = logging.getLogger(__name__)

DAY, HOUR = timedelta(days=1), timedelta(hours=1)
# Rows deleted per transaction, and transactions per table in one worker cycle: each
# delete holds its locks (SQLite: the write lock) for milliseconds, and a backlog (a large
# screen's dry runs coming of age) is worked off over a few cycles.
PURGE_BATCH = 1000
PURGE_BATCHES_PER_CYCLE = 20


@dataclass(frozen=True)
class Retention:
    """Rows of one table kept for a setting's number of ``unit``s, then purged.

    A row goes once every column of ``times`` is older than that and
    ``where`` holds; the first of ``times`` leads an index, so finding the
    rows due reads only them.
    """

    name: str
    table: sa.Table
    times: tuple[sa.Column, ...]
    setting: str
    unit: timedelta = DAY
    where: tuple[sa.ColumnElement, ...] = ()


# Everything the store purges by age, one line a table.
RETENTION: list[Retention] = [
    Retention("outbox", outbox, (outbox.c.not_before, outbox.c.updated_at),
              "OUTBOX_RETENTION_DAYS", where=(outbox.c.status.in_(FINISHED),)),
    Retention("webhook inbox", hook_inbox, (hook_inbox.c.processed_at,), "INBOX_RETENTION_DAYS"),
    Retention("dry runs", ledger, (ledger.c.created_at,), "DRY_RUN_RETENTION_DAYS",
              where=(ledger.c.committed == sa.false(),)),
    Retention("idempotency answers", idempotency_keys, (idempotency_keys.c.created_at,),
              "IDEMPOTENCY_HOURS", unit=HOUR),
]


def purge(engine: sa.Engine, rule: Retention, now: datetime, *, keep: float,
          batch: int = PURGE_BATCH, batches: int = PURGE_BATCHES_PER_CYCLE) -> int:
    """Delete up to ``batches`` batches of ``rule``'s rows older than ``keep`` units; count."""
    cutoff = now.astimezone(UTC) - rule.unit * keep
    key = tuple(rule.table.primary_key.columns)
    due = sa.select(*key).where(*(t < cutoff for t in rule.times), *rule.where).limit(batch)
    if engine.dialect.name == "postgresql":
        # Two workers purging at once take different rows instead of waiting on each other.
        due = due.with_for_update(skip_locked=True)
    which = key[0].in_(due) if len(key) == 1 else sa.tuple_(*key).in_(due)
    deleted = 0
    for _ in range(batches):
        with engine.begin() as conn:
            count = conn.execute(rule.table.delete().where(which)).rowcount
        deleted += count
        if count < batch:
            break
    return deleted


def purge_expired(app: Flask) -> None:
    """Purge every table's rows past their retention setting (see RETENTION)."""
    guard = services(app).guard
    now = guard.clock()
    for rule in RETENTION:
        deleted = purge(guard.engine, rule, now, keep=app.config[rule.setting])
        if deleted:
            log.info("purged %d %s rows past GUARD_%s", deleted, rule.name, rule.setting)


def refresh_flags(app: Flask) -> None:
    """Recompute flags that ran out (a cool-down or contract ended) or a new policy changes."""
    guard = services(app).guard
    changed = flags.refresh_lapsed(guard.engine, guard.policy, guard.clock())
    if changed:
        log.info("flags refreshed for %d people whose flags ran out", changed)
    changed = flags.refresh_for_policy(guard.engine, guard.policy, guard.clock())
    if changed:
        log.info("flags of %d people changed under policy %s", changed, guard.policy.version)


# Scheduled jobs run once per worker cycle after the outbox, each as job(app). The CRM
# sync and write-back append theirs here (after this one, so refreshed flags go out in
# the same cycle); a job that fails is logged, the others still run.
JOBS: list[Callable[[Flask], Any]] = [refresh_flags, purge_expired]


def _recheck(app: Flask, box: Outbox, claim: Claim) -> Claim | None:
    """Check a deferred row again; return the claim to send, or None if it is not to be sent."""
    guard = services(app).guard
    settled: dict[str, Claim | None] = {}

    def settle(conn, outcomes: list) -> None:
        # In the checks' transaction: the row's new state commits with its decisions.
        for outcome in outcomes:
            if isinstance(outcome, InvalidField):
                raise outcome
        ids = [d.decision_id for d in outcomes if d.decision_id]
        worst = max(outcomes, key=lambda d: VERDICT_RANK[d.verdict])
        settled["claim"] = None
        if worst.verdict in ("block", "reroute"):
            reasons = " ".join(r.message for r in worst.reasons)
            box.drop_in(conn, claim, f"{worst.verdict} at release: {reasons}", ids)
        elif worst.verdict == "defer":
            box.defer_again_in(conn, claim, worst.not_before, ids)
        else:
            settled["claim"] = box.checked_in(conn, claim, ids)

    try:
        guard.check_many(list(claim.checks), commit=True, defaults=claim.defaults, then=settle)
    except InvalidField as exc:
        # The policy changed under the held send (e.g. a purpose was removed): never send
        # what today's policy cannot even judge. Its other checks rolled back with it.
        box.drop(claim, f"no longer checkable: {exc.detail}", [])
        return None
    return settled["claim"]


def release_one(app: Flask, exclude: set[str] | None = None) -> str | None:
    """Claim, re-check and send the next due outbox row; return its new status, None if none.

    Rows in ``exclude`` (already tried in this cycle) wait for the next cycle, so a
    provider that keeps failing is not hammered in a loop.
    """
    box: Outbox = services(app).outbox
    claim = box.claim_due(exclude or ())
    if claim is None:
        return None
    if exclude is not None:
        exclude.add(claim.id)
    revoked = keys.revocation(services(app).engine, claim.key_id)
    if revoked:
        box.drop(claim, revoked, [])
        return DROPPED
    if claim.needs_check:
        checked = _recheck(app, box, claim)
        if checked is None:
            return (box.get(claim.id) or {}).get("status")
        claim = checked
    if not box.begin_send(claim):
        return "lost"
    status, _ = delivery.deliver(claim, app=app)
    return status


def release_due(app: Flask, *, limit: int = 1000,
                stop: threading.Event | None = None) -> Counter:
    """Release due outbox rows one at a time until none is due; count the results."""
    box: Outbox = services(app).outbox
    counts: Counter = Counter({k: v for k, v in box.recover_stale().items() if v})
    tried: set[str] = set()
    for _ in range(limit):
        if stop is not None and stop.is_set():
            break
        status = release_one(app, tried)
        if status is None:
            break
        counts[status] += 1
    return counts


def run_jobs(app: Flask) -> None:
    """Run every scheduled job once."""
    for job in list(JOBS):
        try:
            job(app)
        except Exception:  # one broken job must not stop outbox delivery
            log.exception("scheduled job %s failed", getattr(job, "__name__", job))


def run(app: Flask, *, once: bool = False, interval: float = 5.0,
        stop: threading.Event | None = None,
        report: Callable[[Counter], None] | None = None) -> None:
    """Release the outbox and run jobs every ``interval`` seconds until stopped."""
    stop = stop or threading.Event()
    with app.app_context():
        while not stop.is_set():
            counts = release_due(app, stop=stop)
            run_jobs(app)
            if report and counts:
                report(counts)
            if once:
                return
            stop.wait(interval)


def stop_on_signals(stop: threading.Event) -> None:
    """Let SIGTERM and SIGINT finish the row in hand, then stop."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
