"""HubSpot through the guard: sync, stories, the webhook inbox, merges, flags and tasks."""

from __future__ import annotations

import json
import time

import pytest
import sqlalchemy as sa

from connectors.hubspot import parse_mapping, sign
from guard import create_app
from guard.crm.jobs import CrmJob
from guard.crm.sync import run_sync
from guard.crm.writeback import push_tasks, write_flags
from guard.store.tables import hook_inbox
from tests.connectors.hubspot.conftest import OWNERS, make_connector, portal  # noqa: F401
from tests.crm.conftest import check

SECRET = "app-client-secret"
HOOK_URL = "http://localhost/hooks/hubspot"


@pytest.fixture
def fake(portal_server):
    """The HubSpot fake under the name the shared ``portal`` fixture asks for."""
    return portal_server


@pytest.fixture
def connector(fake):
    connector = make_connector(fake, parse_mapping(OWNERS))
    connector.install()
    return connector


@pytest.fixture
def synced(fake, portal, connector, guard):  # noqa: F811
    ids = dict(portal)
    # Anna's colleague at Acme: no purchase, ticket or opt-out of his own.
    ids["carl"] = fake.add("contacts", {"email": "carl@acme.com", "lifecyclestage": "lead",
                                        "associatedcompanyid": portal["acme"]})
    summary, rejected = run_sync(guard, connector)
    assert (summary.stopped, rejected) == (None, [])
    return ids


STORIES = [
    ("anna", dict(channel="sms", purpose="price_offer", sender="oem", product="audi-a4"),
     "block", "purchase-cooldown"),
    ("anna", dict(channel="sms", purpose="trade_in", sender="sales"), "block",
     "replacement-cycle"),
    ("anna", dict(channel="call", purpose="promotion", sender="oem"), "block", "open-complaint"),
    ("anna", dict(channel="email", purpose="newsletter", sender="oem"), "block", "consent"),
    ("paul", dict(channel="email", purpose="service_reminder", sender="service"), "block",
     "consent"),
    ("carl", dict(channel="call", purpose="prospecting", sender="sales"), "reroute",
     "existing-customer"),
]


@pytest.mark.parametrize("who, attempt, verdict, rule", STORIES, ids=[
    "no-sale-on-the-car-just-bought", "no-trade-in-for-a-ten-year-driver",
    "no-marketing-during-an-open-ticket", "unsubscribed-from-offers", "unsubscribed-from-all",
    "no-cold-call-into-a-company-that-just-bought"])
def test_hubspot_data_alone_decides_the_stories(synced, guard, who, attempt, verdict, rule):
    got, rules = check(guard, {"hubspot": synced[who]}, **attempt)

    assert rule in rules
    assert got == verdict


def test_a_company_and_a_contact_with_the_same_id_stay_apart(fake, guard):
    fake.add("companies", {"name": "Seventy-Seven GmbH"}, id=77)
    fake.add("contacts", {"email": "loner@example.com", "lifecyclestage": "lead"}, id=77)
    colleague = fake.add("contacts", {"email": "staff@77.example", "associatedcompanyid": "77"})
    deal = fake.add("deals", {"dealname": "Fleet", "dealstage": "closedwon",
                              "closedate": "2026-11-02T10:00:00Z"})
    fake.associate("deals", deal, "companies", "77")

    run_sync(guard, make_connector(fake))

    prospect = dict(channel="call", purpose="prospecting", sender="sales")
    assert "existing-customer" in check(guard, {"hubspot": colleague}, **prospect)[1]
    assert "existing-customer" not in check(guard, {"hubspot": "77"}, **prospect)[1]


# -- webhooks -------------------------------------------------------------------------------


@pytest.fixture
def app(guard):
    return create_app({"GUARD": guard, "TESTING": True, "HUBSPOT_WEBHOOK_SECRET": SECRET})


def deliver(client, events, *, secret=SECRET, age=0.0, signed_url=HOOK_URL):
    body = json.dumps(events).encode()
    stamp = str(int((time.time() - age) * 1000))
    return client.post(HOOK_URL, data=body, content_type="application/json", headers={
        "X-HubSpot-Request-Timestamp": stamp,
        "X-HubSpot-Signature-v3": sign(secret, "POST", signed_url, body, stamp)})


