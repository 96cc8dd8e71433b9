"""The overview: verdicts per day (30 days), top stopping rules, outbox by state, CRM sync.

Counting 30 days of a large ledger is not a page-load's work. A day's counts
are taken once, the first time the overview shows it after it ended, and kept
in ``console_days`` for every replica (a decision recorded later with an
earlier time is not in them); today is counted live, from the index
``ix_ledger_at_id`` alone. The top rules are those of the newest
``RULES_SAMPLE`` stopped contacts of the 30 days, kept for ``RULES_SECONDS``.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime, time, timedelta
from time import monotonic

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from guard.console import charts
from guard.console.decisions import DECIDED
from guard.console.pages import bp, engine, page
from guard.services import services
from guard.store.engine import read_only
from guard.store.tables import (
    CRM_STREAM,
    FLAGS_STREAM,
    LAST_RUN_STREAM,
    console_days,
    erasure_notices,
    ledger,
    owner_tasks,
    people,
    sync_bookmarks,
)
from policies.model import VERDICTS, parse_datetime

DAYS = 30
PAST_DAYS_SECONDS = 3600.0
RULES_SECONDS = 60.0
RULES_SAMPLE = 10_000
TOP_RULES = 10
_EXTENSION = "guard.console.overview"


class _Cache:
    """Figures of one app's store, each kept until its time runs out."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.values: dict[str, tuple[float, object]] = {}

    def get(self, name: str, seconds: float, make):
        with self.lock:
            found = self.values.get(name)
        if found and monotonic() - found[0] < seconds:
            return found[1]
        value = make()
        with self.lock:
            self.values[name] = (monotonic(), value)
        return value


def _cache() -> _Cache:
    return current_app.extensions.setdefault(_EXTENSION, _Cache())


def _day_counts(start: datetime, end: datetime) -> dict[str, Counter]:
    """Count decisions per UTC day and verdict in ``[start, end)``."""
    counts: dict[str, Counter] = {}
    with read_only(engine().connect()) as conn:
        if conn.dialect.name == "postgresql":
            day = sa.func.to_char(sa.func.timezone("UTC", ledger.c.at), "YYYY-MM-DD")
        else:
            day = sa.func.substr(ledger.c.at, 1, 10)
        rows = conn.execute(sa.select(day.label("day"), ledger.c.verdict, sa.func.count())
                            .where(ledger.c.at >= start, ledger.c.at < end, DECIDED)
                            .group_by(day, ledger.c.verdict)).all()
    for d, verdict, n in rows:
        counts.setdefault(str(d), Counter())[verdict] += n
    return counts


def verdicts_per_day(now: datetime) -> tuple[list[str], dict[str, Counter]]:
    """Return the last 30 days (oldest first) and their counts by verdict."""
    today = datetime.combine(now.astimezone(UTC).date(), time(), UTC)
    first = today - timedelta(days=DAYS - 1)
    days = [(first + timedelta(days=i)).date().isoformat() for i in range(DAYS)]
    counts = dict(_cache().get(f"days:{first.date()}", PAST_DAYS_SECONDS,
                               lambda: past_days(days[:-1])))
    counts.update(_day_counts(today, today + timedelta(days=1)))
    return days, counts


def past_days(days: list[str]) -> dict[str, Counter]:
    """Return the counts of ended days, counting (once, for every replica) those not kept yet."""
    counts: dict[str, Counter] = {}
    with read_only(engine().connect()) as conn:
        for day, verdict, n in conn.execute(
                sa.select(console_days.c.day, console_days.c.verdict, console_days.c.n)
                .where(console_days.c.day.in_(days))):
            counts.setdefault(day, Counter())[verdict] = n
    missing = [day for day in days if day not in counts]
    if not missing:
        return counts
    start = datetime.fromisoformat(missing[0]).replace(tzinfo=UTC)
    end = datetime.fromisoformat(missing[-1]).replace(tzinfo=UTC) + timedelta(days=1)
    found = _day_counts(start, end)
    rows = [{"day": day, "verdict": verdict, "n": found.get(day, Counter())[verdict]}
            for day in missing for verdict in VERDICTS]
    try:
        with engine().begin() as conn:
            conn.execute(sa.insert(console_days), rows)
    except IntegrityError:
        pass  # another replica counted them at the same time: the same counts
    for day in missing:
        counts[day] = Counter({v: found.get(day, Counter())[v] for v in VERDICTS})
    return counts


