"""The contact ledger: every decision the guard made and every touch other systems reported.

Frequency, duplicate and prerequisite rules count from it. Only committed
rows count (a dry run is recorded, so its decision can be looked up, but
never counts toward a cap); rules themselves count only ``allow`` entries.
"""

from __future__ import annotations

import json
import secrets
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Dialect

from guard.store.engine import on_cursor_together
from guard.store.tables import decision_rules, ledger
from guard.store.util import chunks
from policies.model import Attempt, Decision, Evidence, LedgerEntry, parse_datetime

# What the ledger keeps instead of an erased recipient: this, then the address's keyed hash.
ERASED_PREFIX = "erased:"


def new_decision_id() -> str:
    """Return a fresh decision id: the millisecond it was made, then 64 random bits."""
    # Time first, so new ledger rows land at the end of the id index instead of on a
    # random page of it, which a large store would have to read and rewrite per check.
    return f"dec_{time.time_ns() // 1_000_000:012x}{secrets.token_hex(8)}"


# Compiled once per dialect (see _raw_insert): the check path and bulk screens then skip
# SQLAlchemy's per-call construction, cache-key and per-row parameter work.
_INSERT = sa.insert(ledger)
# What the rules read of an entry; a check selects these joined onto the person's row.
ENTRY_COLUMNS = (ledger.c.at, ledger.c.channel, ledger.c.purpose, ledger.c.sender,
                 ledger.c.campaign, ledger.c.template, ledger.c.product, ledger.c.verdict,
                 ledger.c.source)


def counted_since(person_id: sa.ColumnElement, since: sa.ColumnElement) -> sa.ColumnElement:
    """Return the join condition of a person's committed entries from ``since`` on."""
    # "= true", not "IS TRUE": PostgreSQL matches only "=" to an index column.
    return sa.and_(ledger.c.person_id == person_id, ledger.c.committed == sa.true(),
                   ledger.c.at >= since)


def record_decision(conn: Connection, decision: Decision, attempt: Attempt, *,
                    committed: bool, now: datetime) -> None:
    """Write a decision (with its attempt) to the ledger."""
    record_many(conn, [(decision, attempt)], committed=committed, now=now)


def record_many(conn: Connection, decided: list[tuple[Decision, Attempt]], *,
                committed: bool, now: datetime) -> None:
    """Write many decisions in one statement, and which rules gave each its reasons."""
    insert_rows(conn, *ledger_rows(conn.dialect, decided, committed=committed, now=now))


def mark_via(conn: Connection, decision_ids: list[str], via: str) -> None:
    """Record the integration ``via`` which the decisions ``decision_ids`` were made through."""
    if decision_ids:
        conn.execute(sa.update(ledger).where(ledger.c.id.in_(decision_ids)).values(via=via))


def ledger_rows(dialect: Dialect, decided: list[tuple[Decision, Attempt]], *,
                committed: bool, now: datetime) -> tuple[list, list]:
    """Return the ledger rows of ``decided`` and their ``decision_rules`` rows (each rule
    behind a decision's reasons), ready for ``insert_rows`` on ``dialect``."""
    if not decided:
        return [], []
    insert = _raw_insert(dialect)
    dumps = insert.dumps
    stamps: dict[datetime, Any] = {}

    def stamp(at: datetime) -> Any:
        # A batch's attempts share a time or a few: each is converted once.
        at = utc(at)
        found = stamps.get(at)
        if found is None:
            found = stamps[at] = insert.at(at)
        return found

    # The same for every row of the batch: converted once.
    committed, now, source = insert.committed(committed), insert.created_at(now), dumps(None)
    rows = [
        (decision.decision_id, decision.person, stamp(attempt.at), attempt.channel,
         attempt.purpose, attempt.sender, attempt.campaign, attempt.template, attempt.product,
         decision.verdict, committed, dumps(attempt.to_dict()), dumps(decision.to_dict()),
         decision.policy_version, source, None, now, recipient_of(decision, attempt), None)
        for decision, attempt in decided
    ]
    # A rule row takes its decision's id and converted time from the ledger row.
    rules = [(rule, row[2], row[0]) for row, (decision, _) in zip(rows, decided, strict=True)
             if decision.reasons for rule in dict.fromkeys(f.rule for f in decision.reasons)]
    if not insert.positional:
        rows = [dict(zip(insert.names, row, strict=True)) for row in rows]
    if not insert.rules_positional:
        rules = [dict(zip(_RULE_COLUMNS, row, strict=True)) for row in rules]
    return rows, rules


