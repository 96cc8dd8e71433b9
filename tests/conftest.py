"""Shared fixtures (a store on SQLite and PostgreSQL, the policy, the Guard), a clock, events."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from guard.store.engine import make_engine
from guard.store.migrate import upgrade

# The erasure key every test store's Guard uses unless a test says otherwise (the service
# reads GUARD_ERASURE_SALT from the environment; it never lives in the store).
TEST_ERASURE_KEY = "tests-" + "0123456789abcdef" * 4
os.environ.setdefault("GUARD_ERASURE_SALT", TEST_ERASURE_KEY)

# Property tests assert what holds for any input, never how fast it is found: on a loaded
# machine Hypothesis's own timing checks would fail tests whose behaviour is right.
settings.register_profile("guard", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("guard")

POSTGRES_URL = os.environ.get("GUARD_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")

_postgres_state: dict[str, str | None] = {}


def _postgres_unavailable() -> str | None:
    """Say why PostgreSQL cannot be used (None: it can); asked once per session."""
    if "reason" not in _postgres_state:
        try:
            engine = sa.create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
            with engine.connect() as conn:
                conn.execute(sa.text("select 1"))
            engine.dispose()
            _postgres_state["reason"] = None
        except Exception as exc:  # any failure to connect means: skip, and say why
            _postgres_state["reason"] = f"PostgreSQL at {POSTGRES_URL} unreachable: {exc}"
    return _postgres_state["reason"]


def postgres_schema_url(schema: str) -> str:
    """Return the PostgreSQL URL whose connections use ``schema`` (subprocesses too)."""
    separator = "&" if "?" in POSTGRES_URL else "?"
    return f"{POSTGRES_URL}{separator}options={quote(f'-csearch_path={schema}')}"


@contextmanager
def empty_store(backend: str, folder: Path) -> Iterator[str]:
    """Yield the URL of an empty store: an SQLite file in ``folder``, or a fresh PostgreSQL
    schema (dropped after); skip, saying why, when PostgreSQL is unreachable."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'guard.db'}"
        return
    reason = _postgres_unavailable()
    if reason:
        pytest.skip(reason)
    # A schema per store, so tests (and engineers running tests side by side) never collide.
    schema = f"t_{secrets.token_hex(6)}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    try:
        yield postgres_schema_url(schema)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request, tmp_path):
    """A URL of an empty store: a temporary SQLite file, or a fresh PostgreSQL schema."""
    with empty_store(request.param, tmp_path) as url:
        yield url


_migrated: dict[str, object] = {}


def _migrate(engine: sa.Engine, folder) -> None:
    """Bring an empty store to the newest schema as ``upgrade`` does, quicker than it.

    The migrations run for real once per test session and dialect; each later store
    gets their outcome: SQLite the migrated file, copied page by page; PostgreSQL every
    statement the migrations sent (their reads of the catalog left out), sent again.
    """
    dialect = engine.dialect.name
    if dialect not in _migrated:
        if dialect == "sqlite":
            template = make_engine(f"sqlite:///{folder / 'migrated.db'}")
            upgrade(template)
            template.dispose()
            _migrated[dialect] = folder / "migrated.db"
        else:
            sent: list[tuple[str, object, bool]] = []

            def record(conn, cursor, statement, parameters, context, executemany):
                if not statement.lstrip().upper().startswith(("SELECT", "SHOW")):
                    sent.append((statement, parameters, executemany))

            sa.event.listen(engine, "before_cursor_execute", record)
            try:
                upgrade(engine)
            finally:
                sa.event.remove(engine, "before_cursor_execute", record)
            _migrated[dialect] = sent
            return
    if dialect == "sqlite":
        import sqlite3

        source = sqlite3.connect(_migrated[dialect])
        target = sqlite3.connect(engine.url.database)
        try:
            source.backup(target)
        finally:
            source.close()
            target.close()
        return
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters, many in _migrated[dialect]:
            if many:
                cursor.executemany(statement, parameters)
            else:
                cursor.execute(statement, parameters or None)
        raw.commit()
    finally:
        raw.close()


@pytest.fixture
def engine(db_url, tmp_path_factory):
    """An engine on a store migrated to the newest schema."""
    engine = make_engine(db_url)
    _migrate(engine, tmp_path_factory.getbasetemp())
    yield engine
    engine.dispose()


@pytest.fixture
def policy():
    """The shipped default policy."""
    from policies import default_policy_path, load_policy

    return load_policy(default_policy_path())


@pytest.fixture
def guard(engine, policy):
    """The Guard façade on the migrated store with the shipped policy."""
    from guard.checks.service import Guard

    return Guard(engine, policy)


# A Monday, 11:00 in Berlin.
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


class Clock:
    """The guard's clock in tests: stands at NOW until the test moves it."""

    def __init__(self, now: datetime = NOW):
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock():
    """A clock at NOW that the test moves."""
    return Clock()


@pytest.fixture
def store(engine, policy):
    """The Guard façade on the migrated store with the shipped policy, its clock at NOW."""
    from guard.checks.service import Guard

    return Guard(engine, policy, clock=lambda: NOW)


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless, through Playwright; one per test session."""
    from tests.browser import CHROMIUM, chromium_unavailable

    reason = chromium_unavailable()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    """A fresh browser context and page (own cookies), closed after the test."""
    context = browser.new_context()
    opened = context.new_page()
    yield opened
    context.close()


def person(sid: str, *emails: str, system: str = "salesforce", **fields) -> dict:
    return {"type": "person", "source": {"system": system, "type": "Contact", "id": sid},
            "emails": list(emails), **fields}


def purchase(sid: str, who, product: str = "audi-a4", at: str = "2026-11-21T10:00:00Z",
             **fields) -> dict:
    return {"type": "purchase", "source": {"system": "dms", "id": sid}, "person": who,
            "product": product, "category": "vehicle", "at": at, **fields}


def accepted(result: dict) -> int:
    assert result["rejected"] == [], result["rejected"]
    return result["accepted"]
