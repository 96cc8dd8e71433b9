"""``guard install hubspot`` also registers the workflow action, when the app's keys are set."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from guard.cli import main
from tests.automation.fake_hubspot import FakeAutomation
from tests.connectors.hubspot.conftest import TOKEN, serve_checked


@pytest.fixture
def portal():
    yield from serve_checked()


@pytest.fixture
def hubspot(portal):
    """One base URL: the automation fake, passing CRM calls on to the portal fake."""
    server = FakeAutomation(token=TOKEN, upstream=portal.url).start()
    yield server
    server.stop()
    assert server.problems == []


@pytest.fixture
def runner(db_url, monkeypatch, hubspot):
    for name in list(os.environ):
        if name.startswith(("GUARD_SALESFORCE_", "GUARD_HUBSPOT_", "GUARD_PUBLIC_URL")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GUARD_DATABASE_URL", db_url)
    monkeypatch.setenv("GUARD_HUBSPOT_TOKEN", TOKEN)
    monkeypatch.setenv("GUARD_HUBSPOT_URL", hubspot.url)
    return CliRunner()


def test_install_registers_the_action_for_the_guards_public_url_once(
        runner, monkeypatch, hubspot, portal):
    monkeypatch.setenv("GUARD_HUBSPOT_APP_ID", str(hubspot.app_id))
    monkeypatch.setenv("GUARD_HUBSPOT_DEVELOPER_API_KEY", hubspot.developer_key)
    monkeypatch.setenv("GUARD_PUBLIC_URL", "https://guard.example.com/")
    first = runner.invoke(main, ["install", "hubspot"])
    assert first.exit_code == 0, first.output
    assert "created contact property guard_status" in first.stdout
    assert "created workflow action 'Contact Guard check'" in first.stdout
    [action] = hubspot.definitions.values()
    assert action["actionUrl"] == "https://guard.example.com/hooks/hubspot/action"
    again = runner.invoke(main, ["install", "hubspot"])
    assert again.exit_code == 0, again.output
    # HubSpot answers the definition with defaults it filled in: still nothing to update.
    assert "nothing changed" in again.stdout and hubspot.changes == 1


def test_without_the_apps_keys_install_says_what_the_action_needs(runner, hubspot):
    result = runner.invoke(main, ["install", "hubspot"])
    assert result.exit_code == 0, result.output
    assert "workflow action not registered" in result.stderr
    assert "GUARD_HUBSPOT_DEVELOPER_API_KEY" in result.stderr
    assert hubspot.definitions == {}


@pytest.fixture
def salesforce(db_url, monkeypatch):
    """``guard`` against the test store and a fake org served through responses."""
    import responses

    from tests.connectors.salesforce.fake import CONSUMER, DOMAIN, FakeSalesforce

    for name in list(os.environ):
        if name.startswith(("GUARD_SALESFORCE_", "GUARD_HUBSPOT_", "GUARD_PUBLIC_URL")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GUARD_DATABASE_URL", db_url)
    monkeypatch.setenv("GUARD_SALESFORCE_CONSUMER_KEY", CONSUMER[0])
    monkeypatch.setenv("GUARD_SALESFORCE_CONSUMER_SECRET", CONSUMER[1])
    monkeypatch.setenv("GUARD_SALESFORCE_DOMAIN", DOMAIN)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield FakeSalesforce(mock)


def test_install_salesforce_deploys_the_flow_action_for_the_public_url(
        salesforce, monkeypatch):
    import json

    from guard.automation.external_service import document

    monkeypatch.setenv("GUARD_PUBLIC_URL", "https://guard.example.com")
    first = CliRunner().invoke(main, ["install", "salesforce"])
    assert first.exit_code == 0, first.output
    assert "created external service Contact_Guard" in first.stdout
    service = salesforce.metadata[("ExternalServiceRegistration", "Contact_Guard")]
    assert json.loads(service["schema"]) == document()
    credential = salesforce.metadata[("NamedCredential", "Contact_Guard")]
    assert "https://guard.example.com" in json.dumps(credential)
    again = CliRunner().invoke(main, ["install", "salesforce"])
    assert "nothing changed" in again.stdout


def test_install_salesforce_without_a_public_url_installs_the_fields_and_says_why_not(
        salesforce):
    result = CliRunner().invoke(main, ["install", "salesforce"])
    assert result.exit_code == 0, result.output
    assert "created field Contact.Guard_Status__c" in result.stdout
    assert "Flow action not deployed" in result.stderr
    assert ("ExternalServiceRegistration", "Contact_Guard") not in salesforce.metadata
