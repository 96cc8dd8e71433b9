"""Engines for the store: SQLite as the embedded default, tuned to queue its writers; PostgreSQL.

SQLite runs in WAL with ``synchronous=NORMAL``, foreign keys, and ``BEGIN
IMMEDIATE`` behind a file lock, so writers queue instead of failing or
sleeping; WAL checkpoints run in a background thread. PostgreSQL is the
production store.
"""

from __future__ import annotations

import fcntl
import sqlite3
import threading
from collections.abc import Sequence
from contextlib import nullcontext
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from guard.store.codec import dumps_json, loads_json

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


def on_cursor(conn: sa.Connection, sql: str, params, *, many: bool = False) -> list | None:
    """Run driver SQL on ``conn``'s own DBAPI cursor, in its transaction; return rows, if any.

    For the check path's few statements, compiled once: SQLAlchemy's execution
    context (cache look-up, parameter and result set-up) costs more client CPU
    than SQLite spends on the statement, and more than a PostgreSQL round trip.
    Listeners of the cursor events still hear each statement; a driver error is
    raised as SQLAlchemy's own (a dropped connection invalidated), as
    ``Connection.execute`` would raise it.
    """
    return on_cursor_together(conn, [(sql, params)], many=many)[0]


def on_cursor_together(conn: sa.Connection, statements: list[tuple[str, Any]], *,
                       many: bool | Sequence[bool] = False) -> list[list | None]:
    """Run several driver statements in order as ``on_cursor`` does; return each one's rows.

    On PostgreSQL they go in one pipeline: one round trip for all (and for the
    transaction's BEGIN, when they open it) instead of one each. Each still
    runs on its own, in order, with its own snapshot in READ COMMITTED.
    ``many`` says for all statements, or for each, whether its parameters are
    a list of rows.
    """
    each = [many] * len(statements) if isinstance(many, bool) else list(many)
    if not conn.in_transaction():
        conn.begin()  # as Connection.execute would, so every statement is in one transaction
    dbapi_connection = conn.connection.dbapi_connection
    dispatch = conn.dispatch
    cursors: list = []
    sql, params = statements[0]
    try:
        together = len(statements) > 1 and hasattr(dbapi_connection, "pipeline")
        with dbapi_connection.pipeline() if together else nullcontext():
            for (sql, params), rows in zip(statements, each, strict=True):
                cursor = dbapi_connection.cursor()
                cursors.append(cursor)
                if dispatch.before_cursor_execute:
                    dispatch.before_cursor_execute(conn, cursor, sql, params, None, rows)
                if rows:
                    cursor.executemany(sql, params)
                else:
                    cursor.execute(sql, params)
                if dispatch.after_cursor_execute:
                    dispatch.after_cursor_execute(conn, cursor, sql, params, None, rows)
        return [c.fetchall() if c.description is not None else None for c in cursors]
    except conn.dialect.loaded_dbapi.Error as exc:
        dialect = conn.dialect
        dropped = dialect.is_disconnect(exc, dbapi_connection, cursors[-1] if cursors else None)
        if dropped:
            conn.invalidate(exc)
        raise sa.exc.DBAPIError.instance(sql, params, exc, dialect.loaded_dbapi.Error,
                                         connection_invalidated=dropped,
                                         dialect=dialect) from exc
    finally:
        for cursor in cursors:
            try:
                cursor.close()
            except conn.dialect.loaded_dbapi.Error:
                pass  # a cursor of a dropped connection: nothing left to close


def read_only(connection: sa.Connection) -> sa.Connection:
    """Mark a connection's transactions as readers (SQLite: no write lock)."""
    return connection.execution_options(sqlite_begin="DEFERRED")
