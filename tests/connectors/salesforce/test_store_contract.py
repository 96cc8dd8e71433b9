"""Salesforce data alone, synced into the guard's store, decides the stories of SPEC §1."""

from __future__ import annotations

import pytest

from connectors.base import MemoryBookmarks
from tests.connectors.salesforce.conftest import make_connector
from tests.connectors.salesforce.org import build_dealer_org

crm = pytest.importorskip("guard.crm.sync", reason="the guard's CRM runner")
events_module = pytest.importorskip("guard.ingest.events", reason="the guard's event validator")


@pytest.fixture
def synced(fake, guard):
    ids = build_dealer_org(fake)
    fake.advance(minutes=5)
    connector = make_connector(fake)
    summary, rejected = crm.run_sync(guard, connector)
    assert rejected == []
    assert summary.stopped is None
    return ids


def test_every_event_passes_the_store_validation(fake, policy):
    ids = build_dealer_org(fake)
    fake.advance(minutes=5)
    connector = make_connector(fake)
    bookmarks = MemoryBookmarks()
    events = []

    def sync() -> None:
        for batch in connector.sync(bookmarks):
            events.extend(batch.events)
            bookmarks.save(batch.stream, batch.bookmark)

    sync()
    fake.delete(ids["case"])
    fake.update(ids["lead"], IsConverted=True)
    fake.advance(minutes=1)
    sync()

    assert {event["type"] for event in events} >= {"person", "account", "purchase", "contract",
                                                   "consent", "case", "touch"}
    assert any(event.get("deleted") for event in events)
    for event in events:
        events_module.parse_event(event, policy)


def check(guard, to, **attempt):
    body = {"to": {"salesforce": to}, "at": "2026-11-23T10:00:00Z", "commit": False, **attempt}
    decision = guard.check(body, commit=False)
    return decision.verdict, {reason.rule for reason in decision.reasons}


def test_no_sale_on_the_car_just_bought(synced, guard):
    verdict, rules = check(guard, synced["anna"], channel="email", purpose="price_offer",
                           sender="oem", product="audi-a4")
    assert verdict == "block"
    assert "purchase-cooldown" in rules


def test_no_trade_in_pitch_for_a_ten_year_driver(synced, guard):
    verdict, rules = check(guard, synced["anna"], channel="email", purpose="trade_in",
                           sender="sales")
    assert verdict == "block"
    assert "replacement-cycle" in rules


def test_no_cold_call_into_a_company_under_contract(synced, guard):
    verdict, rules = check(guard, synced["ben"], channel="call", purpose="prospecting",
                           sender="sales")
    assert verdict in ("block", "reroute")
    assert "existing-customer" in rules


def test_salesforce_opt_outs_are_honoured(synced, guard):
    email = check(guard, synced["ben"], channel="email", purpose="newsletter", sender="oem")
    call = check(guard, synced["anna"], channel="call", purpose="service_reminder",
                 sender="service")

    assert email[0] == call[0] == "block"
    assert "consent" in email[1] & call[1]
