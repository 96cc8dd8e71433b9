"""The connector's requests and the fake's answers match HubSpot's documented shapes.

Every test that uses the ``fake`` fixture is checked this way when it ends
(see ``conftest.serve_checked``); this module drives every operation the
connector relies on at least once and shows that the check catches drift.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import FlagUpdate, OwnerTask
from connectors.hubspot import OAuthTokens, build_client, default_retry, parse_mapping
from connectors.hubspot.connector import HubSpotConnector
from tests.connectors.hubspot import shapes
from tests.connectors.hubspot.conftest import OWNERS, make_connector, run
from tests.connectors.hubspot.fake import Exchange

WHEN = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_every_operation_the_connector_uses_conforms(fake, portal):
    fake.association_page = 1  # every multi-valued association pages
    fake.refresh_tokens["refresh-1"] = 1800
    client = build_client(None, host=fake.url, retry=default_retry(backoff_factor=0.01))
    oauth = HubSpotConnector(client, tokens=OAuthTokens("id", "secret", "refresh-1"),
                             clock=lambda: WHEN)
    oauth.streams = oauth.streams[:1]
    run(oauth)
    connector = make_connector(fake, parse_mapping(OWNERS))
    connector.install()
    run(connector)
    connector.webhook_events([
        {"subscriptionType": "contact.propertyChange", "objectId": int(portal["anna"])},
        {"subscriptionType": "line_item.propertyChange", "objectId": int(portal["item"])},
    ])
    connector.write_flags([FlagUpdate(portal["anna"], "Caution", ("Open case",), WHEN),
                           FlagUpdate("999999", "Clear", (), WHEN)])
    tasks = [OwnerTask(portal["anna"], "Call Anna", "Why", "dec_1"),
             OwnerTask(portal["paul"], "Call Paul", "Why", "dec_2", owner="4040")]
    fake.lose_answer("/tasks/batch/create", 502)
    connector.create_tasks(tasks)
    fake.throttle(1, retry_after="0")
    connector.api.pipelines("tickets")

    used = {op.name for op in shapes.OPERATIONS
            if any(op.matches(e.method, e.path) for e in fake.exchanges)}
    assert used == {op.name for op in shapes.OPERATIONS}
    assert {e.status for e in fake.exchanges} >= {200, 201, 207, 400, 429, 502}
    assert shapes.check(fake.exchanges) == []


def _exchange(method, path, body, status, answer, query=None):
    return Exchange(method, path, query or {}, body, status, answer)


RECORD = {"id": "1", "properties": {"email": "a@example.com"},
          "createdAt": "2026-11-01T09:00:00.000Z", "updatedAt": "2026-11-01T09:00:00.000Z",
          "archived": False}
STATUS = {"channel": "EMAIL", "source": "Public API", "status": "UNSUBSCRIBED",
          "subscriberIdString": "a@example.com", "subscriptionId": 11,
          "timestamp": "2026-10-01T00:00:00Z"}
BATCH = {"status": "COMPLETE", "startedAt": "2026-11-01T09:00:00Z",
         "completedAt": "2026-11-01T09:00:01Z"}
STATUSES = "/communication-preferences/v4/statuses/batch/read"
DRIFT = [
    (_exchange("POST", STATUSES, {"inputs": ["a@example.com"]}, 200,
               {**BATCH, "results": [{"subscriberIdString": "a@example.com",
                                      "statuses": [{**STATUS, "status": "NOT_SUBSCRIBED"}]}]},
               {"channel": ["EMAIL"]}),
     "one of ('SUBSCRIBED', 'UNSUBSCRIBED', 'NOT_SPECIFIED') expected, got 'NOT_SUBSCRIBED'"),
    (_exchange("POST", STATUSES, {"inputs": ["a@example.com"]}, 200,
               {"status": "COMPLETE", "results": []}, {"channel": ["EMAIL"]}),
     "missing 'startedAt'"),
    (_exchange("POST", "/crm/v3/objects/contacts/batch/read",
               {"inputs": [{"id": "1"}], "properties": ["email"], "propertiesWithHistory": []},
               200, {**BATCH, "results": [{**RECORD, "hs_email": "x"}]}),
     "undocumented field 'hs_email'"),
    (_exchange("POST", "/crm/v3/objects/contacts/batch/read",
               {"inputs": [{"id": "1"}], "properties": ["email"], "propertiesWithHistory": []},
               200, {**BATCH, "results": [{**RECORD, "properties": {"age": 41}}]}),
     "string expected, got 41"),
    (_exchange("POST", "/crm/v3/objects/tasks/batch/create",
               {"inputs": [{"properties": {}}] * 101}, 400,
               {"message": "too many", "correlationId": "c", "category": "VALIDATION_ERROR"}),
     "at most 100 items, got 101"),
    (_exchange("POST", "/crm/v3/objects/contacts/search",
               {"filterGroups": [], "sorts": ["lastmodifieddate"], "properties": [], "limit": 10},
               200, {"total": 0, "results": []}),
     "object expected, got 'lastmodifieddate'"),
    (_exchange("POST", "/crm/v4/associations/deals/contacts/batch/read",
               {"inputs": [{"id": "1", "after": "x"}]}, 200,
               {**BATCH, "results": [{"from": {"id": "1"}, "to": [],
                                      "paging": {"next": {"link": "?after=x"}}}]}),
     "missing 'after'"),
    (_exchange("DELETE", "/crm/v3/objects/contacts/1", None, 204, None),
     "not an operation the connector relies on"),
]


@pytest.mark.parametrize("exchange, problem", DRIFT, ids=[
    "v3-status-word", "batch-answer-without-timing", "undocumented-record-field",
    "property-value-not-text", "batch-over-100", "sort-as-text", "paging-without-after",
    "unknown-operation"])
def test_the_check_catches_drift_from_the_documented_shapes(exchange, problem):
    found = shapes.check([exchange])
    assert any(problem in line for line in found), found


def test_a_lost_answer_is_checked_for_its_request_only():
    body = {"inputs": [{"properties": {"hs_task_subject": "s"}}]}
    lost = _exchange("POST", "/crm/v3/objects/tasks/batch/create", body, None, None)
    assert shapes.check([lost]) == []
    assert shapes.check([_exchange("POST", "/crm/v3/objects/tasks/batch/create",
                                   {"inputs": [{}]}, None, None)]) != []

