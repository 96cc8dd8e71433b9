"""Fixtures: a recording upstream, the app wired to it, and a caller's API key."""

from __future__ import annotations

import pytest

from guard import create_app
from guard.http import keys
from guard.services import services

from .standin import ScriptedGuard
from .upstream import Serving, Upstream

GUARD_SID = "AC" + "1" * 32
CALLER_SID = "AC" + "c" * 32


@pytest.fixture
def upstream():
    fake = Upstream()
    with Serving(fake) as serving:
        fake.url = serving.url
        yield fake


def proxy_config(upstream_url: str, **extra) -> dict:
    return {
        "SENDGRID_URL": upstream_url,
        "SENDGRID_API_KEY": "SG.guard-own-key",
        "TWILIO_URL": upstream_url,
        "TWILIO_ACCOUNT_SID": GUARD_SID,
        "TWILIO_AUTH_TOKEN": "guard-own-token",
        "FORWARD_WAIT": 0.001,
        "FORWARD_WAIT_MAX": 0.005,
        "OUTBOX_RETRY_SECONDS": 0,
        **extra,
    }


@pytest.fixture
def standin(engine):
    return ScriptedGuard(engine)


@pytest.fixture
def make_app(upstream):
    def build(guard, **extra):
        return create_app({"GUARD": guard, "TESTING": True, **proxy_config(upstream.url, **extra)})

    return build


@pytest.fixture
def app(make_app, standin):
    return make_app(standin)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def token(app) -> str:
    _, secret = keys.create_key(services(app).engine, "marketing tool", ["send"],
                                sender="oem", purpose="promotion")
    return secret
