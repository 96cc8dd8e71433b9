"""Fixtures: an app on the test store with automation secrets, a moving clock, a fake HubSpot."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from guard import create_app
from guard.store.tables import ledger
from tests.automation.fake_hubspot import FakeAutomation
from tests.conftest import accepted, person

SECRET = "hubspot-client-secret"
# The URL the test client calls, which HubSpot would have signed.
PUBLIC = "http://localhost"
SFMC_SECRET = "sfmc-jwt-signing-secret-of-the-installed-package-0123456789abcdef"


@pytest.fixture
def guard(engine, policy, clock):
    from guard.checks.service import Guard

    return Guard(engine, policy, clock=clock)


@pytest.fixture
def app(guard):
    return create_app({"GUARD": guard, "TESTING": True, "HUBSPOT_WEBHOOK_SECRET": SECRET,
                       "SFMC_JWT_SECRET": SFMC_SECRET})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def fake():
    server = FakeAutomation().start()
    yield server
    server.stop()
    assert server.problems == []


def customer(guard, hubspot_id: str = "501", **fields) -> None:
    """Store a customer known by a HubSpot contact id, in Berlin."""
    accepted(guard.ingest([person(hubspot_id, "anna@example.com", system="hubspot",
                                  phones=["+49 170 1234567"], timezone="Europe/Berlin",
                                  stage="customer", owner="dealer:munich", **fields)]))


def decisions(engine) -> list[dict]:
    """Every decision in the ledger, oldest first, with its via."""
    with engine.connect() as conn:
        rows = conn.execute(sa.select(ledger.c.id, ledger.c.verdict, ledger.c.via,
                                      ledger.c.committed).where(ledger.c.id.like("dec_%"))
                            .order_by(ledger.c.id)).mappings().all()
    return [dict(row) for row in rows]


@pytest.fixture
def key(app):
    """A guard API key with the check scope, as a Flow's principal or Braze would hold."""
    from guard.http import keys

    _, secret = keys.create_key(app.extensions["guard"].engine, "automation", ["check"])
    return secret