def insert_rows(conn: Connection, rows: list, rules: list) -> None:
    """Insert rows built by ``ledger_rows`` for this connection's dialect."""
    if not rows:
        return
    # One row as a plain execute: psycopg runs executemany through pipeline mode, an
    # extra sync round trip that a single check would pay every time. The rules go in
    # the same pipeline: a stopped decision costs no round trip more than an allowed one.
    insert = _raw_insert(conn.dialect)
    parts = [(sql, batch) for sql, batch in ((insert.sql, rows), (insert.rules_sql, rules))
             if batch]
    on_cursor_together(conn, [(sql, batch if len(batch) > 1 else batch[0])
                              for sql, batch in parts],
                       many=[len(batch) > 1 for _, batch in parts])


@dataclass(frozen=True)
class _RawInsert:
    """The ledger insert in the driver's own SQL, taking each row's values ready to send.

    A bulk screen records every decision; SQLAlchemy's executemany spent more per
    row on building and type-processing parameters than the database did on the
    insert. This does that work once: the statement is SQLAlchemy's own compiled
    text (on PostgreSQL with its casts to JSON and timestamp), the JSON columns
    get text serialised as SQLAlchemy would (the engine's ``json_serializer``, else
    ``json.dumps``; ``None`` is JSON ``null``), and the other columns go through
    the dialect's bind processors.
    """

    sql: str
    positional: bool
    names: tuple[str, ...]
    rules_sql: str
    rules_positional: bool
    dumps: Callable[[Any], str]
    at: Callable[[Any], Any]
    committed: Callable[[Any], Any]
    created_at: Callable[[Any], Any]


_RAW_INSERTS: weakref.WeakKeyDictionary[Dialect, _RawInsert] = weakref.WeakKeyDictionary()
_COLUMNS = ("id", "person_id", "at", "channel", "purpose", "sender", "campaign", "template",
            "product", "verdict", "committed", "attempt", "decision", "policy_version", "source",
            "record_key", "created_at", "recipient", "via")
_RULE_COLUMNS = ("rule", "at", "decision_id")


def recipient_of(decision: Decision, attempt: Attempt) -> str | None:
    """Return the ``recipient`` a decision's row keeps: set only when no person holds the row."""
    # A person's rows are found by their person id; an erased recipient is recorded as its
    # keyed hash, which no later erasure needs to find again.
    if decision.person is not None or attempt.to.startswith(ERASED_PREFIX):
        return None
    return attempt.to


def _raw_insert(dialect: Dialect) -> _RawInsert:
    found = _RAW_INSERTS.get(dialect)
    if found is not None:
        return found
    compiled = _INSERT.compile(dialect=dialect)
    names = tuple(compiled.positiontup) if compiled.positional else _COLUMNS
    if names != _COLUMNS or tuple(c.name for c in ledger.c) != _COLUMNS:
        raise RuntimeError("the ledger's columns changed: update record_many")
    processors = {c.name: c.type.dialect_impl(dialect).bind_processor(dialect) for c in ledger.c}
    # Only these columns have a processor on SQLite or PostgreSQL besides the JSON ones.
    unexpected = {name for name, p in processors.items() if p is not None} \
        - {"at", "committed", "created_at", "attempt", "decision", "source"}
    if unexpected:
        raise RuntimeError(f"ledger columns {sorted(unexpected)} need a bind processor")
    rules = sa.insert(decision_rules).compile(dialect=dialect)
    if (tuple(rules.positiontup) if rules.positional else _RULE_COLUMNS) != _RULE_COLUMNS \
            or tuple(c.name for c in decision_rules.c) != _RULE_COLUMNS:
        raise RuntimeError("decision_rules' columns changed: update ledger_rows")
    found = _RAW_INSERTS[dialect] = _RawInsert(
        sql=compiled.string, positional=compiled.positional, names=names,
        rules_sql=rules.string, rules_positional=rules.positional,
        dumps=getattr(dialect, "_json_serializer", None) or json.dumps,
        at=processors["at"] or _same, committed=processors["committed"] or _same,
        created_at=processors["created_at"] or _same)
    return found


def _same(value: Any) -> Any:
    return value


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