def hook(kind, object_id, **extra):
    return {"eventId": 1, "subscriptionId": 9, "portalId": 123, "attemptNumber": 0,
            "occurredAt": int(time.time() * 1000), "subscriptionType": kind,
            "objectId": int(object_id), **extra}


def inbox(engine):
    with engine.connect() as conn:
        return conn.execute(sa.select(hook_inbox).order_by(hook_inbox.c.id)
                            ).mappings().all()


def one_cycle(app, connector):
    """Run the worker's HubSpot job once, with the scheduled sync not yet due."""
    job = CrmJob("hubspot", 300, lambda: connector)
    job.last_sync = job.clock()
    job(app)


def test_a_signed_delivery_is_stored_and_the_next_cycle_updates_the_person(
        synced, app, fake, connector, guard, engine):
    fake.update("contacts", synced["paul"], {"lifecyclestage": "customer",
                                            "guard_preferred_channel": "sms"})

    response = deliver(app.test_client(), [hook("contact.propertyChange", synced["paul"],
                                                 propertyName="guard_preferred_channel")])
    assert response.status_code == 204
    assert [row["processed_at"] for row in inbox(engine)] == [None]
    one_cycle(app, connector)

    person = guard.person(guard.resolve({"hubspot": synced["paul"]}))
    assert (person["profile"]["stage"], person["profile"]["preferred_channel"]) == (
        "customer", "sms")
    [row] = inbox(engine)
    assert row["processed_at"] is not None and row["error"] is None


@pytest.mark.parametrize("kwargs", [dict(secret="someone-else"), dict(age=600),
                                    dict(signed_url="https://elsewhere.example/hooks/hubspot")],
                         ids=["wrong-secret", "stale-timestamp", "signed-for-another-url"])
def test_a_badly_signed_delivery_is_refused_and_not_stored(app, engine, kwargs):
    response = deliver(app.test_client(), [hook("contact.creation", 501)], **kwargs)

    assert response.status_code == 401
    assert response.mimetype == "application/problem+json"
    assert "X-HubSpot-Signature-v3" in response.get_json()["detail"]
    assert inbox(engine) == []


def test_a_signed_delivery_that_is_not_a_list_is_a_400(app, engine):
    response = deliver(app.test_client(), {"objectId": 1})

    assert response.status_code == 400
    assert response.get_json()["detail"].startswith("body:")
    assert inbox(engine) == []


