"""The contact ledger: every decision the guard made and every touch other systems reported.

Frequency, duplicate and prerequisite rules count from it. Only committed
rows count (a dry run is recorded, so its decision can be looked up, but
never counts toward a cap); rules themselves count only ``allow`` entries.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from guard.db import ledger
from policies.model import Attempt, Decision, Evidence, LedgerEntry, parse_datetime


def new_decision_id() -> str:
    """Return a fresh decision id: the millisecond it was made, then 64 random bits."""
    # Time first, so new ledger rows land at the end of the id index instead of on a
    # random page of it, which a large store would have to read and rewrite per check.
    return f"dec_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(8)}"


# Built once: a statement reused with new parameters skips SQLAlchemy's per-call
# construction and cache-key work on the check path.
_INSERT = sa.insert(ledger)
# What the rules read of an entry; a check selects these joined onto the person's row.
ENTRY_COLUMNS = (ledger.c.at, ledger.c.channel, ledger.c.purpose, ledger.c.sender,
                 ledger.c.campaign, ledger.c.template, ledger.c.product, ledger.c.verdict,
                 ledger.c.source)


def counted_since(person_id: sa.ColumnElement, since: sa.ColumnElement) -> sa.ColumnElement:
    """Return the join condition of a person's committed entries from ``since`` on."""
    return sa.and_(ledger.c.person_id == person_id, ledger.c.at >= since,
                   ledger.c.committed.is_(True))


def record_decision(conn: Connection, decision: Decision, attempt: Attempt, *,
                    committed: bool, now: datetime) -> None:
    """Write a decision (with its attempt) to the ledger."""
    conn.execute(_INSERT, _row(decision, attempt, committed, now))


def record_many(conn: Connection, decided: list[tuple[Decision, Attempt]], *,
                committed: bool, now: datetime) -> None:
    """Write many decisions in one statement."""
    conn.execute(_INSERT, [_row(d, a, committed, now) for d, a in decided])


def _row(decision: Decision, attempt: Attempt, committed: bool, now: datetime) -> dict:
    return dict(
        id=decision.decision_id,
        person_id=decision.person,
        at=utc(attempt.at),
        channel=attempt.channel,
        purpose=attempt.purpose,
        sender=attempt.sender,
        campaign=attempt.campaign,
        template=attempt.template,
        product=attempt.product,
        verdict=decision.verdict,
        committed=committed,
        attempt=attempt.to_dict(),
        decision=decision.to_dict(),
        policy_version=decision.policy_version,
        source=None,
        record_key=None,
        created_at=now,
    )


def entries(rows: Iterable, since: datetime) -> list[LedgerEntry]:
    """Turn rows with ``ENTRY_COLUMNS`` (an outer join: ``at`` may be None) into entries."""
    found = []
    for r in rows:
        if r.at is None:
            continue
        at = _aware(r.at)
        if at >= since:
            found.append(LedgerEntry(
                at=at, channel=r.channel, purpose=r.purpose, sender=r.sender,
                campaign=r.campaign, template=r.template, product=r.product,
                verdict=r.verdict, source=Evidence.from_dict(r.source) if r.source else None))
    return found


def upsert_touch(conn: Connection, person_id: str, key: str, source: Evidence,
                 fields: Mapping[str, Any], now: datetime) -> None:
    """Record (or update) a contact another system reported."""
    values = {
        "person_id": person_id,
        "at": utc(parse_datetime(fields["at"])),
        "channel": fields["channel"],
        "purpose": fields["purpose"],
        "sender": fields["sender"],
        "campaign": fields.get("campaign"),
        "template": fields.get("template"),
        "product": fields.get("product"),
        "verdict": "allow",
        "committed": True,
        "source": source.to_dict(),
    }
    updated = conn.execute(sa.update(ledger).where(ledger.c.record_key == key).values(**values))
    if not updated.rowcount:
        conn.execute(sa.insert(ledger).values(id="tch_" + secrets.token_hex(10),
                                              record_key=key, created_at=now, **values))


def delete_touch(conn: Connection, key: str) -> None:
    """Forget a reported contact whose record was retracted."""
    conn.execute(sa.delete(ledger).where(ledger.c.record_key == key))


def for_person(conn: Connection, person_id: str, limit: int = 50) -> list[dict]:
    """Return the person's most recent ledger rows, newest first, for display."""
    rows = conn.execute(
        sa.select(ledger).where(ledger.c.person_id == person_id)
        .order_by(ledger.c.at.desc()).limit(limit)
    ).mappings().all()
    return [
        {
            "id": r["id"],
            "at": _aware(r["at"]).isoformat(),
            "channel": r["channel"],
            "purpose": r["purpose"],
            "sender": r["sender"],
            "campaign": r["campaign"],
            "template": r["template"],
            "product": r["product"],
            "verdict": r["verdict"],
            "committed": r["committed"],
            "source": r["source"],
        }
        for r in rows
    ]


def utc(value: datetime) -> datetime:
    """Return the same instant in UTC (SQLite compares stored times as text)."""
    return value.astimezone(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return parse_datetime(value)
