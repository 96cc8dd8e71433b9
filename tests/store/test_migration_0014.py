"""Revision 0014 on a store of the previous release: the names already stored are searchable."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from guard.ingest import names
from guard.store.engine import make_engine
from guard.store.migrate import downgrade, upgrade

AT = datetime(2026, 11, 23, 10, tzinfo=UTC)


def test_upgrade_indexes_the_names_of_everyone_not_erased_and_downgrade_undoes_it(db_url):
    engine = make_engine(db_url)
    upgrade(engine, "0013")
    people = sa.table("people", sa.column("id"), sa.column("profile", sa.JSON),
                      sa.column("erased", sa.Boolean), sa.column("created_at"),
                      sa.column("updated_at"))
    with engine.begin() as conn:
        conn.execute(sa.insert(people), [
            {"id": f"per_{i:05d}", "profile": {"name": f"Jörg Nummer{i}"}, "erased": False,
             "created_at": AT, "updated_at": AT} for i in range(7000)] + [
            {"id": "per_gone", "profile": {"name": "Jörg Gone"}, "erased": True,
             "created_at": AT, "updated_at": AT},
            {"id": "per_nameless", "profile": {}, "erased": False,
             "created_at": AT, "updated_at": AT}])

    upgrade(engine)
    with engine.connect() as conn:
        everyone = names.search(conn, "jorg", 10_000)
        one = names.search(conn, "joerg nummer6999", 5) + names.search(conn, "jörg nummer6999", 5)
    downgrade(engine, "0013")
    left = sa.inspect(engine).get_table_names()
    engine.dispose()

    assert len(everyone) == 7000 and "per_gone" not in everyone
    assert one == ["per_06999"]
    assert "person_words" not in left
