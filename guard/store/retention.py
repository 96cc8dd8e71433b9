"""What the store keeps only for a while: one retention rule a table, and the batched purge.

Committed ledger entries are the audit trail and what caps count: each is
kept for ``GUARD_AUDIT_RETENTION_DAYS`` and never less than the longest
window any rule of the policy counts (``keep_for``), so a purge can never
let a capped person be contacted again early.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from guard.store.tables import FINISHED, hook_inbox, idempotency_keys, ledger, outbox

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
    rows due reads only them. With ``policy_window``, never before the
    longest window the policy's rules count has passed.
    """

    name: str
    table: sa.Table
    times: tuple[sa.Column, ...]
    setting: str
    unit: timedelta = DAY
    where: tuple[sa.ColumnElement, ...] = ()
    policy_window: bool = False


# Everything the store purges by age, one line a table.
RETENTION: tuple[Retention, ...] = (
    Retention("outbox", outbox, (outbox.c.not_before, outbox.c.updated_at),
              "OUTBOX_RETENTION_DAYS", where=(outbox.c.status.in_(FINISHED),)),
    Retention("webhook inbox", hook_inbox, (hook_inbox.c.processed_at,), "INBOX_RETENTION_DAYS"),
    Retention("dry runs", ledger, (ledger.c.created_at,), "DRY_RUN_RETENTION_DAYS",
              where=(ledger.c.committed == sa.false(),)),
    # By the contact's time, which the rules count by; created_at too, so an entry synced
    # late (a touch reported years after) still stays a while for its audit.
    Retention("committed entries", ledger, (ledger.c.at, ledger.c.created_at),
              "AUDIT_RETENTION_DAYS", where=(ledger.c.committed == sa.true(),),
              policy_window=True),
    Retention("idempotency answers", idempotency_keys, (idempotency_keys.c.created_at,),
              "IDEMPOTENCY_HOURS", unit=HOUR),
)


def keep_for(rule: Retention, config: Mapping[str, Any], policy: Any = None) -> float:
    """Return how many of ``rule``'s units its rows are kept: the setting, or the policy's
    longest counted window when that is longer."""
    keep = float(config[rule.setting])
    window = getattr(policy, "ledger_window", None) if rule.policy_window else None
    if window is not None:
        keep = max(keep, math.ceil(window / rule.unit))
    return keep


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


# -- how big the store is, and how fast it grows ---------------------------------------------

# The column that says when a row was added, per table that has one (first found wins).
_ADDED = ("created_at", "received_at", "erased_at")


@dataclass(frozen=True)
class TableSize:
    """One table: its rows, its bytes (indexes included), and rows added per day lately."""

    name: str
    rows: int
    bytes: int
    added_per_day: float | None

    @property
    def per_year(self) -> float | None:
        """Bytes a year of rows at the recent rate adds, at this table's bytes per row."""
        if self.added_per_day is None or not self.rows:
            return None
        return self.added_per_day * 365 * self.bytes / self.rows


def store_sizes(engine: sa.Engine, now: datetime, *, days: int = 30) -> list[TableSize]:
    """Measure every table of the store: rows, bytes, and rows added per day over ``days``."""
    from guard.store.tables import metadata

    since = now.astimezone(UTC) - timedelta(days=days)
    found = []
    with engine.connect() as conn:
        present = set(sa.inspect(conn).get_table_names())
        sizes = _bytes(conn, sorted(present))
        for table in metadata.sorted_tables:
            if table.name not in present:
                continue
            rows = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0
            added = next((table.c[n] for n in _ADDED if n in table.c), None)
            rate = None
            if added is not None:
                recent = conn.execute(sa.select(sa.func.count()).select_from(table)
                                      .where(added >= since)).scalar() or 0
                rate = recent / days
            found.append(TableSize(table.name, rows, sizes.get(table.name, 0), rate))
    return sorted(found, key=lambda t: (-t.bytes, t.name))


def _bytes(conn: sa.Connection, tables: list[str]) -> dict[str, int]:
    """Return each table's bytes on disk, its indexes (and PostgreSQL's TOAST) included."""
    if conn.dialect.name == "postgresql":
        rows = conn.execute(sa.text(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "WHERE c.relkind IN ('r', 'p') AND c.relnamespace = "
            "(SELECT oid FROM pg_namespace WHERE nspname = current_schema()) "
            "AND c.relname = ANY(:names)"), {"names": tables})
        return {name: int(size) for name, size in rows}
    # SQLite: pages of each table and of its indexes, from the dbstat virtual table.
    owner = dict(conn.execute(sa.text(
        "SELECT name, tbl_name FROM sqlite_schema WHERE type IN ('table', 'index')")).all())
    totals: dict[str, int] = {}
    for name, size in conn.execute(sa.text("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")):
        table = owner.get(name, name)
        totals[table] = totals.get(table, 0) + int(size or 0)
    return totals
