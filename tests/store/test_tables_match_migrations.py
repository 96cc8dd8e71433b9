"""The tables the code reads are the tables the migrations build, column for column."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from guard.store.tables import metadata


def test_a_migrated_store_has_every_table_column_and_index_the_code_declares(engine):
    with engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), metadata) == []