def top_rules(now: datetime) -> tuple[list[tuple[str, int]], int]:
    """Return the rules that stopped most of the newest stopped contacts, and how many were read."""
    def count() -> tuple[list[tuple[str, int]], int]:
        since = now - timedelta(days=DAYS)
        stopped = (sa.select(ledger.c.decision)
                   .where(ledger.c.at >= since, ledger.c.at <= now,
                          ledger.c.verdict != "allow", DECIDED)
                   .order_by(ledger.c.at.desc()).limit(RULES_SAMPLE).subquery())
        with read_only(engine().connect()) as conn:
            if conn.dialect.name == "postgresql":
                reason = sa.func.jsonb_array_elements(
                    sa.cast(stopped.c.decision, sa.dialects.postgresql.JSONB)["reasons"]
                ).table_valued("value").render_derived()
                rule = reason.c.value.op("->>")("rule")
            else:
                reason = sa.func.json_each(stopped.c.decision, "$.reasons").table_valued(
                    "value")
                rule = sa.func.json_extract(reason.c.value, "$.rule")
            rows = conn.execute(
                sa.select(rule.label("rule"), sa.func.count().label("n"))
                .select_from(stopped).join(reason, sa.true())
                .group_by(rule).order_by(sa.desc("n")).limit(TOP_RULES)).all()
            read = conn.execute(sa.select(sa.func.count()).select_from(stopped)).scalar()
        return [(r.rule, r.n) for r in rows if r.rule], read

    return _cache().get("rules", RULES_SECONDS, count)


def crm_status() -> tuple[list[dict], int]:
    """Each CRM's last sync run and bookmarks, and what still waits to be written back."""
    systems = set(services().crm.systems)
    found = []
    with read_only(engine().connect()) as conn:
        synced = conn.execute(
            sa.select(sync_bookmarks.c.connector, sa.func.max(sync_bookmarks.c.updated_at),
                      sa.func.count())
            .where(CRM_STREAM)
            .group_by(sync_bookmarks.c.connector)).all()
        own: dict[str, dict] = {FLAGS_STREAM: {}, LAST_RUN_STREAM: {}}
        for system, stream, value in conn.execute(
                sa.select(sync_bookmarks.c.connector, sync_bookmarks.c.stream,
                          sync_bookmarks.c.value)
                .where(sync_bookmarks.c.stream.in_(tuple(own)))):
            own[stream][system] = value
        marks, runs = own[FLAGS_STREAM], own[LAST_RUN_STREAM]
        tasks = conn.execute(sa.select(sa.func.count()).select_from(owner_tasks)
                             .where(owner_tasks.c.status == "open")).scalar()
        notices = dict(conn.execute(sa.select(erasure_notices.c.system, sa.func.count())
                                    .group_by(erasure_notices.c.system)).all())
        by_system = {row[0]: row for row in synced}
        for system in sorted(systems | set(by_system) | set(runs)):
            row = by_system.get(system)
            since = (marks.get(system) or {}).get("since")
            backlog = None
            if since:
                since = parse_datetime(since)
                backlog = conn.execute(
                    sa.select(sa.func.count()).select_from(
                        sa.select(people.c.id).where(people.c.updated_at > since,
                                                     people.c.flags_hash.is_not(None))
                        .limit(10_001).subquery())).scalar()
            run = runs.get(system)
            if run:
                run = {**run, "at": parse_datetime(run["at"])}
            found.append({"system": system, "last_sync": row[1] if row else None, "run": run,
                          "streams": row[2] if row else 0, "flags_since": since,
                          "flag_backlog": backlog, "erasure_notices": notices.get(system, 0),
                          "configured": system in systems})
    return found, tasks


@bp.get("/")
def overview():
    """Show the overview."""
    now = services().guard.clock()
    days, counts = verdicts_per_day(now)
    totals = Counter()
    for day in days:
        totals.update(counts.get(day, {}))
    crms, open_tasks = crm_status()
    rules, read = top_rules(now)
    return page("console/overview.html", title="Overview",
                chart=charts.stacked_days(days, counts), totals=totals, verdicts=VERDICTS,
                colours=charts.COLOURS, rules=rules, rules_read=read,
                outbox=services().outbox.counts(),
                crms=crms, open_tasks=open_tasks, policy=services().guard.policy)
