"""Read what the guard recorded: a decision, a person with flags, ledger and tasks, flag changes."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from guard.checks import tasks
from guard.errors import NotFound
from guard.ingest.identity import Ref
from guard.ingest.people import resolve_person
from guard.store import ledger as contact_ledger
from guard.store.engine import read_only
from guard.store.tables import ledger, people
from policies.model import parse_datetime


def decision(engine: Engine, decision_id: str) -> dict:
    """Return a recorded decision (SPEC §4) with its attempt and time; raise NotFound."""
    with read_only(engine.connect()) as conn:
        row = conn.execute(sa.select(ledger).where(ledger.c.id == decision_id)
                           ).mappings().first()
    if row is None or row["decision"] is None:
        raise NotFound(f"no decision {decision_id}")
    return {**row["decision"], "decision_id": row["id"], "attempt": row["attempt"],
            "at": parse_datetime(row["created_at"]).isoformat(),
            "committed": row["committed"], "via": row["via"]}


def person(engine: Engine, person_id: str, *, ledger_limit: int = 50) -> dict:
    """Return a person's merged profile, flags, recent ledger and tasks; raise NotFound."""
    with read_only(engine.connect()) as conn:
        current = resolve_person(conn, Ref("person", person_id))
        row = conn.execute(sa.select(people).where(people.c.id == current)
                           ).mappings().first() if current else None
        if row is None:
            raise NotFound(f"no person {person_id}")
        recent = contact_ledger.for_person(conn, current, ledger_limit)
        theirs = tasks.of_person(conn, current)
    flags = row["flags"] or {"status": "Clear", "flags": []}
    return {"id": current, "profile": row["profile"], "erased": row["erased"],
            "flags": flags, "ledger": recent, "tasks": theirs}


def flag_updates(engine: Engine, since: datetime | None = None, limit: int = 1000
                 ) -> list[dict]:
    """Return people whose flags changed after ``since``, with their CRM ids."""
    query = sa.select(people.c.id, people.c.profile, people.c.flags, people.c.updated_at)
    query = query.where(people.c.flags.is_not(None))
    if since is not None:
        query = query.where(people.c.updated_at > since.astimezone(UTC))
    with read_only(engine.connect()) as conn:
        rows = conn.execute(query.order_by(people.c.updated_at, people.c.id).limit(limit)).all()
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
