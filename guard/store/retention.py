"""What the store keeps only for a while: one retention rule a table, and the batched purge."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

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
    rows due reads only them.
    """

    name: str
    table: sa.Table
    times: tuple[sa.Column, ...]
    setting: str
    unit: timedelta = DAY
    where: tuple[sa.ColumnElement, ...] = ()


# Everything the store purges by age, one line a table.
RETENTION: tuple[Retention, ...] = (
    Retention("outbox", outbox, (outbox.c.not_before, outbox.c.updated_at),
              "OUTBOX_RETENTION_DAYS", where=(outbox.c.status.in_(FINISHED),)),
    Retention("webhook inbox", hook_inbox, (hook_inbox.c.processed_at,), "INBOX_RETENTION_DAYS"),
    Retention("dry runs", ledger, (ledger.c.created_at,), "DRY_RUN_RETENTION_DAYS",
              where=(ledger.c.committed == sa.false(),)),
    Retention("idempotency answers", idempotency_keys, (idempotency_keys.c.created_at,),
              "IDEMPOTENCY_HOURS", unit=HOUR),
)


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
