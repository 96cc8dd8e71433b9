"""Webhooks: v3 signatures, and payloads turned into events within the request."""

from __future__ import annotations

import json

import pytest

from connectors.hubspot import sign, verify_signature, webhook_events
from connectors.hubspot.webhooks import parse_payload

SECRET = "app-client-secret"
URI = "https://guard.example.com/hooks/hubspot"
NOW = 1_790_000_000.0  # epoch seconds
STAMP = str(int(NOW * 1000))
BODY = b'[{"eventId":1,"subscriptionType":"contact.propertyChange","objectId":501}]'


def test_correctly_signed_request_passes():
    signature = sign(SECRET, "POST", URI, BODY, STAMP)
    assert verify_signature(SECRET, "POST", URI, BODY, STAMP, signature, now=NOW)


def test_signature_matches_hubspots_documented_recipe():
    # HMAC-SHA256 over method + URI + body + timestamp, base64 — computed by
    # the official client's own helper, independently of ours.
    from hubspot.utils.signature import Signature

    expected = Signature.get_signature(SECRET, BODY.decode(), "v3", URI, "POST", STAMP)
    assert verify_signature(SECRET, "POST", URI, BODY, STAMP, expected, now=NOW)


@pytest.mark.parametrize(
    "secret, method, uri, body, stamp, now",
    [
        ("other-secret", "POST", URI, BODY, STAMP, NOW),
        (SECRET, "GET", URI, BODY, STAMP, NOW),
        (SECRET, "POST", URI + "?x=1", BODY, STAMP, NOW),
        (SECRET, "POST", URI, BODY.replace(b"501", b"502"), STAMP, NOW),
        (SECRET, "POST", URI, BODY, str(int(STAMP) + 1), NOW),
        (SECRET, "POST", URI, BODY, STAMP, NOW + 301),
        (SECRET, "POST", URI, BODY, STAMP, NOW - 301),
        (SECRET, "POST", URI, BODY, "not-a-number", NOW),
        (SECRET, "POST", URI, BODY, "", NOW),
    ],
    ids=[
        "wrong-secret",
        "wrong-method",
        "wrong-uri",
        "tampered-body",
        "tampered-timestamp",
        "stale-over-5-minutes",
        "from-the-future",
        "garbage-timestamp",
        "missing-timestamp",
    ],
)
def test_wrongly_signed_or_stale_requests_fail(secret, method, uri, body, stamp, now):
    signature = sign(SECRET, "POST", URI, BODY, STAMP)
    assert not verify_signature(secret, method, uri, body, stamp, signature, now=now)


def test_four_minutes_old_is_still_accepted():
    signature = sign(SECRET, "POST", URI, BODY, STAMP)
    assert verify_signature(SECRET, "POST", URI, BODY, STAMP, signature, now=NOW + 240)


def test_uri_is_signed_with_reserved_characters_decoded():
    encoded = URI + "?portal=a%3Ab%2Cc"
    signature = sign(SECRET, "POST", URI + "?portal=a:b,c", BODY, STAMP)
    assert verify_signature(SECRET, "POST", encoded, BODY, STAMP, signature, now=NOW)


def test_empty_signature_fails():
    assert not verify_signature(SECRET, "POST", URI, BODY, STAMP, "", now=NOW)


def hook(kind, object_id, **extra):
    return {
        "eventId": object_id,
        "subscriptionId": 9,
        "portalId": 123,
        "occurredAt": 1_790_000_000_000,
        "subscriptionType": kind,
        "attemptNumber": 0,
        "objectId": int(object_id),
        **extra,
    }


