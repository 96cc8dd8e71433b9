"""The app on the shared test store (SQLite and PostgreSQL, clock at NOW), keys, helpers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from guard import create_app
from guard.checks.service import Guard
from guard.http import keys
from guard.services import services

# The decisions in these tests happen at this moment (a Monday, 11:00 in Berlin).
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(engine, policy):
    """A Guard on the migrated test store whose clock stands at NOW."""
    return Guard(engine, policy, clock=lambda: NOW)


@pytest.fixture
def app(store):
    return create_app({"GUARD": store, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_key(app):
    """Create a key with the given scopes and defaults; return its secret."""

    def make(*scopes: str, sender: str | None = None, purpose: str | None = None) -> str:
        _, secret = keys.create_key(services(app).engine, "test " + "+".join(scopes),
                                    scopes, sender=sender, purpose=purpose)
        return secret

    return make


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def admin(make_key) -> dict:
    return bearer(make_key("admin"))


@pytest.fixture
def checker(make_key) -> dict:
    """A marketing tool's key: scope check, default sender oem and purpose newsletter."""
    return bearer(make_key("check", sender="oem", purpose="newsletter"))


@pytest.fixture
def feeder(make_key) -> dict:
    return bearer(make_key("events"))
