"""Revision 0015 on a store of the previous release: decisions already kept are found by rule."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from guard.store.engine import make_engine
from guard.store.migrate import downgrade, upgrade

AT = datetime(2026, 11, 23, 10, tzinfo=UTC)


def reasons(*rules: str) -> dict:
    return {"verdict": "block", "reasons": [{"rule": r, "effect": "block"} for r in rules]}


def test_upgrade_indexes_the_rules_of_decisions_already_kept_and_downgrade_undoes_it(db_url):
    engine = make_engine(db_url)
    upgrade(engine, "0014")
    ledger = sa.table("ledger", *(sa.column(c) for c in (
        "id", "channel", "purpose", "sender", "verdict", "committed", "created_at")),
        sa.column("decision", sa.JSON), sa.column("at", sa.DateTime(timezone=True)))
    row = {"at": AT, "channel": "email", "purpose": "newsletter", "sender": "oem",
           "verdict": "block", "committed": True, "created_at": AT}
    with engine.begin() as conn:
        conn.execute(sa.insert(ledger), [
            {**row, "id": "dec_1", "decision": reasons("consent", "frequency-cap", "consent")},
            {**row, "id": "dec_2", "decision": {"verdict": "allow", "reasons": []}},
            {**row, "id": "dec_3", "decision": None},
            {**row, "id": "dec_4", "decision": {"verdict": "allow", "reasons": {"odd": 1}}},
            {**row, "id": "tch_1", "decision": reasons("consent")}])

    upgrade(engine)
    with engine.connect() as conn:
        found = sorted(conn.execute(sa.text(
            "SELECT rule, decision_id FROM decision_rules")).all())
    downgrade(engine, "0014")
    left = sa.inspect(engine).get_table_names()
    engine.dispose()

    assert found == [("consent", "dec_1"), ("frequency-cap", "dec_1")]
    assert "decision_rules" not in left