def test_property_change_fetches_the_contact_into_a_person_event(fake, connector):
    anna = fake.add("contacts", {"email": "anna@example.com", "lifecyclestage": "customer",
                                 "guard_preferred_channel": "sms"})  # fmt: skip
    events = webhook_events(
        connector,
        [
            hook(
                "contact.propertyChange",
                anna,
                propertyName="guard_preferred_channel",
                propertyValue="sms",
            )
        ],  # fmt: skip
    )
    person = [e for e in events if e["type"] == "person"]
    assert person == [
        {
            "type": "person",
            "source": {"system": "hubspot", "type": "contact", "id": anna},
            "crm_ids": {"hubspot": anna},
            "emails": ["anna@example.com"],
            "stage": "customer",
            "preferred_channel": "sms",
        }
    ]


def test_our_own_output_changes_are_echoes_and_fetch_nothing(fake, connector):
    anna = fake.add("contacts", {"email": "anna@example.com"})
    payload = [
        hook("contact.propertyChange", anna, propertyName=name, propertyValue="x")
        for name in ("guard_status", "guard_flags", "guard_updated")
    ]
    assert connector.webhook_events(payload) == []
    assert fake.log == []


def test_deletion_retracts_and_privacy_deletion_erases(fake, connector):
    events = connector.webhook_events(
        [
            hook("contact.deletion", "501"),
            hook("contact.privacyDeletion", "502"),
            hook("deal.deletion", "77"),
            hook("ticket.deletion", "88"),
        ]
    )
    assert events == [
        {"type": "person", "source": {"system": "hubspot", "type": "contact", "id": "501"},
         "deleted": True},
        {"type": "purchase", "source": {"system": "hubspot", "type": "deal", "id": "77"},
         "deleted": True},
        {"type": "case", "source": {"system": "hubspot", "type": "ticket", "id": "88"},
         "deleted": True},
        {"type": "erase", "source": {"system": "hubspot", "type": "contact", "id": "502"},
         "person": {"hubspot": "502"}},
    ]  # fmt: skip


def test_merge_carries_every_merged_id_so_the_store_links_them(fake, connector):
    primary = fake.add("contacts", {"email": "anna@example.com"})
    events = connector.webhook_events(
        [
            hook(
                "contact.merge",
                primary,
                primaryObjectId=int(primary),
                mergedObjectIds=[601, 602],
                newObjectId=int(primary),
            )
        ]  # fmt: skip
    )
    person = next(e for e in events if e["type"] == "person")
    assert person["crm_ids"] == {"hubspot": [primary, "601", "602"]}


def test_deal_change_yields_its_purchases(fake, connector):
    anna = fake.add("contacts", {"email": "anna@example.com"})
    deal = fake.add("deals", {"dealname": "A4", "dealstage": "closedwon",
                              "closedate": "2026-11-21T10:00:00Z"})  # fmt: skip
    item = fake.add("line_items", {"name": "Audi A4", "hs_sku": "audi-a4"})
    fake.associate("deals", deal, "line_items", item)
    fake.associate("deals", deal, "contacts", anna)
    events = connector.webhook_events([hook("deal.propertyChange", deal, propertyName="dealstage",
                                            propertyValue="closedwon")])  # fmt: skip
    purchase = next(e for e in events if e["source"]["type"] == "line_item")
    assert purchase["product"] == "audi-a4" and purchase["person"] == {"hubspot": anna}


def test_unknown_and_malformed_entries_are_ignored(connector, fake):
    payload = [{"subscriptionType": "conversation.creation", "objectId": 1}, "junk", {}]
    assert connector.webhook_events(payload) == []
    assert fake.log == []


def test_generic_object_events_use_the_object_type_id(fake):
    work = parse_payload(
        [
            {
                "subscriptionType": "object.propertyChange",
                "objectTypeId": "0-1",
                "objectId": 5,
                "propertyName": "email",
            }
        ],  # fmt: skip
        ("guard_status",),
    )
    assert work.fetch == {"contact": {"5"}}


def test_payload_round_trips_from_raw_body(fake, connector):
    anna = fake.add("contacts", {"email": "anna@example.com"})
    body = json.dumps([hook("contact.creation", anna)]).encode()
    events = connector.webhook_events(json.loads(body))
    assert [e["source"]["id"] for e in events if e["type"] == "person"] == [anna]
