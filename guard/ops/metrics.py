"""GET /metrics: Prometheus text format, for a key with scope ``metrics`` (or ``admin``).

Counters and histograms live in each process; under gunicorn (several
processes) they are shared through files in ``PROMETHEUS_MULTIPROC_DIR``
(see ``guard.ops.gunicorn``), and a worker started with the same directory
on the same host adds its sends and syncs to them. What the store knows
(outbox rows by state, the oldest due row, sync lag, the write-back backlog)
is read from the store when scraped, so every process answers the same.

Labels never hold person data or ids: verdict, channel, purpose category,
rule id, provider, outcome, route template and CRM name only.
"""

from __future__ import annotations

import os
import platform
from collections import Counter as Tally
from collections.abc import Iterator
from datetime import datetime
from importlib import metadata
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from sqlalchemy.exc import SQLAlchemyError

PREFIX = "contact_guard"
MULTIPROC = "PROMETHEUS_MULTIPROC_DIR"
# Latency buckets, seconds: a check takes milliseconds, a proxied send waits for the provider.
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

# Defined once per process, in prometheus_client's default registry, which is
# file-backed when PROMETHEUS_MULTIPROC_DIR is set before the process starts.
DECISIONS = Counter(f"{PREFIX}_decisions", "Decisions recorded, by verdict, channel, purpose "
                    "category, deciding rule and whether they count (commit) or were dry runs.",
                    ["verdict", "channel", "category", "rule", "commit"])
REQUESTS = Histogram(f"{PREFIX}_request_duration_seconds", "HTTP requests by route template, "
                     "method and status class (checks: /v1/check; the proxy: /v3/mail/send, "
                     "Messages.json, Calls.json).", ["route", "method", "status"],
                     buckets=BUCKETS)
FORWARDS = Counter(f"{PREFIX}_upstream_forwards", "Sends forwarded to a provider, by provider "
                   "and outcome (sent, rejected, failed, unknown).", ["provider", "outcome"])
FORWARD_SECONDS = Histogram(f"{PREFIX}_upstream_forward_duration_seconds", "Time of one "
                            "outbox send to its provider, retries included.", ["provider"],
                            buckets=BUCKETS)
SYNC_RUNS = Counter(f"{PREFIX}_crm_sync_runs", "CRM sync runs, by CRM and result "
                    "(ok, error).", ["crm", "result"])
SYNC_RECORDS = Counter(f"{PREFIX}_crm_sync_records", "CRM records read by syncs.", ["crm"])
SYNC_REJECTED = Counter(f"{PREFIX}_crm_sync_rejected", "Synced events the store rejected.",
                        ["crm"])
SYNC_ERRORS = Counter(f"{PREFIX}_crm_api_errors", "Sync runs ended by a CRM API error.", ["crm"])
# The newest across processes: alert on time() minus this.
SYNC_LAST_OK = Gauge(f"{PREFIX}_crm_sync_last_success_timestamp_seconds", "When a sync run of "
                     "the CRM last finished without error (Unix time).", ["crm"],
                     multiprocess_mode="max")

_state = {"enabled": True}


