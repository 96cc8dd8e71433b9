"""The ledger stores decisions exactly as SQLAlchemy's own insert of the same row would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from guard.store import ledger as contact_ledger
from guard.store.tables import ledger
from policies.model import Attempt, Decision, Evidence, Finding, Notice
from tests.conftest import NOW

BERLIN = timezone(timedelta(hours=1))


def reference_row(decision: Decision, attempt: Attempt, committed: bool, now: datetime) -> dict:
    """The row as the ledger wrote it through SQLAlchemy's typed insert."""
    return dict(
        id=decision.decision_id, person_id=decision.person, at=attempt.at.astimezone(UTC),
        channel=attempt.channel, purpose=attempt.purpose, sender=attempt.sender,
        campaign=attempt.campaign, template=attempt.template, product=attempt.product,
        verdict=decision.verdict, committed=committed, attempt=attempt.to_dict(),
        decision=decision.to_dict(), policy_version=decision.policy_version, source=None,
        record_key=None, created_at=now,
        # A decision about no known person keeps its recipient, for erasure to find it by.
        recipient=attempt.to if decision.person is None else None)


def attempt(to: str = "anna@example.com", **fields) -> Attempt:
    return Attempt(**{"channel": "email", "to": to, "purpose": "newsletter", "sender": "oem",
                      "at": NOW, **fields})


BLOCK = Finding("no-marketing-opt-out", "consent", "block", "Anna opted out of marketing 100%",
                (Evidence("crm", "consent", "O-1"), Evidence("dms", "", "C-1")))
DECIDED = [
    (Decision("allow", "per_1", policy_version="v1"), attempt()),
    (Decision("block", "per_2", (BLOCK,), policy_version="v1",
              notify=(Notice("dealer:munich", "complaint", "Tell \"Anna\" first"),)),
     attempt("b@example.com", campaign="spring-%s", template="tmpl-7", product="vw-id4")),
    (Decision("defer", None, not_before=NOW + timedelta(hours=3), monitored=(BLOCK,)),
     attempt("+491701234567", channel="sms", at=datetime(2026, 11, 23, 9, 30, tzinfo=BERLIN))),
    (Decision("reroute", "per_3", reroute={"owner": "dealer:köln", "channel": "call"}),
     attempt("c@example.com", template="Grüße ✓ 'quoted'")),
]


def stored(conn) -> dict[str, dict]:
    """Every ledger row by id, as the database holds it (as text) and as read back."""
    raw = [c if c.name == "id" else sa.cast(c, sa.Text).label(c.name) for c in ledger.c]
    nulls = [c.is_(None).label(f"{c.name}_is_null") for c in ledger.c]
    rows = {r["id"]: dict(r) for r in conn.execute(sa.select(*raw, *nulls)).mappings()}
    for r in conn.execute(sa.select(ledger)).mappings():
        rows[r["id"]]["read back"] = {k: v for k, v in r.items() if k != "id"}
    # Rows recorded both ways differ only in their id (also inside the decision's JSON).
    for row in rows.values():
        row["decision"] = row["decision"].replace(row.pop("id"), "<id>")
        row["read back"]["decision"]["decision_id"] = "<id>"
    return rows


def numbered(prefix: str, decided: list[tuple[Decision, Attempt]]) -> list:
    return [(d.with_id(f"{prefix}{i}"), a) for i, (d, a) in enumerate(decided)]


@pytest.mark.parametrize(("committed", "now"), [(False, NOW), (True, NOW.astimezone(BERLIN))],
                         ids=["dry-run", "committed-local-clock"])
def test_record_many_stores_what_the_typed_insert_stored(engine, committed, now):
    with engine.begin() as conn:
        conn.execute(sa.insert(ledger), [reference_row(d, a, committed, now)
                                         for d, a in numbered("old_", DECIDED)])
        contact_ledger.record_many(conn, numbered("new_", DECIDED), committed=committed, now=now)
    with engine.connect() as conn:
        rows = stored(conn)
    assert len(rows) == 2 * len(DECIDED)
    for i in range(len(DECIDED)):
        assert rows[f"new_{i}"] == rows[f"old_{i}"]
    assert rows["new_0"]["source_is_null"] is False  # JSON null, as SQLAlchemy stored None
    assert rows["new_0"]["record_key_is_null"] is True


def test_record_decision_stores_one_row_like_the_typed_insert(engine):
    decision, tried = DECIDED[1]
    with engine.begin() as conn:
        conn.execute(sa.insert(ledger), reference_row(decision.with_id("old_1"), tried, True, NOW))
        contact_ledger.record_decision(conn, decision.with_id("new_1"), tried, committed=True,
                                       now=NOW)
    with engine.connect() as conn:
        rows = stored(conn)
    assert rows["new_1"] == rows["old_1"]


def test_recorded_decisions_read_back_for_the_rules_and_for_display(engine):
    with engine.begin() as conn:
        contact_ledger.record_many(conn, numbered("dec_", DECIDED), committed=True, now=NOW)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*contact_ledger.ENTRY_COLUMNS)
                            .where(ledger.c.person_id == "per_2")).all()
        shown = contact_ledger.for_person(conn, "per_2")
    [entry] = contact_ledger.entries(rows, NOW - timedelta(days=1))
    assert (entry.at, entry.campaign, entry.verdict, entry.source) == \
        (NOW, "spring-%s", "block", None)
    assert [(r["id"], r["verdict"], r["committed"], r["source"]) for r in shown] == \
        [("dec_1", "block", True, None)]
