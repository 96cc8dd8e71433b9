"""The worker runs a job per CRM configured in the environment; one failing CRM spares the other."""

from __future__ import annotations

import logging

import pytest

from guard import create_app, worker
from guard.crm.jobs import CrmJob
from guard.crm.settings import configured_systems
from tests.connectors.hubspot.conftest import TOKEN
from tests.connectors.hubspot.conftest import make_connector as make_hubspot
from tests.connectors.salesforce.fake import CONSUMER, DOMAIN, FakeSalesforce
from tests.crm.conftest import recently


@pytest.fixture
def environ(monkeypatch):
    """A clean CRM environment the test fills in."""
    import os

    for name in list(os.environ):
        if name.startswith(("GUARD_SALESFORCE_", "GUARD_HUBSPOT_")):
            monkeypatch.delenv(name)

    def set_env(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)

    return set_env


@pytest.mark.parametrize("names, systems", [
    ({}, []),
    ({"GUARD_HUBSPOT_WEBHOOK_SECRET": "s"}, []),
    ({"GUARD_HUBSPOT_TOKEN": "pat"}, ["hubspot"]),
    ({"GUARD_HUBSPOT_CLIENT_ID": "i", "GUARD_HUBSPOT_CLIENT_SECRET": "s"}, []),
    ({"GUARD_HUBSPOT_CLIENT_ID": "i", "GUARD_HUBSPOT_CLIENT_SECRET": "s",
      "GUARD_HUBSPOT_REFRESH_TOKEN": "r"}, ["hubspot"]),
    ({"GUARD_SALESFORCE_USERNAME": "u", "GUARD_SALESFORCE_PASSWORD": "p"}, ["salesforce"]),
    ({"GUARD_SALESFORCE_CONSUMER_KEY": "k", "GUARD_SALESFORCE_CONSUMER_SECRET": "s",
      "GUARD_HUBSPOT_TOKEN": "pat"}, ["salesforce", "hubspot"]),
    ({"GUARD_SALESFORCE_DOMAIN": "acme.my"}, []),
], ids=["nothing", "webhook-secret-only", "hubspot-token", "hubspot-oauth-incomplete",
        "hubspot-oauth", "salesforce-password", "both", "salesforce-domain-only"])
def test_a_crm_is_configured_when_its_credentials_are(names, systems):
    assert configured_systems(names) == systems


def test_the_worker_syncs_a_configured_crm(portal_server, guard, environ):
    anna = portal_server.add("contacts", {"email": "anna@example.com"})
    environ(GUARD_HUBSPOT_TOKEN=TOKEN, GUARD_HUBSPOT_URL=portal_server.url)
    app = create_app({"GUARD": guard, "TESTING": True})

    worker.run(app, once=True)

    assert [job.__name__ for job in worker.scheduled_jobs(app)] == [
        "refresh_flags", "purge_expired", "crm:hubspot"]
    assert guard.resolve({"hubspot": anna}) == guard.resolve("anna@example.com") is not None


def test_a_failing_crm_is_logged_and_the_other_still_syncs(mock, portal_server, guard, environ,
                                                          caplog):
    org = FakeSalesforce(mock, now=recently())  # the plugin's fields are not installed
    org.insert("Contact", Name="Anna", Email="anna@example.com")
    ben = portal_server.add("contacts", {"email": "ben@example.com"})
    environ(GUARD_SALESFORCE_CONSUMER_KEY=CONSUMER[0], GUARD_SALESFORCE_CONSUMER_SECRET=CONSUMER[1],
            GUARD_SALESFORCE_DOMAIN=DOMAIN, GUARD_HUBSPOT_TOKEN=TOKEN,
            GUARD_HUBSPOT_URL=portal_server.url)
    app = create_app({"GUARD": guard, "TESTING": True})

    with caplog.at_level(logging.ERROR, logger="guard.crm.jobs"):
        worker.run(app, once=True)

    assert guard.resolve({"hubspot": ben}) is not None
    assert guard.resolve("anna@example.com") is None
    [failure] = [r.getMessage() for r in caplog.records if r.getMessage().startswith("salesforce")]
    assert failure.startswith("salesforce sync failed:")
    assert "Guard_" in failure, "the message names the missing plugin field"


class Ticker:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_sync_runs_every_interval_and_write_back_every_cycle(portal_server, guard):
    connector = make_hubspot(portal_server)
    connector.install()
    ticker = Ticker()
    job = CrmJob("hubspot", 300, lambda: connector, clock=ticker)
    app = create_app({"GUARD": guard, "TESTING": True})
    searches = lambda: portal_server.calls("POST", "/search")  # noqa: E731

    job(app)
    after_first = searches()
    anna = portal_server.add("contacts", {"email": "anna@example.com"})
    ticker.now += 299
    job(app)
    assert searches() == after_first and guard.resolve({"hubspot": anna}) is None
    ticker.now += 1
    job(app)

    assert after_first > 0 and searches() > after_first
    assert guard.resolve({"hubspot": anna}) is not None
    assert portal_server.record("contacts", anna)["properties"]["guard_status"] == "Clear"


def test_a_bad_sync_interval_fails_at_start_up(guard):
    from guard.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="GUARD_SYNC_INTERVAL"):
        create_app({"GUARD": guard, "SYNC_INTERVAL": "often"})
