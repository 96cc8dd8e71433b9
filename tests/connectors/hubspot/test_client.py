"""The API wrapper: API clients reused per token, association reads in HubSpot's largest batches."""

from __future__ import annotations

import pytest

from connectors.hubspot import ApiError
from tests.connectors.hubspot import shapes
from tests.connectors.hubspot.conftest import TOKEN, make_connector


def test_api_clients_are_built_once_per_access_token(fake):
    api = make_connector(fake).api
    search = api._api("crm.objects.search_api")
    assert api._api("crm.objects.search_api") is search
    assert api._api("crm.objects.batch_api") is not search
    # A refreshed token gets clients that send it, not the old one.
    api.client.access_token = "pat-rotated"
    rotated = api._api("crm.objects.search_api")
    assert rotated is not search
    assert rotated.api_client.configuration.access_token == "pat-rotated"
    assert search.api_client.configuration.access_token == TOKEN


def test_associations_are_read_a_thousand_ids_per_call(fake):
    contact = fake.add("contacts", {"email": "anna@example.com"})
    deals = [fake.add("deals", {"dealname": f"Deal {n}"}) for n in range(1_500)]
    for deal in deals[::2]:
        fake.associate("deals", deal, "contacts", contact)
    api = make_connector(fake).api
    found = api.associations("deals", "contacts", deals)
    assert found == {deal: [contact] for deal in deals[::2]}
    assert fake.calls("POST", "/associations/deals/contacts/batch/read") == 2


def test_each_objects_association_pages_are_followed_with_its_after(fake):
    fake.association_page = 2
    contact = fake.add("contacts", {"email": "anna@example.com"})
    other = fake.add("contacts", {"email": "paul@example.com"})
    tasks = [fake.add("tasks", {"hs_task_subject": f"T{n}"}) for n in range(5)]
    for task in tasks:
        fake.associate("contacts", contact, "tasks", task)
    fake.associate("contacts", other, "tasks", tasks[0])
    api = make_connector(fake).api
    assert api.associations("contacts", "tasks", [contact, other]) == {
        contact: tasks, other: [tasks[0]]}
    follow_ups = [e.body["inputs"] for e in fake.exchanges[1:]]
    assert [[set(i) for i in inputs] for inputs in follow_ups] == [[{"id", "after"}]] * 2
    assert all(i["id"] == contact for inputs in follow_ups for i in inputs)


def test_the_fake_refuses_association_reads_beyond_hubspots_limit(fake):
    api = make_connector(fake).api
    with pytest.raises(ApiError, match="1000"):
        api._call("read associations", api._api("crm.associations.v4.batch_api").get_page,
                  "deals", "contacts", {"inputs": [{"id": str(n)} for n in range(1_001)]})
    # The request broke HubSpot's documented limit on purpose; the conformance check knows.
    [exchange] = fake.exchanges
    assert "at most 1000 items" in " ".join(shapes.check([exchange]))
    fake.exchanges.clear()


def test_the_fake_answers_a_search_with_what_changed_since_its_last_page(fake):
    # The fake keeps each query's sorted answer between pages, until a record changes.
    ids = [fake.add("contacts", {"email": f"c{n}@example.com"}) for n in range(5)]
    api = make_connector(fake).api
    body = {"filterGroups": [{"filters": [{"propertyName": "email", "operator": "HAS_PROPERTY"}]}],
            "sorts": [{"propertyName": "hs_object_id", "direction": "DESCENDING"}],
            "properties": ["email"], "limit": 2}
    first = api.search("contacts", body)
    assert [r["id"] for r in first["results"]] == ids[::-1][:2]
    fake.update("contacts", ids[2], {"email": None})
    fake.archive("contacts", ids[1])
    added = fake.add("contacts", {"email": "new@example.com"})
    second = api.search("contacts", {**body, "after": "0", "limit": 10})
    assert [r["id"] for r in second["results"]] == [added, ids[4], ids[3], ids[0]]
