"""Fixtures: the app with the real Guard at the fixed clock, signing keys, a known customer."""

from __future__ import annotations

from datetime import timedelta

import pytest

from guard import create_app
from guard.preferences.tokens import Signer
from tests.conftest import NOW, accepted, person
from tests.proxy.conftest import proxy_config
from tests.proxy.upstream import Serving, Upstream

PUBLIC = "https://guard.example"
KEY = "k2:" + "s" * 40
OLD_KEY = "k1:" + "o" * 40
ANNA = "anna@example.com"
ANNA_SF = "003Ws000000Anna"


@pytest.fixture
def upstream():
    fake = Upstream()
    with Serving(fake) as serving:
        fake.url = serving.url
        yield fake


def settings(upstream_url: str, **extra) -> dict:
    return {"TESTING": True, **proxy_config(upstream_url), "PUBLIC_URL": PUBLIC,
            "PREFERENCES_KEYS": f"{KEY},{OLD_KEY}", "PREFERENCES_RATE_PER_TOKEN": 1000,
            "PREFERENCES_RATE_PER_ADDRESS": 1000, **extra}


@pytest.fixture
def make_app(store, upstream):
    def build(**extra):
        return create_app({"GUARD": store, **settings(upstream.url, **extra)})

    return build


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def signer():
    from guard.preferences.settings import read_keys

    return Signer(read_keys(f"{KEY},{OLD_KEY}"), timedelta(days=365))


@pytest.fixture
def anna(store) -> str:
    """A customer known to Salesforce, with a name that tries to inject HTML."""
    accepted(store.ingest([person(ANNA_SF, ANNA, name="<script>alert(1)</script> Anna",
                                  phones=["+491701234567"], crm_ids={"salesforce": ANNA_SF},
                                  owner="dealer:munich", stage="customer")]))
    return store.resolve(ANNA)


def check(store, purpose: str = "promotion", channel: str = "email", to: str = ANNA,
          sender: str = "oem", **extra):
    """Decide a dry-run attempt at the fixed clock."""
    return store.check({"channel": channel, "to": to, "purpose": purpose, "sender": sender,
                        "at": (NOW + timedelta(hours=1)).isoformat(), **extra}, commit=False)