def enabled() -> bool:
    """Say whether this process counts (``METRICS`` setting)."""
    return _state["enabled"]


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Count one HTTP request and its time."""
    if _state["enabled"]:
        REQUESTS.labels(route, method, f"{status // 100}xx").observe(seconds)


def observe_forward(provider: str, outcome: str, seconds: float) -> None:
    """Count one outbox send and its time."""
    if _state["enabled"]:
        FORWARDS.labels(provider, outcome).inc()
        FORWARD_SECONDS.labels(provider).observe(seconds)


def observe_sync(crm: str, result: str, records: int = 0, rejected: int = 0) -> None:
    """Count one CRM sync run."""
    if _state["enabled"]:
        SYNC_RUNS.labels(crm, result).inc()
        if records:
            SYNC_RECORDS.labels(crm).inc(records)
        if rejected:
            SYNC_REJECTED.labels(crm).inc(rejected)
        if result == "error":
            SYNC_ERRORS.labels(crm).inc()
        else:
            SYNC_LAST_OK.labels(crm).set_to_current_time()


def decision_labels(decision: Any, attempt: Any, policy: Any, committed: bool) -> tuple:
    """Label a decision: verdict, channel, category, the rule that made the verdict, commit."""
    rule = next((r.rule for r in decision.reasons if r.effect == decision.verdict), "")
    category = policy.category(attempt.purpose) or "unknown"
    return (decision.verdict, attempt.channel, category, rule, "true" if committed else "false")


def count_decisions(tally: Tally) -> None:
    """Add a committed transaction's decisions, tallied by their labels."""
    for labels, n in tally.items():
        DECISIONS.labels(*labels).inc(n)


# -- what the store knows, read when scraped ------------------------------------------------


class StoreCollector:
    """Gauges read from the store at each scrape: outbox, sync lag, write-back backlog, policy."""

    def __init__(self, app: Flask):
        self.app = app

    def collect(self) -> Iterator[Any]:
        from guard.services import services

        used = services(self.app)
        policy = used.guard.policy
        yield _info("policy", "The loaded policy.", {
            "version": str(getattr(policy, "version", "")),
            "rules": str(len(getattr(policy, "rules", ()) or ()))})
        yield _info("build", "This build of the guard.", {
            "version": _version(), "python": platform.python_version()})
        up = GaugeMetricFamily(f"{PREFIX}_store_up", "1 when the store answered this scrape.")
        try:
            found = store_figures(used.engine, used.guard.clock())
        except SQLAlchemyError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from found


def _info(name: str, documentation: str, value: dict[str, str]) -> InfoMetricFamily:
    family = InfoMetricFamily(f"{PREFIX}_{name}", documentation)
    family.add_metric([], value)
    return family


def _version() -> str:
    try:
        return metadata.version("contact-guard")
    except metadata.PackageNotFoundError:
        return "unknown"


def store_figures(engine: sa.Engine, now: datetime) -> list[Any]:
    """Read the store's gauges: outbox by state, oldest due row, sync lag, write-back backlog."""
    from guard.store.engine import read_only
    from guard.store.ledger import utc
    from guard.store.tables import (
        CRM_STREAM,
        FLAGS_STREAM,
        HELD,
        STATUSES,
        erasure_notices,
        outbox,
        owner_tasks,
        people,
        sync_bookmarks,
    )

    rows = GaugeMetricFamily(f"{PREFIX}_outbox_rows", "Outbox rows by state.", labels=["state"])
    oldest = GaugeMetricFamily(f"{PREFIX}_outbox_oldest_due_seconds",
                               "Age of the oldest outbox row due to be sent (0: none due).")
    lag = GaugeMetricFamily(f"{PREFIX}_crm_sync_lag_seconds", "Seconds since a CRM stream's "
                            "bookmark last moved, the stalest stream of each CRM.",
                            labels=["crm"])
    backlog = GaugeMetricFamily(f"{PREFIX}_writeback_backlog", "Owner tasks waiting to reach "
                                "a CRM, and erasure notices not yet told.", labels=["kind"])
    flags = GaugeMetricFamily(f"{PREFIX}_writeback_flags_pending", "People whose profile "
                              "changed since the last flag write-back to the CRM (at most this "
                              "many flag writes wait).", labels=["crm"])
    with read_only(engine.connect()) as conn:
        counts = dict(conn.execute(sa.select(outbox.c.status, sa.func.count())
                                   .group_by(outbox.c.status)).all())
        due = conn.execute(sa.select(sa.func.min(outbox.c.not_before))
                           .where(outbox.c.status == HELD, outbox.c.not_before <= now)
                           ).scalar()
        # The CRM's own streams; the guard's (its flag write-back watermark) move every cycle.
        synced = conn.execute(sa.select(sync_bookmarks.c.connector,
                                        sa.func.min(sync_bookmarks.c.updated_at))
                              .where(CRM_STREAM)
                              .group_by(sync_bookmarks.c.connector)).all()
        tasks = conn.execute(sa.select(sa.func.count()).select_from(owner_tasks)
                             .where(owner_tasks.c.status == "open")).scalar()
        notices = conn.execute(sa.select(sa.func.count()).select_from(erasure_notices)).scalar()
        marks = conn.execute(sa.select(sync_bookmarks.c.connector, sync_bookmarks.c.value)
                             .where(sync_bookmarks.c.stream == FLAGS_STREAM)).all()
        for crm, mark in marks:
            since = (mark or {}).get("since")
            if since:
                flags.add_metric([crm], conn.execute(
                    sa.select(sa.func.count()).select_from(people).where(
                        people.c.updated_at > datetime.fromisoformat(since),
                        people.c.erased.is_(False), people.c.flags_hash.is_not(None))
                ).scalar() or 0)
    for status in STATUSES:
        rows.add_metric([status], counts.get(status, 0))
    oldest.add_metric([], max(0.0, (now - utc(due)).total_seconds()) if due else 0.0)
    for crm, updated in synced:
        lag.add_metric([crm], max(0.0, (now - utc(updated)).total_seconds()))
    backlog.add_metric(["tasks"], tasks or 0)
    backlog.add_metric(["erasure_notices"], notices or 0)
    return [rows, oldest, lag, backlog, flags]


