"""The ledger index a check reads: committed entries only, however many lists were screened."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from guard.checks.facts import READ_BY_ID, READ_BY_IDENTITY
from guard.store.engine import make_engine
from guard.store.migrate import upgrade
from guard.store.tables import ledger

INDEX = "ix_ledger_person_committed_at"


def _plan(engine, statement, values: dict) -> str:
    compiled = statement.compile(dialect=engine.dialect)
    params = compiled.construct_params(values)
    raw = engine.raw_connection()
    try:
        rows = raw.cursor().execute(f"EXPLAIN QUERY PLAN {compiled}",
                                    [params[name] for name in compiled.positiontup]).fetchall()
    finally:
        raw.close()
    return "\n".join(row[-1] for row in rows)


@pytest.mark.parametrize("statement", ["by_id", "by_identity"])
def test_a_checks_ledger_range_holds_only_committed_entries(tmp_path, statement):
    # Dry runs are recorded but never counted: the range a check walks must stop at them
    # in the index, not fetch each from the table to skip it (a daily screen of a list
    # added one per recipient to every later check's work). SQLite's plan says so;
    # PostgreSQL reads the same index, whose columns this migration sets for both.
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    upgrade(engine)
    values = {"since": "2026-01-01 00:00:00.000000", "campaign": None, "kind": "email",
              "values": json.dumps(["a@example.com"]), "ids": json.dumps(["per_x", "per_y"])}
    chosen = {"by_id": READ_BY_ID, "by_identity": READ_BY_IDENTITY}[statement]["sqlite"]
    plan = _plan(engine, chosen, values)
    engine.dispose()
    assert f"{INDEX} (person_id=? AND committed=? AND at>?)" in plan, plan


def test_a_store_from_before_keeps_its_ledger_and_gets_the_index(db_url):
    engine = make_engine(db_url)
    upgrade(engine, "0005")
    at = datetime(2026, 11, 23, 10, tzinfo=UTC)
    row = {"id": "dec_1", "person_id": "per_x", "at": at, "channel": "email",
           "purpose": "newsletter", "sender": "oem", "verdict": "allow", "committed": True,
           "created_at": at}
    with engine.begin() as conn:
        conn.execute(sa.insert(ledger).values(**row))
    upgrade(engine)
    names = {index["name"]: index["column_names"]
             for index in sa.inspect(engine).get_indexes("ledger")}
    with engine.connect() as conn:
        kept = conn.execute(sa.select(ledger.c.id, ledger.c.person_id)).all()
    engine.dispose()
    assert names[INDEX] == ["person_id", "committed", "at"]
    assert "ix_ledger_person_at" not in names
    assert kept == [("dec_1", "per_x")]
