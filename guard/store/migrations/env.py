"""Run the store's migrations on the engine ``guard.store.migrate.upgrade`` hands over."""

from __future__ import annotations

from alembic import context

from guard.store.engine import make_engine

config = context.config


def run() -> None:
    """Migrate on the given engine (or ``sqlalchemy.url``), in one transaction."""
    engine = config.attributes.get("engine") or make_engine(
        config.get_main_option("sqlalchemy.url"))
    with engine.begin() as connection:
        context.configure(connection=connection, render_as_batch=engine.dialect.name == "sqlite")
        context.run_migrations()


run()
