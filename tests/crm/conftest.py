"""Fixtures: the Salesforce and HubSpot fakes side by side, and connectors on them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import responses

from tests.connectors.hubspot.conftest import make_connector as make_hubspot
from tests.connectors.hubspot.conftest import serve_checked
from tests.connectors.salesforce.conftest import make_connector as make_salesforce
from tests.connectors.salesforce.fake import FakeSalesforce

# Decisions in these tests happen at this moment (SPEC §4's example day).
AT = "2026-11-23T10:00:00Z"
PLUGIN_FIELDS = ("Guard_Replacement_Cycle_Years__c", "Guard_Preferred_Channel__c",
                 "Guard_Contact_Hours__c", "Guard_Do_Not_Market_Until__c", "Guard_Status__c",
                 "Guard_Flags__c", "Guard_Updated__c")


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


def installed_org(mock, **options) -> FakeSalesforce:
    """A fake org with the plugin's fields in place, as after ``guard install salesforce``."""
    org = FakeSalesforce(mock, **options)
    for sobject in ("Contact", "Lead"):
        for name in PLUGIN_FIELDS:
            org.add_field(sobject, name)
    org.add_field("Task", "Guard_Dedupe_Key__c")
    return org


@pytest.fixture
def org(mock):
    return installed_org(mock, page_size=3)


@pytest.fixture
def salesforce(org):
    return make_salesforce(org)


@pytest.fixture
def portal_server():
    yield from serve_checked()


@pytest.fixture
def hubspot(portal_server):
    return make_hubspot(portal_server)


def recently(hours: float = 1) -> datetime:
    """A moment shortly before the real now, for fakes read by connectors on the real clock."""
    return datetime.now(UTC) - timedelta(hours=hours)


def check(guard, to, **attempt):
    """Decide a dry-run attempt at AT; return the verdict and the ids of the rules behind it."""
    decision = guard.check({"to": to, "at": AT, **attempt}, commit=False)
    return decision.verdict, {reason.rule for reason in decision.reasons}


@pytest.fixture
def guard(engine, policy, clock):
    """The Guard on the migrated test store (SQLite and PostgreSQL), on the test clock."""
    from guard.checks.service import Guard

    return Guard(engine, policy, clock=clock)