# -- the endpoint ---------------------------------------------------------------------------

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def scrape() -> Response:
    """Answer the metrics in Prometheus text format (scope ``metrics`` or ``admin``)."""
    from guard.http.auth import authenticate_request

    authenticate_request("metrics")
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get(MULTIPROC):
        MultiProcessCollector(registry)
    else:
        from prometheus_client import REGISTRY

        registry.register(_Forward(REGISTRY))
    registry.register(current_app.extensions["guard.ops.store_collector"])
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


class _Forward:
    """The default registry's metrics, collected into this scrape's registry."""

    def __init__(self, source: CollectorRegistry):
        self.source = source

    def collect(self) -> Iterator[Any]:
        return self.source.collect()


def watch_decisions(app: Flask) -> None:
    """Count the decisions ``app``'s checks record, once their transaction commits."""
    from guard.services import services

    guard = services(app).guard
    if any(getattr(recorder, "counted", False) for recorder in guard.recorders):
        return
    engine = guard.engine

    def counted(conn, recorded) -> None:
        # Tallied on the connection and added at commit: a batch rolled back (and run
        # again caller by caller) is counted once.
        tally = conn.info.setdefault(_PENDING, Tally())
        for decision, attempt, committed in recorded:
            tally[decision_labels(decision, attempt, guard.policy, committed)] += 1

    counted.counted = True  # type: ignore[attr-defined]
    guard.recorders.append(counted)
    if not sa.event.contains(engine, "commit", _on_commit):
        sa.event.listen(engine, "commit", _on_commit)
        sa.event.listen(engine, "rollback", _on_rollback)


_PENDING = "guard.ops.decisions"


def _on_commit(conn) -> None:
    tally = conn.info.pop(_PENDING, None)
    if tally and _state["enabled"]:
        count_decisions(tally)


def _on_rollback(conn) -> None:
    conn.info.pop(_PENDING, None)


def init_app(app: Flask) -> None:
    """Register GET /metrics and count decisions, unless the ``METRICS`` setting is off."""
    _state["enabled"] = bool(app.config["METRICS"])
    if not _state["enabled"]:
        return
    app.extensions["guard.ops.store_collector"] = StoreCollector(app)
    app.register_blueprint(bp)
    watch_decisions(app)
