"""The store: engine set-up, every store table, and migrations to the newest schema.

SQLite is the embedded default (WAL with ``synchronous=NORMAL``, foreign
keys, and ``BEGIN IMMEDIATE`` behind a file lock, so writers queue instead of
failing or sleeping); PostgreSQL is the production store. Alembic migrations
live in ``guard/migrations`` and run from code (no ``alembic.ini``), so
``upgrade(url)`` works from an installed package.
"""

from __future__ import annotations

import fcntl
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

MIGRATIONS = Path(__file__).with_name("migrations")
DEFAULT_URL = "sqlite:///guard.db"
# How long an SQLite writer waits for another before giving up (milliseconds).
SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLite copies the WAL back into the database file (a checkpoint, two fsyncs) every
# this many write transactions of a process, or sooner once they changed this many rows,
# in a background thread; its own automatic checkpoint stays as a backstop for a WAL of
# SQLITE_CHECKPOINT_BACKSTOP pages. A row changed is about three pages (its table page and
# a random leaf of each index): 1,000 rows stay well under the backstop, which otherwise
# fires inside a bulk writer's commit, under the write lock, every few batches.
SQLITE_CHECKPOINT_EVERY = 100
SQLITE_CHECKPOINT_ROWS = 1_000
SQLITE_CHECKPOINT_BACKSTOP = 10_000

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
    # A decision about no known person: its recipient, by which an erasure finds the row.
    sa.Column("recipient", sa.String(320)),
    # A check reads a person's committed entries since a time. Dry runs (screens, checks
    # with commit false) are recorded too but never counted: with "committed" before "at"
    # a check's range holds only what it counts, however many lists were screened.
    sa.Index("ix_ledger_person_committed_at", "person_id", "committed", "at"),
    sa.Index("ix_ledger_recipient", "recipient",
             sqlite_where=sa.text("recipient IS NOT NULL"),
             postgresql_where=sa.text("recipient IS NOT NULL")),
    # Dry runs by age: the worker purges those past GUARD_DRY_RUN_RETENTION_DAYS.
    sa.Index("ix_ledger_dry_runs", "created_at", sqlite_where=sa.text("committed = 0"),
             postgresql_where=sa.text("committed = false")),
)

# Keyed hashes (HMAC-SHA256 with GUARD_ERASURE_SALT, a secret kept outside the store) of
# the addresses and CRM ids of people who exercised the right to erasure.
erasures = sa.Table(
    "erasures",
    metadata,
    sa.Column("hash", sa.String(64), primary_key=True),
    sa.Column("erased_at", _TIME, nullable=False),
)

# CRM records of an erased person that still have to be told "Do not contact"; a row is
# deleted once the CRM has it, so the guard forgets the record ids as well.
erasure_notices = sa.Table(
    "erasure_notices",
    metadata,
    sa.Column("system", sa.String(32), primary_key=True),
    sa.Column("record_id", sa.String(64), primary_key=True),
    sa.Column("erased_at", _TIME, nullable=False),
)