def test_without_a_secret_webhooks_say_what_to_configure(guard, engine, monkeypatch):
    for name in ("GUARD_HUBSPOT_WEBHOOK_SECRET", "GUARD_HUBSPOT_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    client = create_app({"GUARD": guard, "TESTING": True}).test_client()

    response = deliver(client, [hook("contact.creation", 501)])

    assert response.status_code == 503
    assert "GUARD_HUBSPOT_WEBHOOK_SECRET" in response.get_json()["detail"]
    assert inbox(engine) == []


def test_a_merge_in_hubspot_merges_the_people(fake, app, connector, guard):
    first = fake.add("contacts", {"email": "mia@example.com"})
    second = fake.add("contacts", {"email": "mia.work@example.com"})
    run_sync(guard, connector)
    assert guard.resolve({"hubspot": first}) != guard.resolve({"hubspot": second})

    deliver(app.test_client(), [hook("contact.merge", first, primaryObjectId=int(first),
                                     mergedObjectIds=[int(second)])])
    one_cycle(app, connector)

    assert guard.resolve({"hubspot": second}) == guard.resolve({"hubspot": first})
    assert guard.resolve("mia.work@example.com") == guard.resolve({"hubspot": first})


def test_retracting_records_the_store_never_saw_changes_nothing(synced, app, connector, guard,
                                                                engine):
    before = guard.person(guard.resolve({"hubspot": synced["anna"]}))["profile"]

    deliver(app.test_client(), [hook("deal.deletion", 9003), hook("ticket.deletion", 9004),
                                hook("contact.deletion", 9005)])
    one_cycle(app, connector)

    [row] = inbox(engine)
    assert row["processed_at"] is not None and row["error"] is None
    assert guard.person(guard.resolve({"hubspot": synced["anna"]}))["profile"] == before


def test_a_delivery_whose_fetch_fails_stays_for_the_next_cycle(synced, app, fake, connector,
                                                               engine):
    deliver(app.test_client(), [hook("contact.propertyChange", synced["paul"])])
    fake.throttle(50)  # HubSpot keeps answering 429 through every retry

    one_cycle(app, connector)
    [row] = inbox(engine)
    assert (row["processed_at"], row["attempts"]) == (None, 1)
    assert "429" in row["error"]
    fake.throttled.clear()
    one_cycle(app, connector)

    [row] = inbox(engine)
    assert row["processed_at"] is not None and row["attempts"] == 2


# -- write-back -----------------------------------------------------------------------------


def test_flags_reach_hubspot_once_and_tasks_go_to_the_mapped_owner(synced, fake, connector,
                                                                  guard):
    first = write_flags(guard, connector)
    second = write_flags(guard, connector)

    assert (first, second) == (3, 0)
    anna = fake.record("contacts", synced["anna"])["properties"]
    assert anna["guard_status"] == "Caution"
    assert "Open case: Rattling door" in anna["guard_flags"]

    decision = guard.check({"to": {"hubspot": synced["carl"]}, "channel": "call",
                            "purpose": "prospecting", "sender": "sales",
                            "at": "2026-11-23T10:00:00Z"})
    created = push_tasks(guard, connector)
    again = push_tasks(guard, connector)

    stored = guard.person(decision.person)["tasks"]
    assert (created, again) == (len(stored), 0) and created >= 1
    tasks = fake.objects["tasks"].values()
    owners = {t["properties"]["hs_task_body"].split("For: ")[1].split("\n")[0]:
              t["properties"].get("hubspot_owner_id") for t in tasks}
    assert owners["dealer:munich"] == "77", "dealer:munich is HubSpot owner 77 in the mapping"
    assert owners.get("oem", None) is None, "no HubSpot user is oem: the contact's owner takes it"
    assert all(synced["carl"] in fake.links[("tasks", "contacts")][t["id"]] for t in tasks)
    assert {t["status"] for t in stored} == {"done"}


def test_a_person_who_appears_in_hubspot_later_gets_their_flags(fake, connector, guard, clock):
    guard.ingest([{"type": "person", "source": {"system": "dms", "id": "C-1"},
                   "emails": ["zoe@example.com"]},
                  {"type": "case", "source": {"system": "dms", "id": "K-1"},
                   "person": {"email": "zoe@example.com"}, "status": "open",
                   "subject": "Scratched door"}])
    assert write_flags(guard, connector) == 0  # not in HubSpot yet
    clock.advance(hours=2)
    zoe = fake.add("contacts", {"email": "zoe@example.com"})
    run_sync(guard, connector)
    clock.advance(hours=2)

    assert write_flags(guard, connector) == 1
    assert fake.record("contacts", zoe)["properties"]["guard_flags"] == (
        "Open case: Scratched door")


def test_an_erased_person_is_marked_do_not_contact_in_hubspot_once(synced, fake, connector,
                                                                    guard, engine):
    from guard.store.tables import erasure_notices

    write_flags(guard, connector)
    result = guard.ingest([{"type": "erase", "source": {"system": "privacy", "id": "DSR-1"},
                            "person": {"hubspot": synced["anna"]}}])
    assert result["rejected"] == []

    assert write_flags(guard, connector) == 1
    anna = fake.record("contacts", synced["anna"])["properties"]
    assert anna["guard_status"] == "Do not contact"
    assert "right to erasure" in anna["guard_flags"]
    # Once the CRM has it, the guard keeps no record id of the erased person.
    with engine.connect() as conn:
        assert conn.execute(sa.select(erasure_notices)).all() == []
    assert write_flags(guard, connector) == 0
