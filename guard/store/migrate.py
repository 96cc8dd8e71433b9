"""Migrate the store, from code (no ``alembic.ini``), so it works from an installed package."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine

from guard.store.engine import make_engine, read_only

MIGRATIONS = Path(__file__).with_name("migrations")


def _alembic_config(engine: Engine):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def _as_engine(url_or_engine: str | Engine) -> tuple[Engine, bool]:
    if isinstance(url_or_engine, Engine):
        return url_or_engine, False
    return make_engine(url_or_engine), True


def upgrade(url_or_engine: str | Engine, revision: str = "head") -> None:
    """Migrate the store to ``revision`` (default: the newest)."""
    from alembic import command

    engine, own = _as_engine(url_or_engine)
    try:
        command.upgrade(_alembic_config(engine), revision)
    finally:
        if own:
            engine.dispose()


def downgrade(url_or_engine: str | Engine, revision: str) -> None:
    """Migrate the store back to ``revision`` (``base`` empties it)."""
    from alembic import command

    engine, own = _as_engine(url_or_engine)
    try:
        command.downgrade(_alembic_config(engine), revision)
    finally:
        if own:
            engine.dispose()


def current_revision(url_or_engine: str | Engine) -> str | None:
    """Return the store's migration revision (None: never migrated)."""
    from alembic.runtime.migration import MigrationContext

    engine, own = _as_engine(url_or_engine)
    try:
        with read_only(engine.connect()) as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if own:
            engine.dispose()


def head_revision() -> str | None:
    """Return the newest migration revision shipped with this package."""
    from alembic.script import ScriptDirectory

    config = _alembic_config(None)  # type: ignore[arg-type]
    return ScriptDirectory.from_config(config).get_current_head()