# Webhook deliveries are stored before they are acknowledged, then processed by the
# worker (guard.crm): HubSpot gives up on slow endpoints, and a crash must not lose a change.
hook_inbox = sa.Table(
    "hook_inbox",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("system", sa.String(32), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("received_at", _TIME, nullable=False),
    sa.Column("processed_at", _TIME),
    sa.Column("error", sa.Text),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # SHA-256 of the delivery's signature: a replay of a signed delivery is stored once.
    sa.Column("signature", sa.String(64)),
    sa.Index("ix_hook_inbox_pending", "processed_at", "id"),
    sa.Index("ux_hook_inbox_signature", "signature", unique=True),
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
    # Allow-lists (names or patterns such as ``dealer:*``); null: no limit.
    sa.Column("senders", sa.JSON),
    sa.Column("purposes", sa.JSON),
    sa.Column("created_at", _TIME, nullable=False),
    # A revoked key authenticates nothing, and the worker drops what it queued.
    sa.Column("revoked_at", _TIME),
)

# A provider request answered under an Idempotency-Key, per API key: a retry of it gets the
# same answer (``response``, or the reply the provider gave ``outbox_id``) and nothing else.
idempotency_keys = sa.Table(
    "idempotency_keys",
    metadata,
    sa.Column("key_id", sa.String(40), primary_key=True),
    sa.Column("key_hash", sa.String(64), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("response", sa.JSON, nullable=False),
    sa.Column("outbox_id", sa.String(40)),
    # The decisions the request made, space-separated: erasure finds a person's answers by them.
    sa.Column("decision_ids", sa.Text, nullable=False),
    sa.Column("created_at", _TIME, nullable=False, index=True),
)


# Datetimes and dataclasses, which json.dumps rejects, are left to it (orjson would write
# them its own way), so they still fail loudly instead of being stored in a new form.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# Every digit becomes "0", everything else a space: a number of 19 digits or more shows as a
# run of zeros. orjson reads integers beyond 64 bits as floats, json.loads exactly.
_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_NUMBER = b"0" * 19


def dumps_json(value: Any) -> str:
    """Encode ``value`` for a JSON column: orjson, or json.dumps where orjson refuses."""
    try:
        # NaN and infinities become null: json.dumps wrote NaN and Infinity, which are not
        # JSON (PostgreSQL refused them; SQLite kept them, and json.loads still reads them).
        return orjson.dumps(value, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        # Non-text keys, integers beyond 64 bits, lone surrogates, deep nesting, and types
        # json.dumps also rejects (it raises its own error for those).
        return json.dumps(value)


def loads_json(text: str | bytes) -> Any:
    """Decode a stored JSON value as json.loads would, with orjson where it reads the same."""
    data = text.encode() if type(text) is str else text
    if _LONG_NUMBER in data.translate(_DIGITS):
        return json.loads(text)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # NaN, Infinity and escaped lone surrogates: json.dumps writes them, orjson refuses.
        return json.loads(text)


def make_engine(url: str | None = None, **kwargs) -> Engine:
    """Create an engine for ``url`` (default: an SQLite file in the working directory)."""
    url = url or DEFAULT_URL
    if sa.make_url(url).get_backend_name() == "sqlite":
        connect_args = {"factory": QueuedWriter, **kwargs.pop("connect_args", {})}
        kwargs["connect_args"] = connect_args
    # JSON columns: SQLAlchemy encodes and (on SQLite) decodes with these; on PostgreSQL the
    # dialect hands them to psycopg's json and jsonb adapters, which otherwise use json's.
    kwargs.setdefault("json_serializer", dumps_json)
    kwargs.setdefault("json_deserializer", loads_json)
    engine = sa.create_engine(url, **kwargs)
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    return engine


class QueuedWriter(sqlite3.Connection):
    """An SQLite connection whose write transactions queue on an OS file lock.

    SQLite's busy handler retries a locked database after sleeping 1, 2, 5,
    10, 15 … ms, so a writer that meets another one waits far longer than the
    other holds the lock (the tail of every concurrent check). A blocking
    ``flock`` on a file next to the database wakes the next writer the moment
    the holder commits, whether it is a thread of this process or another
    process, and the kernel drops the lock of a process that dies.
    """

    _lock_file = None
    _holds_lock = False
    _database = ""
    _changes_before = 0

    def queue_on(self, database: str) -> None:
        """Queue this connection's writers on a lock file next to ``database``."""
        self._database = database
        self._lock_file = open(f"{database}-writer.lock", "a+b")  # noqa: SIM115 - closed in close()

    def begin(self, mode: str) -> None:
        """Start a transaction; an IMMEDIATE one first waits its turn on the lock file."""
        if mode == "IMMEDIATE" and self._lock_file is not None and not _writing.depth:
            # A thread that already writes through another connection must not wait
            # for itself: it falls back to SQLite's busy timeout, as without the lock.
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_EX)
            self._holds_lock = True
            _writing.depth += 1
            self._changes_before = self.total_changes
        try:
            self.execute(f"BEGIN {mode}")
        except BaseException:
            self._release()
            raise

    def commit(self) -> None:
        """Commit, then let the next writer in."""
        wrote = self._holds_lock
        try:
            super().commit()
        finally:
            self._release()
        if wrote:
            _checkpoints.committed(self._database, self.total_changes - self._changes_before)

    def rollback(self) -> None:
        """Roll back, then let the next writer in."""
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        """Close, letting go of the lock file."""
        try:
            super().close()
        finally:
            self._release()
            if self._lock_file is not None:
                self._lock_file.close()
                self._lock_file = None

    def _release(self) -> None:
        if self._holds_lock:
            self._holds_lock = False
            _writing.depth -= 1
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)


class _Writing(threading.local):
    depth = 0


_writing = _Writing()


class _Checkpoints:
    """Checkpoint each database's WAL in a background thread every few commits.

    SQLite's automatic checkpoint runs inside the commit that crosses its
    threshold: that check takes milliseconds longer, with the write lock
    held, and every writer queued behind it waits too (the p99 of checks).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._commits: dict[str, tuple[int, int]] = {}
        self._running: set[str] = set()

    def committed(self, database: str, rows: int = 0) -> None:
        """Count a write transaction of ``rows`` changes; checkpoint once enough went by."""
        with self._lock:
            count, changed = self._commits.get(database, (0, 0))
            count, changed = count + 1, changed + rows
            if (count < SQLITE_CHECKPOINT_EVERY and changed < SQLITE_CHECKPOINT_ROWS) \
                    or database in self._running:
                self._commits[database] = count, changed
                return
            self._commits[database] = 0, 0
            self._running.add(database)
        threading.Thread(target=self._checkpoint, args=(database,), daemon=True).start()

    def _checkpoint(self, database: str) -> None:
        try:
            # mode=rw: a store removed meanwhile is not created again, empty.
            connection = sqlite3.connect(f"file:{quote(database)}?mode=rw", uri=True,
                                         timeout=SQLITE_BUSY_TIMEOUT_MS / 1000)
            try:
                # PASSIVE: copy what no reader still needs, never wait for or block writers.
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
            finally:
                connection.close()
        except sqlite3.Error:
            pass  # the next one (or SQLite's backstop) catches up
        finally:
            with self._lock:
                self._running.discard(database)


_checkpoints = _Checkpoints()


def _tune_sqlite(engine: Engine) -> None:
    database = engine.url.database
    on_disk = database not in (None, "", ":memory:") and not database.startswith("file:")

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record) -> None:
        # Let SQLAlchemy's "begin" event below emit BEGIN, so it can be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        if on_disk:
            cursor.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL syncs at checkpoints, not at every commit: a committed
            # transaction survives the process crashing or being killed (it is in the WAL
            # file the OS holds); only a power loss or OS crash can roll back the last
            # commits, never corrupt the file. The embedded store trades that for a commit
            # in microseconds instead of an fsync each; PostgreSQL is the production store.
            cursor.execute("PRAGMA synchronous=NORMAL")
            # 64 MiB of page cache (SQLite's default is 2 MiB): the upper levels of the
            # identity, people and ledger indexes of a million-person store stay in it.
            cursor.execute("PRAGMA cache_size=-65536")
            if isinstance(dbapi_connection, QueuedWriter):
                dbapi_connection.queue_on(database)
                cursor.execute(f"PRAGMA wal_autocheckpoint={SQLITE_CHECKPOINT_BACKSTOP}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection) -> None:
        # IMMEDIATE takes the write lock up front: two writers queue instead of one
        # failing when it upgrades a read lock. Read-only paths pass
        # execution_options(sqlite_begin="DEFERRED").
        mode = connection.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        driver = connection.connection.driver_connection
        if isinstance(driver, QueuedWriter):
            driver.begin(mode)
        else:
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
