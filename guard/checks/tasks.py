"""Owner tasks: what a decision asks of a person's owner, kept until the owner's CRM has it.

A rerouted contact, a campaign's promise to honour or an open case's owner to
inform becomes a task for that owner; the CRM write-back turns it into a Task
on the person's record and marks it done here.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from guard.checks.facts import per_dialect
from guard.errors import NotFound
from guard.store.engine import read_only
from guard.store.tables import owner_tasks, people
from policies.model import Attempt, Decision, parse_datetime

OPEN, DONE, FAILED = "open", "done", "failed"

_EXISTING = per_dialect(lambda one_of: sa.select(owner_tasks.c.dedupe_key).where(
    one_of(owner_tasks.c.dedupe_key, "keys")))
_INSERT = sa.insert(owner_tasks)


def record_tasks(conn: Connection, decided: Iterable[tuple[Decision, Attempt]],
                 now: datetime) -> None:
    """Turn committed decisions' notices and reroutes to an owner into tasks, once each."""
    wanted: dict[str, dict] = {}
    for decision, attempt in decided:
        for task in tasks_for(decision, attempt, now):
            wanted.setdefault(task["dedupe_key"], task)
    if not wanted:
        return
    # One task per owner, person, rule and campaign a day, however often it is sent.
    existing = set(conn.execute(_EXISTING[conn.dialect.name], {"keys": sorted(wanted)}).scalars())
    new = [task for key, task in wanted.items() if key not in existing]
    if new:
        conn.execute(_INSERT, new)


def tasks_for(decision: Decision, attempt: Attempt, now: datetime) -> list[dict]:
    """Return the owner tasks a decision's notices and reroute call for, as rows."""
    if decision.person is None:
        return []
    subject_of = attempt.campaign or attempt.template or attempt.purpose
    day = attempt.at.astimezone(UTC).date().isoformat()
    intended = (f"{attempt.sender} wanted to contact this person ({attempt.purpose} by "
                f"{attempt.channel}, {subject_of}).")
    rerouted_to = (decision.reroute or {}).get("owner") if decision.verdict == "reroute" \
        else None
    wanted: list[tuple[str, str, str, str]] = []
    for notice in decision.notify:
        if notice.owner == rerouted_to:
            subject = (f"Contact Guard: {attempt.purpose.replace('_', ' ')} by "
                       f"{attempt.channel} rerouted to you")
        else:
            subject = f"Contact Guard: {notice.rule} ({subject_of})"
        wanted.append((notice.owner, notice.rule, subject, f"{intended} {notice.message}"))
    if rerouted_to and all(w[0] != rerouted_to for w in wanted):
        why = " ".join(r.message for r in decision.reasons if r.effect == "reroute")
        wanted.append((rerouted_to, "reroute",
                       f"Contact Guard: {attempt.purpose.replace('_', ' ')} by "
                       f"{attempt.channel} rerouted to you", f"{intended} {why}".strip()))
    return [dict(
        id="tsk_" + secrets.token_hex(10), person_id=decision.person,
        decision_id=decision.decision_id, owner=owner, rule=rule, subject=subject[:255],
        description=description, dedupe_key=f"{decision.person}:{owner}:{rule}:{subject_of}:{day}",
        status=OPEN, created_at=now) for owner, rule, subject, description in wanted]


def pending(engine: Engine, limit: int = 100) -> list[dict]:
    """Return open owner tasks, oldest first, with the person's CRM ids for write-back."""
    with read_only(engine.connect()) as conn:
        rows = conn.execute(
            sa.select(owner_tasks, people.c.profile)
            .join(people, people.c.id == owner_tasks.c.person_id, isouter=True)
            .where(owner_tasks.c.status == OPEN)
            .order_by(owner_tasks.c.created_at, owner_tasks.c.id).limit(limit)
        ).mappings().all()
    return [{**as_dict(r), "crm_ids": (r["profile"] or {}).get("crm_ids") or {}} for r in rows]


def mark_done(engine: Engine, task_id: str, now: datetime, result: Mapping | None = None, *,
              failed: bool = False) -> None:
    """Record that a task reached the CRM (or failed for good); raise NotFound."""
    with engine.begin() as conn:
        done = conn.execute(sa.update(owner_tasks).where(owner_tasks.c.id == task_id).values(
            status=FAILED if failed else DONE, done_at=now,
            result=dict(result) if result else None))
    if not done.rowcount:
        raise NotFound(f"no task {task_id}")


def of_person(conn: Connection, person_id: str, limit: int = 50) -> list[dict]:
    """Return a person's tasks, newest first."""
    rows = conn.execute(
        sa.select(owner_tasks).where(owner_tasks.c.person_id == person_id)
        .order_by(owner_tasks.c.created_at.desc()).limit(limit)).mappings().all()
    return [as_dict(r) for r in rows]


def as_dict(row: Mapping) -> dict:
    """Return a task row as the API shows it."""
    return {
        "id": row["id"], "person_id": row["person_id"], "decision_id": row["decision_id"],
        "owner": row["owner"], "rule": row["rule"], "subject": row["subject"],
        "description": row["description"], "dedupe_key": row["dedupe_key"],
        "status": row["status"], "created_at": parse_datetime(row["created_at"]).isoformat(),
    }
