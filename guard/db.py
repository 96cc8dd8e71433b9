"""The store: engine set-up, every store table, and migrations to the newest schema.

SQLite is the embedded default (WAL, foreign keys, a busy timeout, and
``BEGIN IMMEDIATE`` so two writers queue instead of failing); PostgreSQL is
the production store. Alembic migrations live in ``guard/migrations`` and run
from code (no ``alembic.ini``), so ``upgrade(url)`` works from an installed
package.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
DEFAULT_URL = "sqlite:///guard.db"
# How long an SQLite writer waits for another before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000

metadata = sa.MetaData()
_TIME = sa.DateTime(timezone=True)

people = sa.Table(
    "people",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("profile", sa.JSON, nullable=False),
    sa.Column("flags", sa.JSON),
    sa.Column("flags_hash", sa.String(64)),
    # When a flag line next runs out by the calendar (the worker refreshes the flags then).
    sa.Column("flags_lapse_at", _TIME, index=True),
    sa.Column("erased", sa.Boolean, nullable=False, default=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
)

# A merged-away person id keeps resolving to the person it was merged into.
person_aliases = sa.Table(
    "person_aliases",
    metadata,
    sa.Column("alias", sa.String(40), primary_key=True),
    sa.Column("person_id", sa.String(40), nullable=False, index=True),
)

# kind: email | phone | ref ("salesforce:003…", "dms:C-1001")
identities = sa.Table(
    "identities",
    metadata,
    sa.Column("kind", sa.String(8), primary_key=True),
    sa.Column("value", sa.String(320), primary_key=True),
    sa.Column("person_id", sa.String(40), nullable=False, index=True),
)

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("ref", sa.String(320), nullable=False, unique=True),
    sa.Column("account", sa.JSON),
    sa.Column("updated_at", _TIME, nullable=False),
)

# Every event as received, so profiles can be rebuilt and ingestion is idempotent.
records = sa.Table(
    "records",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source_system", sa.String(64), nullable=False),
    sa.Column("source_type", sa.String(64), nullable=False, default=""),
    sa.Column("source_id", sa.String(255), nullable=False),
    sa.Column("type", sa.String(16), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("person_id", sa.String(40), index=True),
    sa.Column("account_id", sa.String(40), index=True),
    # A bare-address consent: the normalised email or phone it is about.
    sa.Column("address", sa.String(320), index=True),
    sa.Column("updated_at", _TIME, nullable=False),
    sa.UniqueConstraint("source_system", "source_type", "source_id", "type",
                        name="uq_records_source"),
)

campaigns = sa.Table(
    "campaigns",
    metadata,
    sa.Column("id", sa.String(255), primary_key=True),
    sa.Column("campaign", sa.JSON, nullable=False),
    sa.Column("record_key", sa.String(400), nullable=False),
    sa.Column("updated_at", _TIME, nullable=False),
)

ledger = sa.Table(
    "ledger",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("person_id", sa.String(40)),
    sa.Column("at", _TIME, nullable=False),
    sa.Column("channel", sa.String(16), nullable=False),
    sa.Column("purpose", sa.String(64), nullable=False),
    sa.Column("sender", sa.String(128), nullable=False),
    sa.Column("campaign", sa.String(255)),
    sa.Column("template", sa.String(255)),
    sa.Column("product", sa.String(255)),
    sa.Column("verdict", sa.String(16), nullable=False),
    sa.Column("committed", sa.Boolean, nullable=False),
    sa.Column("attempt", sa.JSON),
    sa.Column("decision", sa.JSON),
    sa.Column("policy_version", sa.String(80)),
    # A touch reported by another system: its record, so a re-sync updates it.
    sa.Column("source", sa.JSON),
    sa.Column("record_key", sa.String(400), unique=True),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Index("ix_ledger_person_at", "person_id", "at"),
)

# Salted hashes of the addresses and CRM ids of people who exercised the right to erasure.
erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("erased_at", _TIME, nullable=False),
)

settings = sa.Table(
    "settings",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

owner_tasks = sa.Table(
    "owner_tasks",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("person_id", sa.String(40), index=True),
    sa.Column("decision_id", sa.String(40)),
    sa.Column("owner", sa.String(128), nullable=False),
    sa.Column("rule", sa.String(128)),
    sa.Column("subject", sa.String(255), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("dedupe_key", sa.String(255), nullable=False, unique=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", _TIME, nullable=False),
    sa.Column("done_at", _TIME),
    sa.Column("result", sa.JSON),
    sa.Index("ix_owner_tasks_status", "status", "created_at"),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scopes", sa.String(255), nullable=False),
    sa.Column("sender", sa.String(128)),
    sa.Column("purpose", sa.String(64)),
    sa.Column("created_at", _TIME, nullable=False),
)


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """Create an engine for ``url`` (default: an SQLite file in the working directory)."""
    url = url or DEFAULT_URL
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN, so it can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # IMMEDIATE takes the write lock up front: two writers queue (busy_timeout)
        # instead of one failing when it upgrades a read lock. Read-only paths pass
        # execution_options(sqlite_begin="DEFERRED").
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


def read_only(connection: sa.Connection) -> sa.Connection:
    """Mark a connection's transactions as readers (SQLite: no write lock)."""
    return connection.execution_options(sqlite_begin="DEFERRED")


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
