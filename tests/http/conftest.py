"""The app on the shared test store (SQLite and PostgreSQL, clock at NOW), keys, helpers."""

from __future__ import annotations

import pytest

from guard import create_app
from guard.http import keys
from guard.services import services


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
