"""The CRM commands as an admin runs them: guard install, guard sync, guard push."""

from __future__ import annotations

import pytest
import yaml
from click.testing import CliRunner

from guard.checks.service import Guard
from guard.cli import main
from tests.connectors.hubspot.conftest import OWNERS, TOKEN, seed_portal
from tests.connectors.salesforce.fake import CONSUMER, DOMAIN
from tests.crm.conftest import installed_org, recently


@pytest.fixture
def fake(portal_server):
    """The HubSpot fake under the name the shared ``portal`` fixture asks for."""
    return portal_server


@pytest.fixture
def portal(fake):
    """The small dealer portal of the HubSpot connector tests."""
    return seed_portal(fake)


@pytest.fixture
def runner(engine, db_url, monkeypatch, tmp_path):
    """Run ``guard`` against the migrated test store with only the CRM settings a test sets."""
    import os

    for name in list(os.environ):
        if name.startswith(("GUARD_SALESFORCE_", "GUARD_HUBSPOT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GUARD_DATABASE_URL", db_url)
    monkeypatch.delenv("GUARD_POLICY", raising=False)
    return CliRunner()


@pytest.fixture
def hubspot_env(monkeypatch, portal_server, tmp_path):
    mapping = tmp_path / "hubspot.yaml"
    mapping.write_text(yaml.safe_dump(OWNERS))
    monkeypatch.setenv("GUARD_HUBSPOT_TOKEN", TOKEN)
    monkeypatch.setenv("GUARD_HUBSPOT_URL", portal_server.url)
    monkeypatch.setenv("GUARD_HUBSPOT_MAPPING", str(mapping))


@pytest.fixture
def salesforce_env(monkeypatch):
    monkeypatch.setenv("GUARD_SALESFORCE_CONSUMER_KEY", CONSUMER[0])
    monkeypatch.setenv("GUARD_SALESFORCE_CONSUMER_SECRET", CONSUMER[1])
    monkeypatch.setenv("GUARD_SALESFORCE_DOMAIN", DOMAIN)


def test_install_hubspot_creates_the_properties_once(runner, hubspot_env, portal_server):
    first = runner.invoke(main, ["install", "hubspot"])
    assert first.exit_code == 0, first.output
    assert "guard_status" in first.output
    again = runner.invoke(main, ["install", "hubspot"])
    assert again.exit_code == 0, again.output
    assert "nothing changed" in again.output


def test_sync_hubspot_fills_the_store_and_prints_a_summary(
        runner, hubspot_env, portal, engine, policy):
    runner.invoke(main, ["install", "hubspot"])
    result = runner.invoke(main, ["sync", "hubspot"])
    assert result.exit_code == 0, result.output
    assert "contacts" in result.stdout and "0 rejected" in result.stdout
    guard = Guard(engine, policy)
    anna = guard.resolve("anna@example.com")
    assert anna is not None and guard.resolve({"hubspot": portal["anna"]}) == anna
    assert sorted(_products(guard, anna)) == ["audi-a4", "mats-a4"]

    # A second run reads from the bookmarks and duplicates nothing.
    again = runner.invoke(main, ["sync", "hubspot"])
    assert again.exit_code == 0, again.output
    assert sorted(_products(guard, anna)) == ["audi-a4", "mats-a4"]


def _products(guard, person_id):
    return [p["product"] for p in guard.person(person_id)["profile"]["purchases"]]


def test_push_hubspot_writes_flags_to_the_contact(runner, hubspot_env, portal, portal_server):
    runner.invoke(main, ["install", "hubspot"])
    runner.invoke(main, ["sync", "hubspot"])
    result = runner.invoke(main, ["push", "hubspot"])
    assert result.exit_code == 0, result.output
    assert "flags written to" in result.stdout
    anna = portal_server.objects["contacts"][portal["anna"]]["properties"]
    assert anna["guard_status"] == "Caution", anna
    assert "Open case" in anna["guard_flags"], anna["guard_flags"]
    # Flags are written only when they change.
    again = runner.invoke(main, ["push", "hubspot"])
    assert "flags written to 0 records" in again.stdout, again.output


def test_an_unsubscribe_in_hubspot_blocks_marketing_and_shows_in_the_flags(
        runner, hubspot_env, portal, portal_server, engine, policy):
    # Communication preferences v4 say UNSUBSCRIBED: Anna left "Offers" (mapped to
    # marketing), Paul left every email.
    runner.invoke(main, ["install", "hubspot"])
    assert runner.invoke(main, ["sync", "hubspot"]).exit_code == 0
    guard = Guard(engine, policy)
    newsletter = {"channel": "email", "purpose": "newsletter", "sender": "oem",
                  "at": "2026-11-23T10:00:00Z"}
    for who in ("anna", "paul"):
        decision = guard.check({**newsletter, "to": {"hubspot": portal[who]}}, commit=False)
        assert decision.verdict == "block", (who, decision)
        assert "consent" in {reason.rule for reason in decision.reasons}

    assert runner.invoke(main, ["push", "hubspot"]).exit_code == 0
    contacts = portal_server.objects["contacts"]
    assert "Opted out of email marketing since 2026-10-01" in (
        contacts[portal["anna"]]["properties"]["guard_flags"])
    assert "Opted out of email since 2026-09-01" in (
        contacts[portal["paul"]]["properties"]["guard_flags"])


def test_sync_salesforce_fills_the_store(runner, salesforce_env, mock, engine, policy):
    org = installed_org(mock, now=recently())
    account = org.insert("Account", Name="Northwind")
    org.insert("Contact", Name="Eva Richter", Email="eva@northwind.example",
               AccountId=account)
    result = runner.invoke(main, ["sync", "salesforce"])
    assert result.exit_code == 0, result.output
    assert "Contact" in result.stdout
    assert Guard(engine, policy).resolve("eva@northwind.example") is not None


@pytest.mark.parametrize("system, needs", [
    ("hubspot", "GUARD_HUBSPOT_TOKEN"),
    ("salesforce", "GUARD_SALESFORCE_"),
], ids=["hubspot", "salesforce"])
def test_missing_credentials_are_one_clear_line(runner, system, needs):
    for command in ("sync", "install", "push"):
        result = runner.invoke(main, [command, system])
        assert result.exit_code == 1, result.output
        assert needs in result.output
        assert "Traceback" not in result.output


def test_an_unknown_crm_is_a_usage_error(runner):
    result = runner.invoke(main, ["sync", "pipedrive"])
    assert result.exit_code == 2
    assert "pipedrive" in result.output


def test_a_sync_that_reaches_the_quota_reserve_stops_with_status_3(runner, salesforce_env, mock,
                                                                   monkeypatch, engine, policy):
    org = installed_org(mock, now=recently())
    org.insert("Contact", Name="Eva Richter", Email="eva@northwind.example")
    org.api_total, org.api_used = 1000, 990
    monkeypatch.setenv("GUARD_SALESFORCE_API_RESERVE", "5")
    stopped = runner.invoke(main, ["sync", "salesforce"])
    assert stopped.exit_code == 3, stopped.output
    assert "stopped early" in stopped.output and "next run resumes" in stopped.output

    org.api_used = 0  # the daily quota resets
    resumed = runner.invoke(main, ["sync", "salesforce"])
    assert resumed.exit_code == 0, resumed.output
    assert Guard(engine, policy).resolve("eva@northwind.example") is not None
