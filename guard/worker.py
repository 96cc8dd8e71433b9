"""The background worker: release the outbox when sends are due, then run the scheduled jobs.

Several workers (or replicas) may run against one PostgreSQL store: each row
is claimed by one of them (see ``guard.proxy.outbox``). A worker stopped with
SIGTERM finishes the row in hand; one killed outright leaves at most one row
``sending``, which becomes ``unknown`` when its lease ends, never sent twice.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from sqlalchemy.exc import SQLAlchemyError

from guard.automation import hubspot_waits
from guard.checks import flags
from guard.crm.jobs import crm_jobs
from guard.errors import InvalidField
from guard.http import keys
from guard.proxy import delivery
from guard.proxy.outbox import DROPPED, Claim, Outbox
from guard.services import follow_policy, services
from guard.store.retention import RETENTION, keep_for, purge
from policies.model import VERDICT_RANK

log = logging.getLogger(__name__)

# A scheduled job runs once per worker cycle, after the outbox, as job(app).
Job = Callable[[Flask], Any]


def scheduled_jobs(app: Flask) -> list[Job]:
    """List the jobs a worker of ``app`` runs each cycle, in order.

    Flags are refreshed before the CRM jobs write them back, so a flag that
    ran out leaves for the CRM in the same cycle.
    """
    return [refresh_flags, purge_expired, *crm_jobs(services(app).crm),
            *hubspot_waits.waits_jobs(app)]


def run(app: Flask, *, once: bool = False, interval: float = 5.0,
        stop: threading.Event | None = None,
        report: Callable[[Counter], None] | None = None) -> None:
    """Release the outbox and run the jobs every ``interval`` seconds until stopped."""
    stop = stop or threading.Event()
    # Built once: a CRM job keeps its connector (and what it remembers) between cycles.
    jobs = scheduled_jobs(app)
    with app.app_context():
        while not stop.is_set():
            try:
                follow_policy(app)
                counts = release_due(app, stop=stop)
            except SQLAlchemyError as exc:
                # The store restarting or out of reach: wait and try again, as a web process
                # answers 503 meanwhile. A row left mid-send is settled by its lease.
                log.warning("store unavailable, outbox not released this cycle: %s",
                            exc.__class__.__name__)
                counts = Counter()
            else:
                run_jobs(app, jobs)
            if report and counts:
                report(counts)
            if once:
                return
            stop.wait(interval)


def stop_on_signals(stop: threading.Event) -> None:
    """Let SIGTERM and SIGINT finish the row in hand, then stop."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())


def run_jobs(app: Flask, jobs: Iterable[Job]) -> None:
    """Run each job once; one that fails is logged and the others still run."""
    for job in jobs:
        try:
            job(app)
        except Exception:  # one broken job (or one CRM's bug) must not stop the others
            log.exception("scheduled job %s failed", getattr(job, "__name__", job))


def refresh_flags(app: Flask) -> None:
    """Recompute flags that ran out (a cool-down or contract ended) or a new policy changes."""
    guard = services(app).guard
    changed = flags.refresh_lapsed(guard.engine, guard.policy, guard.clock())
    if changed:
        log.info("flags refreshed for %d people whose flags ran out", changed)
    changed = flags.refresh_for_policy(guard.engine, guard.policy, guard.clock())
    if changed:
        log.info("flags of %d people changed under policy %s", changed, guard.policy.version)


def purge_expired(app: Flask) -> None:
    """Purge every table's rows past their retention setting (see ``RETENTION``)."""
    guard = services(app).guard
    now = guard.clock()
    for rule in RETENTION:
        deleted = purge(guard.engine, rule, now, keep=keep_for(rule, app.config, guard.policy))
        if deleted:
            log.info("purged %d %s rows past GUARD_%s", deleted, rule.name, rule.setting)


# -- the outbox ---------------------------------------------------------------------------


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
