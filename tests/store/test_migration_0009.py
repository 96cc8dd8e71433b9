"""Revision 0009 on a store of the previous release: data kept, new columns and indexes there."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from guard.store.engine import make_engine
from guard.store.migrate import downgrade, upgrade
from guard.store.tables import hook_inbox, ledger

AT = datetime(2026, 11, 23, 10, tzinfo=UTC)


def test_upgrade_keeps_the_ledger_and_inbox_and_downgrade_undoes_it(db_url):
    engine = make_engine(db_url)
    upgrade(engine, "0008")
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO ledger (id, person_id, at, channel, purpose, sender, verdict, "
            "committed, created_at) VALUES ('dec_1', NULL, :at, 'email', 'newsletter', 'oem', "
            "'allow', false, :at)"), {"at": AT})
        conn.execute(sa.text(
            "INSERT INTO hook_inbox (system, payload, received_at, attempts) "
            "VALUES ('hubspot', '[]', :at, 0)"), {"at": AT})

    upgrade(engine)
    inspector = sa.inspect(engine)
    ledger_indexes = {i["name"] for i in inspector.get_indexes("ledger")}
    inbox_indexes = {i["name"]: i["unique"] for i in inspector.get_indexes("hook_inbox")}
    with engine.connect() as conn:
        kept = conn.execute(sa.select(ledger.c.id, ledger.c.recipient)).all()
        inbox = conn.execute(sa.select(hook_inbox.c.signature)).all()
    downgrade(engine, "0008")
    columns = {c["name"] for c in sa.inspect(engine).get_columns("ledger")}
    engine.dispose()

    assert {"ix_ledger_recipient", "ix_ledger_dry_runs"} <= ledger_indexes
    assert inbox_indexes["ux_hook_inbox_signature"]
    assert kept == [("dec_1", None)] and inbox == [(None,)]
    assert "recipient" not in columns
