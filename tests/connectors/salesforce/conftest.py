"""Fixtures: a fake org served through responses, and a connector logged in to it."""

from __future__ import annotations

from datetime import timedelta

import pytest
import responses
from tenacity import wait_none

from connectors.salesforce import SalesforceConnector, load_mapping
from connectors.salesforce.client import guarded_session, login_from_env
from tests.connectors.salesforce.fake import CONSUMER, DOMAIN, FakeSalesforce

ENVIRON = {
    "GUARD_SALESFORCE_CONSUMER_KEY": CONSUMER[0],
    "GUARD_SALESFORCE_CONSUMER_SECRET": CONSUMER[1],
    "GUARD_SALESFORCE_DOMAIN": DOMAIN,
}


@pytest.fixture
def mock():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        yield rsps


@pytest.fixture
def fake(mock):
    org = FakeSalesforce(mock, page_size=3)
    for sobject in ("Contact", "Lead"):
        for name in ("Guard_Replacement_Cycle_Years__c", "Guard_Preferred_Channel__c",
                     "Guard_Contact_Hours__c", "Guard_Do_Not_Market_Until__c", "Guard_Status__c",
                     "Guard_Flags__c", "Guard_Updated__c"):
            org.add_field(sobject, name)
    org.add_field("Task", "Guard_Dedupe_Key__c")
    return org


def make_connector(fake, mapping=None, **options):
    """Log in to the fake org with client credentials and build a connector on it."""
    session, usage = guarded_session()
    sf = login_from_env(ENVIRON, session=session)
    options.setdefault("clock", lambda: fake.now)
    options.setdefault("retry_wait", wait_none())
    options.setdefault("bulk_wait", 0)
    options.setdefault("api_reserve", 0)
    options.setdefault("lookback", timedelta(0))
    return SalesforceConnector(sf, load_mapping(mapping) if mapping is not None else None,
                               usage=usage, **options)


@pytest.fixture
def connector(fake):
    return make_connector(fake)
