"""Fixtures: a fake HubSpot on 127.0.0.1 and a connector whose real client talks to it."""

from __future__ import annotations

import pytest

from connectors.base import MemoryBookmarks
from connectors.hubspot import HubSpotConnector, Pacer, build_client, default_retry
from tests.conftest import NOW
from tests.connectors.hubspot import shapes
from tests.connectors.hubspot.fake import FakeHubSpot

TOKEN = "pat-test"


def serve_checked():
    """Serve a fake HubSpot; afterwards, every exchange must match HubSpot's documented shapes."""
    server = FakeHubSpot(token=TOKEN)
    server.start()
    yield server
    server.stop()
    problems = shapes.check(server.exchanges)
    assert not problems, "\n".join(problems[:20])


@pytest.fixture
def fake():
    yield from serve_checked()


def make_connector(fake: FakeHubSpot, mapping=None, **kwargs) -> HubSpotConnector:
    """Build a connector against the fake, with quick retries and pacing out of the way."""
    client = build_client(TOKEN, host=fake.url, retry=default_retry(backoff_factor=0.01))
    kwargs.setdefault("pacer", Pacer(100_000, 1.0))
    kwargs.setdefault("search_pacer", Pacer(100_000, 1.0))
    kwargs.setdefault("clock", lambda: NOW)
    return HubSpotConnector(client, mapping, **kwargs)


@pytest.fixture
def connector(fake):
    return make_connector(fake)


def run(connector, bookmarks=None):
    """Sync everything, saving each bookmark after its batch as the guard does."""
    bookmarks = bookmarks if bookmarks is not None else MemoryBookmarks()
    events = []
    for batch in connector.sync(bookmarks):
        events += batch.events
        bookmarks.save(batch.stream, batch.bookmark)
    return events, bookmarks


def by_source(events, record_type, record_id):
    return [e for e in events if e["source"] == {"system": "hubspot", "type": record_type,
                                                  "id": str(record_id)}]  # fmt: skip


def one(events, record_type, record_id):
    found = by_source(events, record_type, record_id)
    assert len(found) == 1, found
    return found[0]


@pytest.fixture
def portal(fake):
    """A small dealer portal: a customer who bought a car, a prospect, a company."""
    return seed_portal(fake)


def seed_portal(fake) -> dict[str, str]:
    """Fill ``fake`` with the small dealer portal; return the record ids by name."""
    ids = {}
    ids["acme"] = fake.add("companies", {"name": "Acme", "domain": "acme.com",
                                         "hubspot_owner_id": "77"})  # fmt: skip
    ids["anna"] = fake.add(
        "contacts",
        {
            "email": "Anna@Example.com",
            "firstname": "Anna",
            "lastname": "Berg",
            "phone": "+49 89 1234567",
            "lifecyclestage": "customer",
            "hubspot_owner_id": "77",
            "associatedcompanyid": ids["acme"],
            "guard_replacement_cycle_years": "10",
            "guard_preferred_channel": "SMS",
            "guard_contact_hours": "09:00-18:00",
            "guard_do_not_market_until": "2027-03-01",
            "hs_timezone": "europe_slash_berlin",
        },
    )
    ids["paul"] = fake.add("contacts", {"email": "paul@example.com", "lifecyclestage": "lead"})
    ids["won"] = fake.add("deals", {"dealname": "Anna's A4", "dealstage": "closedwon",
                                    "closedate": "2026-11-21T10:00:00Z",
                                    "deal_currency_code": "EUR"})  # fmt: skip
    ids["product"] = fake.add("products", {"name": "Audi A4 Avant", "hs_sku": "audi-a4"})
    ids["item"] = fake.add("line_items", {"name": "Audi A4 Avant", "hs_product_id": ids["product"],
                                          "amount": "42000.50"})  # fmt: skip
    ids["mats"] = fake.add("line_items", {"name": "Floor mats", "hs_sku": "mats-a4"})
    for item in ("item", "mats"):
        fake.associate("deals", ids["won"], "line_items", ids[item])
    fake.associate("deals", ids["won"], "contacts", ids["anna"])
    fake.associate("deals", ids["won"], "companies", ids["acme"])
    ids["open_deal"] = fake.add(
        "deals", {"dealname": "Paul's Q5", "dealstage": "appointmentscheduled"}
    )
    ids["open_item"] = fake.add("line_items", {"name": "Audi Q5", "hs_sku": "audi-q5"})
    fake.associate("deals", ids["open_deal"], "line_items", ids["open_item"])
    ids["ticket"] = fake.add("tickets", {"subject": "Rattling door", "hs_pipeline_stage": "1",
                                         "hubspot_owner_id": "78"})  # fmt: skip
    ids["closed_ticket"] = fake.add("tickets", {"subject": "Old", "hs_pipeline_stage": "4"})
    for ticket in ("ticket", "closed_ticket"):
        fake.associate("tickets", ids[ticket], "contacts", ids["anna"])
    ids["email_out"] = fake.add("emails", {"hs_email_direction": "EMAIL",
                                           "hs_timestamp": "2026-11-20T08:00:00Z"})  # fmt: skip
    ids["email_in"] = fake.add("emails", {"hs_email_direction": "INCOMING_EMAIL",
                                          "hs_timestamp": "2026-11-20T09:00:00Z"})  # fmt: skip
    ids["call"] = fake.add("calls", {"hs_call_direction": "OUTBOUND", "hubspot_owner_id": "77",
                                     "hs_timestamp": "2026-11-19T08:00:00Z"})  # fmt: skip
    ids["meeting"] = fake.add("meetings", {"hs_timestamp": "2026-11-18T08:00:00Z"})
    for kind in ("email_out", "email_in", "call", "meeting"):
        fake.associate(kind.split("_")[0] + "s", ids[kind], "contacts", ids["anna"])
    fake.associate("meetings", ids["meeting"], "contacts", ids["paul"])
    fake.statuses["anna@example.com"] = [
        {"channel": "EMAIL", "subscriptionId": 11, "subscriptionName": "Offers",
         "status": "UNSUBSCRIBED", "source": "Self-service resubscription",
         "timestamp": "2026-10-01T00:00:00Z"},
        {"channel": "EMAIL", "subscriptionId": 12, "subscriptionName": "Service",
         "status": "SUBSCRIBED", "source": "Public API", "timestamp": "2026-10-01T00:00:00Z"},
        {"channel": "EMAIL", "subscriptionId": 13, "status": "NOT_SPECIFIED",
         "source": "Unknown", "timestamp": "2026-10-01T00:00:00Z"},
    ]  # fmt: skip
    fake.wide_statuses["paul@example.com"] = [
        {"channel": "EMAIL", "wideStatusType": "PORTAL_WIDE", "status": "UNSUBSCRIBED",
         "timestamp": "2026-09-01T00:00:00Z"},
    ]  # fmt: skip
    return ids


OWNERS = {"owners": {"77": "dealer:munich"}, "subscriptions": {"11": "marketing"}}