def touch_values(person_id: str, source: Evidence, fields: Mapping[str, Any]) -> dict:
    """Return the ledger values of a contact another system reported (counted, allowed)."""
    return {
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


def new_touch_row(person_id: str, key: str, source: Evidence, fields: Mapping[str, Any],
                  now: datetime) -> dict:
    """Return the whole ledger row of a reported contact not in the ledger yet."""
    return {"id": "tch_" + secrets.token_hex(10), "record_key": key, "created_at": now,
            **touch_values(person_id, source, fields)}


def upsert_touch(conn: Connection, person_id: str, key: str, source: Evidence,
                 fields: Mapping[str, Any], now: datetime) -> None:
    """Record (or update) a contact another system reported."""
    values = touch_values(person_id, source, fields)
    updated = conn.execute(sa.update(ledger).where(ledger.c.record_key == key).values(**values))
    if not updated.rowcount:
        conn.execute(sa.insert(ledger).values(new_touch_row(person_id, key, source, fields,
                                                            now)))


def delete_touch(conn: Connection, key: str) -> None:
    """Forget a reported contact whose record was retracted."""
    conn.execute(sa.delete(ledger).where(ledger.c.record_key == key))


# Right to erasure (GDPR Art. 17): what the audit trail keeps of a decision once its
# recipient is erased is that it was made, when, by which sender on which channel for which
# purpose, under which policy version, with which verdict and rules. Never to whom, nor what
# was offered (campaign, template, product), nor the reasons' messages and evidence, which
# name the address and the person's facts.
_KEPT_OF_FINDING = ("rule", "kind", "effect")
# What a kept reason says in place of its message (the decision keeps the SPEC §4 shape).
ERASED_MESSAGE = "Not kept: the recipient exercised the right to erasure."
_KEPT_OF_ATTEMPT = ("channel", "purpose", "sender", "at")
_REDACT = sa.update(ledger).where(ledger.c.id == sa.bindparam("row_id")).values(
    attempt=sa.bindparam("kept_attempt", type_=ledger.c.attempt.type),
    decision=sa.bindparam("kept_decision", type_=ledger.c.decision.type),
    campaign=None, template=None, product=None, source=None, recipient=None)
_REDACT_CHUNK = 500


def redacted_decision(decision: Mapping | None) -> dict | None:
    """Return what the audit trail keeps of a recorded decision whose recipient was erased."""
    if decision is None:
        return None

    def bare(findings: Any) -> list[dict]:
        return [{**{name: f.get(name) for name in _KEPT_OF_FINDING},
                 "message": ERASED_MESSAGE, "evidence": []}
                for f in findings or () if isinstance(f, Mapping)]

    return {"decision_id": decision.get("decision_id"), "verdict": decision.get("verdict"),
            "person": decision.get("person"), "reasons": bare(decision.get("reasons")),
            "reroute": decision.get("reroute"), "not_before": decision.get("not_before"),
            "monitored": bare(decision.get("monitored")),
            "policy_version": decision.get("policy_version"), "notify": [], "erased": True}


def redacted_attempt(attempt: Mapping | None, to: str | None) -> dict | None:
    """Return what the audit trail keeps of a recorded attempt, its recipient given as ``to``."""
    if attempt is None:
        return None
    kept = {name: attempt.get(name) for name in _KEPT_OF_ATTEMPT}
    return {**kept, "to": to, "campaign": None, "template": None, "product": None}


def redact_person(conn: Connection, person_id: str) -> list[str]:
    """Strip an erased person's rows to what the audit trail keeps; return their decision ids."""
    rows = conn.execute(sa.select(ledger.c.id, ledger.c.attempt, ledger.c.decision)
                        .where(ledger.c.person_id == person_id)).all()
    _redact(conn, [(row, None) for row in rows])
    return [row.id for row in rows if row.decision is not None]


def redact_recipients(conn: Connection, erased: Mapping[str, str]) -> list[str]:
    """Strip the decisions about no known person sent to ``erased`` recipients; return ids.

    ``erased`` maps each recipient (a normalised address or reference) to what the
    rows keep instead (``erased_recipient``): its keyed hash.
    """
    found = []
    recipients = sorted(erased)
    for chunk in chunks(recipients, _REDACT_CHUNK):
        found += conn.execute(
            sa.select(ledger.c.id, ledger.c.attempt, ledger.c.decision, ledger.c.recipient)
            .where(ledger.c.recipient.in_(chunk))).all()
    _redact(conn, [(row, erased[row.recipient]) for row in found])
    return [row.id for row in found if row.decision is not None]


def _redact(conn: Connection, rows: list[tuple[Any, str | None]]) -> None:
    if rows:
        conn.execute(_REDACT, [
            {"row_id": row.id, "kept_attempt": redacted_attempt(row.attempt, to),
             "kept_decision": redacted_decision(row.decision)} for row, to in rows])


_FOR_PERSON = sa.select(
    ledger.c.id, ledger.c.at, ledger.c.channel, ledger.c.purpose, ledger.c.sender,
    ledger.c.campaign, ledger.c.template, ledger.c.product, ledger.c.verdict, ledger.c.committed,
    ledger.c.source,
).where(ledger.c.person_id == sa.bindparam("person_id"),
        ledger.c.committed == sa.bindparam("committed")
        ).order_by(ledger.c.at.desc()).limit(sa.bindparam("limit"))


def for_person(conn: Connection, person_id: str, limit: int = 50) -> list[dict]:
    """Return the person's most recent ledger rows, newest first, for display."""
    # Committed rows and dry runs are read apart, each the newest first straight from
    # the (person, committed, time) index: together, a person with thousands of
    # decisions would have every row read and sorted to show fifty.
    rows = sorted((row for committed in (True, False) for row in conn.execute(
        _FOR_PERSON, {"person_id": person_id, "committed": committed, "limit": limit}
    ).mappings()), key=lambda r: _aware(r["at"]), reverse=True)[:limit]
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
