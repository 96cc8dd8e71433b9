"""Every event the connector produces is one the guard's store accepts (SPEC §6)."""

from __future__ import annotations

import pytest

from connectors.hubspot import parse_mapping
from tests.connectors.hubspot.conftest import OWNERS, make_connector, run

events_module = pytest.importorskip("guard.ingest.events", reason="the guard's event validator")


@pytest.fixture
def default_policy():
    policies = pytest.importorskip("policies", reason="the policy loader")
    return policies.load_policy(policies.default_policy_path())


def test_sync_and_webhook_events_pass_the_store_validation(fake, portal, default_policy):
    connector = make_connector(fake, parse_mapping(OWNERS))
    events, _ = run(connector)
    events += connector.webhook_events(
        [
            {"subscriptionType": "contact.merge", "objectId": int(portal["anna"]),
             "primaryObjectId": int(portal["anna"]), "mergedObjectIds": [9001]},
            {"subscriptionType": "contact.privacyDeletion", "objectId": 9002},
            {"subscriptionType": "deal.deletion", "objectId": 9003},
        ]
    )  # fmt: skip
    assert {e["type"] for e in events} >= {"person", "account", "purchase", "case", "touch",
                                           "consent", "erase"}  # fmt: skip
    for event in events:
        events_module.parse_event(event, default_policy)
