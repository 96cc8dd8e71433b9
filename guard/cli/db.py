"""``guard db upgrade``: migrate the store."""

from __future__ import annotations

import click

from guard.cli.common import setting, store_errors


@click.group()
def db() -> None:
    """Manage the store."""


@db.command("upgrade")
@click.option("--url", help="Database URL (default: GUARD_DATABASE_URL, from the environment "
                             "or the GUARD_CONFIG file, else sqlite:///guard.db).")
@store_errors
def db_upgrade(url: str | None) -> None:
    """Migrate the store to the newest schema (the release phase runs this)."""
    from guard.store.engine import make_engine
    from guard.store.migrate import current_revision, upgrade

    url = url or setting("DATABASE_URL")

    engine = make_engine(url)
    try:
        upgrade(engine)
        click.echo(f"Store at revision {current_revision(engine)} ({engine.dialect.name}).")
    finally:
        engine.dispose()
