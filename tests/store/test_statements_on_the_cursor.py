"""Statements run straight on the driver's cursor behave as SQLAlchemy's own would."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from guard.store.engine import on_cursor
from guard.store.tables import settings


def _sql(engine, statement) -> str:
    return statement.compile(dialect=engine.dialect).string


def test_a_statement_on_the_cursor_joins_the_connections_transaction(engine):
    insert = _sql(engine, sa.insert(settings).values(name="a", value="1"))
    params = ("a", "1") if engine.dialect.positional else {"name": "a", "value": "1"}

    with engine.connect() as conn:
        on_cursor(conn, insert, params)
        assert conn.execute(sa.select(settings.c.value)).scalar() == "1"
        conn.rollback()
    with engine.connect() as conn:
        assert conn.execute(sa.select(settings.c.value)).first() is None


def test_a_driver_error_is_raised_as_sqlalchemys_and_the_connection_stays_usable(engine):
    with engine.connect() as conn:
        with pytest.raises(sa.exc.DBAPIError) as raised:
            on_cursor(conn, "select * from no_such_table", ())
        assert "no_such_table" in str(raised.value)
        conn.rollback()
        assert conn.execute(sa.text("select 1")).scalar() == 1


def test_listeners_of_cursor_events_hear_each_statement(engine):
    heard = []

    def before(conn, cursor, statement, parameters, context, executemany):
        heard.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        with engine.connect() as conn:
            assert on_cursor(conn, "select 1", ()) == [(1,)]
    finally:
        event.remove(engine, "before_cursor_execute", before)

    assert "select 1" in heard
