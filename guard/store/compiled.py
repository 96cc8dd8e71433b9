"""Statements compiled once per dialect, then run straight through the driver.

The outbox settles a row per send on the request path; building SQLAlchemy's
execution context for each one-row update costs more than the update itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


class Compiled:
    """One statement compiled for a dialect once, then run through the driver.

    ``Connection.execute`` spends most of a one-row insert or update on building
    the execution context (cache lookup, parameter processing, result set-up);
    here the SQL text, the order of its parameters and each parameter's type
    conversion (JSON, timestamps, booleans) are SQLAlchemy's own, worked out
    once, and each call only converts the values and hands them to the driver.
    """

    def __init__(self, statement: sa.ClauseElement, dialect, column_keys=None):
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        self.sql = compiled.string
        by_name = {name: bind for bind, name in compiled.bind_names.items()}
        names = list(compiled.positiontup) if dialect.positional else list(by_name)
        self.positional = dialect.positional
        self.names = names
        self.convert = {}
        self.fixed = {}
        for name in names:
            bind = by_name[name]
            self.convert[name] = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if not bind.required:
                # A literal of the statement itself (``status = 'sending'``).
                self.fixed[name] = bind.effective_value

    def run(self, conn: Connection, values: Mapping[str, Any]):
        """Execute with ``values`` (the statement's own literals filled in)."""
        converted = {}
        for name in self.names:
            value = values[name] if name in values else self.fixed[name]
            convert = self.convert[name]
            # None goes through the conversion too, as in SQLAlchemy (JSON makes it 'null').
            converted[name] = convert(value) if convert is not None else value
        if self.positional:
            return conn.exec_driver_sql(self.sql, tuple(converted[n] for n in self.names))
        return conn.exec_driver_sql(self.sql, converted)


_compiled: dict[tuple, Compiled] = {}


def run(conn: Connection, key: tuple, statement: sa.ClauseElement, values: Mapping[str, Any],
         column_keys=None):
    """Run ``statement`` through its compiled form for ``conn``'s dialect, made on first use."""
    dialect = conn.dialect
    compiled = _compiled.get((dialect.name, *key))
    if compiled is None:
        compiled = _compiled[(dialect.name, *key)] = Compiled(statement, dialect, column_keys)
    return compiled.run(conn, values)
