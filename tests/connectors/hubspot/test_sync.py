"""Sync in: every object type becomes the right events, incrementally and without loss."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.base import MemoryBookmarks
from connectors.hubspot import (
    CredentialsError,
    OAuthTokens,
    build_client,
    default_retry,
    parse_mapping,
)
from connectors.hubspot.connector import HubSpotConnector
from tests.connectors.hubspot.conftest import OWNERS, by_source, make_connector, one, run


def test_contact_becomes_person_with_plugin_inputs(fake, portal):
    events, _ = run(make_connector(fake, parse_mapping(OWNERS)))
    anna = one(events, "contact", portal["anna"])
    assert anna == {
        "type": "person",
        "source": {"system": "hubspot", "type": "contact", "id": portal["anna"]},
        "crm_ids": {"hubspot": portal["anna"]},
        "emails": ["Anna@Example.com"],
        "phones": ["+49 89 1234567"],
        "name": "Anna Berg",
        "account": {"system": "hubspot", "type": "company", "id": portal["acme"]},
        "stage": "customer",
        "owner": "dealer:munich",
        "replacement_cycle_years": 10,
        "preferred_channel": "sms",
        "contact_hours": "09:00-18:00",
        "do_not_market_until": "2027-03-01",
        "timezone": "Europe/Berlin",
    }
    paul = one(events, "contact", portal["paul"])
    assert paul["stage"] == "prospect" and "owner" not in paul


def test_unmapped_owner_is_named_by_hubspot_id(connector, portal):
    events, _ = run(connector)
    assert one(events, "contact", portal["anna"])["owner"] == "hubspot-owner:77"
    assert one(events, "company", portal["acme"])["owner"] == "hubspot-owner:77"


def test_won_deal_becomes_a_purchase_per_line_item(fake, portal):
    events, _ = run(make_connector(fake, parse_mapping(OWNERS)))
    car = one(events, "line_item", portal["item"])
    assert car == {
        "type": "purchase",
        "source": {"system": "hubspot", "type": "line_item", "id": portal["item"]},
        "product": "audi-a4",  # the product's SKU: the line item has none of its own
        "at": "2026-11-21T10:00:00Z",
        "amount": 42000.5,
        "currency": "EUR",
        "person": {"hubspot": portal["anna"]},
        "account": {"system": "hubspot", "type": "company", "id": portal["acme"]},
    }
    assert one(events, "line_item", portal["mats"])["product"] == "mats-a4"


def test_deal_that_is_not_won_retracts_its_purchases(connector, portal):
    events, _ = run(connector)
    assert one(events, "line_item", portal["open_item"]) == {
        "type": "purchase",
        "source": {"system": "hubspot", "type": "line_item", "id": portal["open_item"]},
        "deleted": True,
    }
    assert one(events, "deal", portal["open_deal"])["deleted"] is True


def test_tickets_become_cases_open_or_closed_by_pipeline_stage(connector, portal):
    events, _ = run(connector)
    ticket = one(events, "ticket", portal["ticket"])
    assert ticket["status"] == "open"
    assert ticket["subject"] == "Rattling door"
    assert ticket["person"] == {"hubspot": portal["anna"]}
    assert ticket["owner"] == "hubspot-owner:78"
    assert one(events, "ticket", portal["closed_ticket"])["status"] == "closed"


def test_outbound_engagements_become_touches(fake, portal):
    events, _ = run(make_connector(fake, parse_mapping(OWNERS)))
    email = one(events, "email", portal["email_out"])
    assert email["channel"] == "email" and email["at"] == "2026-11-20T08:00:00Z"
    assert email["person"] == {"hubspot": portal["anna"]} and email["sender"] == "sales"
    call = one(events, "call", portal["call"])
    assert call["channel"] == "call" and call["sender"] == "dealer:munich"
    assert by_source(events, "email", portal["email_in"]) == []  # inbound: not our contact
    meeting = portal["meeting"]
    assert {e["person"]["hubspot"] for e in events if e["source"]["type"] == "meeting"} == {
        portal["anna"],
        portal["paul"],
    }
    assert one(events, "meeting", f"{meeting}:{portal['paul']}")["channel"] == "call"


def test_subscription_statuses_become_consents(fake, portal):
    events, _ = run(make_connector(fake, parse_mapping(OWNERS)))
    anna = portal["anna"]
    offers = one(events, "subscription", f"{anna}:sub:11")
    assert offers["person"] == {"hubspot": anna}
    assert (offers["channel"], offers["purpose"], offers["status"]) == (
        "email",
        "marketing",
        "opt_out",
    )
    service = one(events, "subscription", f"{anna}:sub:12")
    assert (service["purpose"], service["status"]) == ("*", "opt_in")
    assert one(events, "subscription", f"{anna}:sub:13")["deleted"] is True
    paul_all = one(events, "subscription", f"{portal['paul']}:sub:all")
    assert (paul_all["purpose"], paul_all["status"]) == ("*", "opt_out")


def test_a_status_word_the_v4_api_does_not_use_changes_no_consent(fake, portal):
    # The v3 API's NOT_SUBSCRIBED is no v4 word; guessing could retract an opt-out.
    anna = portal["anna"]
    fake.statuses["anna@example.com"][0]["status"] = "NOT_SUBSCRIBED"
    events, _ = run(make_connector(fake, parse_mapping(OWNERS)))
    assert by_source(events, "subscription", f"{anna}:sub:11") == []
    assert one(events, "subscription", f"{anna}:sub:12")["status"] == "opt_in"
    fake.exchanges.clear()  # the answer broke the documented enum on purpose


def test_a_deal_with_more_line_items_and_contacts_than_one_page_loses_none(fake):
    # HubSpot pages associations per object; the rest of a deal's comes with "after".
    fake.association_page = 3
    deal = fake.add("deals", {"dealname": "Fleet of 8", "dealstage": "closedwon",
                              "closedate": "2026-11-21T10:00:00Z"})
    items = [fake.add("line_items", {"name": f"Car {n}", "hs_sku": f"car-{n}"}) for n in range(8)]
    buyers = [fake.add("contacts", {"email": f"buyer{n}@example.com"}) for n in range(5)]
    for item in items:
        fake.associate("deals", deal, "line_items", item)
    for buyer in buyers:
        fake.associate("deals", deal, "contacts", buyer)
    connector = make_connector(fake)
    connector.streams = [s for s in connector.streams if s.name == "deals"]
    events, _ = run(connector)
    purchases = [e for e in events if e["type"] == "purchase" and not e.get("deleted")]
    assert sorted(e["source"]["id"] for e in purchases) == sorted(items)
    assert {e["person"]["hubspot"] for e in purchases} == {buyers[0]}
    assert fake.calls("POST", "/associations/deals/line_items/batch/read") == 3


def test_second_run_reads_only_what_changed(fake, connector, portal):
    _, bookmarks = run(connector)
    fake.advance(3600)
    fake.update("contacts", portal["paul"], {"lifecyclestage": "opportunity"})
    events, _ = run(make_connector(fake), bookmarks)
    people = [e for e in events if e["type"] == "person"]
    assert [p["source"]["id"] for p in people] == [portal["paul"]]
    assert people[0]["stage"] == "opportunity"
    assert not [e for e in events if e["type"] in ("purchase", "case", "touch", "account")]


def test_lookback_rereads_changes_the_search_index_had_not_caught_up_with(fake, portal):
    # The run happens a minute after the last change; a record changed 30
    # seconds before that change was not searchable yet when the run read.
    fake_now = datetime.fromtimestamp(fake.now_ms / 1000, UTC)
    clock = lambda: fake_now + timedelta(minutes=1)  # noqa: E731
    _, bookmarks = run(make_connector(fake, clock=clock))
    late = fake.add("contacts", {"email": "late@example.com"},
                    modified=(fake_now - timedelta(seconds=30)).isoformat())  # fmt: skip
    events, _ = run(make_connector(fake, clock=clock), bookmarks)
    assert one(events, "contact", late)["emails"] == ["late@example.com"]


def test_archived_records_become_retractions_once(fake, connector, portal):
    _, bookmarks = run(connector)
    fake.advance(3600)
    fake.archive("contacts", portal["paul"])
    fake.archive("line_items", portal["mats"])
    events, bookmarks = run(make_connector(fake), bookmarks)
    assert one(events, "contact", portal["paul"]) == {
        "type": "person",
        "source": {"system": "hubspot", "type": "contact", "id": portal["paul"]},
        "deleted": True,
    }
    assert one(events, "line_item", portal["mats"])["deleted"] is True
    fake.advance(3600)
    again, _ = run(make_connector(fake), bookmarks)
    assert by_source(again, "contact", portal["paul"]) == []


def test_crash_mid_sync_loses_nothing(fake, portal):
    bookmarks = MemoryBookmarks()
    first = make_connector(fake).sync(bookmarks)
    batch = next(first)  # companies, stored and bookmarked
    bookmarks.save(batch.stream, batch.bookmark)
    next(first)  # the next batch is read but the process dies before storing it
    first.close()
    events, _ = run(make_connector(fake), bookmarks)
    assert one(events, "contact", portal["anna"])
    assert one(events, "line_item", portal["item"])


def test_custom_properties_and_custom_purchase_object(fake):
    mapping = parse_mapping(
        {
            "contact": {
                "fields": {"replacement_cycle_years": ["keeps_cars_years"]},
                "dealer_property": "dealer_id",
            },
            "objects": [
                {
                    "object_type": "p_vehicle_sale",
                    "event": "purchase",
                    "fields": {"product": "model_code", "at": "sale_date", "amount": "price"},
                }
            ],
        }
    )
    driver = fake.add("contacts", {"email": "d@example.com", "keeps_cars_years": "10",
                                   "dealer_id": "munich", "hubspot_owner_id": "5"})  # fmt: skip
    sale = fake.add("p_vehicle_sale", {"model_code": "vw-golf", "sale_date": "1700000000000",
                                       "price": "30000"})  # fmt: skip
    fake.associate("p_vehicle_sale", sale, "contacts", driver)
    events, _ = run(make_connector(fake, mapping))
    person = one(events, "contact", driver)
    assert person["replacement_cycle_years"] == 10
    assert person["owner"] == "dealer:munich"
    assert one(events, "p_vehicle_sale", sale) == {
        "type": "purchase",
        "source": {"system": "hubspot", "type": "p_vehicle_sale", "id": sale},
        "product": "vw-golf",
        "at": "2023-11-14T22:13:20Z",
        "amount": 30000,
        "person": {"hubspot": driver},
    }


def _bulk(fake, count, modified, start_id):
    for n in range(count):
        fake.add("contacts", {"email": f"c{n}@example.com"}, id=start_id + n, modified=modified)


def test_more_records_with_one_timestamp_than_the_search_limit(fake):
    # An import touched 10,050 contacts in the same millisecond; with the real
    # limit of 10,000 per query the read must neither loop nor skip any.
    _bulk(fake, 10_050, "2026-11-01T09:00:00Z", start_id=1)
    later = fake.add("contacts", {"email": "later@example.com"}, id=20_000,
                     modified="2026-11-01T10:00:00Z")  # fmt: skip
    connector = make_connector(fake)
    connector.streams = [s for s in connector.streams if s.name == "contacts"]
    seen = []
    for batch in connector.sync(MemoryBookmarks()):
        seen += [e["source"]["id"] for e in batch.events if e["type"] == "person"]
    assert connector.summary.stopped is None
    assert set(seen) == {str(i) for i in range(1, 10_051)} | {later}
    assert fake.calls("POST", "/contacts/search") < 120


def test_search_limit_restarts_from_the_last_timestamp(fake):
    # Ids 1..99 sort before 100..199 only as numbers; the fake orders ties as text.
    for n in range(1, 200):
        fake.add("contacts", {"email": f"c{n}@example.com"}, id=n,
                 modified=f"2026-11-01T09:{n // 10:02d}:00Z")  # fmt: skip
    for n in range(200, 260):
        fake.add("contacts", {"email": f"c{n}@example.com"}, id=n,
                 modified="2026-11-01T10:00:00Z")  # fmt: skip
    fake.search_limit = 50
    connector = make_connector(fake, page_size=20, search_limit=50)
    connector.streams = [s for s in connector.streams if s.name == "contacts"]
    seen = set()
    for batch in connector.sync(MemoryBookmarks()):
        seen |= {e["source"]["id"] for e in batch.events if e["type"] == "person"}
    assert connector.summary.stopped is None
    assert seen == {str(n) for n in range(1, 260)}


@pytest.mark.parametrize("retry_after", ["1", None], ids=["retry-after", "no-retry-after"])
def test_rate_limit_bursts_on_search_are_retried(fake, portal, retry_after):
    fake.throttle(3, retry_after=retry_after)
    events, _ = run(make_connector(fake))
    assert one(events, "contact", portal["anna"])
    assert fake.calls("POST", "/search") >= 4


def test_rate_limit_that_outlasts_the_retries_stops_the_run_cleanly(fake, portal):
    connector = make_connector(fake)
    bookmarks = MemoryBookmarks()
    fake.throttle(1000)
    batches = list(connector.sync(bookmarks))
    assert batches == []
    assert "HTTP 429" in connector.summary.stopped
    fake.throttled.clear()
    events, _ = run(make_connector(fake), bookmarks)
    assert one(events, "contact", portal["anna"])


def test_oauth_token_is_refreshed_before_it_expires(fake, portal):
    fake.refresh_tokens["refresh-1"] = 1800
    now = [datetime(2026, 11, 23, 10, 0, tzinfo=UTC)]
    tokens = OAuthTokens("client", "secret", "refresh-1", clock=lambda: now[0])
    client = build_client(None, host=fake.url, retry=default_retry(backoff_factor=0.01))
    connector = HubSpotConnector(client, tokens=tokens, clock=lambda: now[0])
    connector.streams = connector.streams[:1]
    run(connector)
    assert fake.issued == 1
    now[0] += timedelta(minutes=20)  # still 10 minutes left: no refresh
    run(connector)
    assert fake.issued == 1
    now[0] += timedelta(minutes=6)  # within five minutes of expiry: refresh first
    run(connector)
    assert fake.issued == 2
    assert fake.calls("POST", "/oauth/v1/token") == 2


def test_private_app_token_from_environment(fake, portal):
    connector = HubSpotConnector.from_env(
        {"GUARD_HUBSPOT_TOKEN": "pat-test", "GUARD_HUBSPOT_URL": fake.url}
    )
    connector.streams = connector.streams[:2]
    events, _ = run(connector)
    assert one(events, "contact", portal["anna"])


def test_missing_credentials_name_the_settings():
    with pytest.raises(CredentialsError, match="GUARD_HUBSPOT_TOKEN"):
        HubSpotConnector.from_env({"GUARD_HUBSPOT_CLIENT_ID": "only-this"})
