"""HubSpot records (wire JSON) turned into the events of SPEC §6."""

from __future__ import annotations

import zoneinfo
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from connectors.hubspot.mapping import HubSpotMapping

SYSTEM = "hubspot"
CHANNELS = ("email", "sms", "call", "mail", "push")

# The plugin's outputs (SPEC §9): the guard writes them, so a change to them
# alone is our own echo and never news.
OUTPUT_PROPERTIES = ("guard_status", "guard_flags", "guard_updated")

CONTACT_PROPERTIES = (
    "email",
    "hs_additional_emails",
    "firstname",
    "lastname",
    "phone",
    "mobilephone",
    "lifecyclestage",
    "hubspot_owner_id",
    "associatedcompanyid",
    "lastmodifieddate",
)


def source(record_type: str, record_id: Any) -> dict:
    """Name a HubSpot record as an event source."""
    return {"system": SYSTEM, "type": record_type, "id": str(record_id)}


def person_ref(contact_id: Any) -> dict:
    """Refer to the person behind a HubSpot contact."""
    return {"hubspot": str(contact_id)}


def deleted(event_type: str, record_type: str, record_id: Any) -> dict:
    """Retract the record with this source."""
    return {"type": event_type, "source": source(record_type, record_id), "deleted": True}


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def to_time(value: Any) -> str | None:
    """Normalise a HubSpot datetime value (ISO text or epoch milliseconds) to ISO 8601."""
    if _blank(value):
        return None
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC).isoformat().replace("+00:00", "Z")
    return text


def to_date(value: Any) -> str | None:
    """Normalise a HubSpot date value (``YYYY-MM-DD`` or midnight epoch ms) to ISO 8601."""
    if _blank(value):
        return None
    text = str(value).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC).date().isoformat()
    return text[:10]


def to_number(value: Any) -> float | int | None:
    """Read a HubSpot number property; text that is no number is left out."""
    if _blank(value):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return int(number) if number.is_integer() else number


@cache
def _zones() -> dict[str, str]:
    return {name.lower(): name for name in zoneinfo.available_timezones()}


def to_timezone(value: Any) -> str | None:
    """Turn HubSpot's ``hs_timezone`` code (``europe_slash_berlin``) into an IANA name."""
    if _blank(value):
        return None
    text = str(value).strip().lower().replace("_slash_", "/").replace("_minus_", "-")
    return _zones().get(text)


def ms(value: Any) -> int:
    """Read a HubSpot datetime as epoch milliseconds (for cursors)."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def _first(props: Mapping[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        value = props.get(name)
        if not _blank(value):
            return value
    return None


def _split(value: Any) -> list[str]:
    if _blank(value):
        return []
    return [part.strip() for part in str(value).replace(",", ";").split(";") if part.strip()]


def person_event(record: Mapping, mapping: HubSpotMapping) -> dict:
    """Turn a contact into a ``person`` event."""
    props = record.get("properties") or {}
    contact_id = str(record["id"])
    event: dict[str, Any] = {
        "type": "person",
        "source": source("contact", contact_id),
        "crm_ids": {SYSTEM: contact_id},
    }
    emails = _split(props.get("email")) + _split(props.get("hs_additional_emails"))
    if emails:
        event["emails"] = list(dict.fromkeys(emails))
    phones = [p for p in (props.get("phone"), props.get("mobilephone")) if not _blank(p)]
    if phones:
        event["phones"] = list(dict.fromkeys(str(p).strip() for p in phones))
    name = " ".join(
        str(props[k]).strip() for k in ("firstname", "lastname") if not _blank(props.get(k))
    )
    if name:
        event["name"] = name
    if not _blank(props.get("associatedcompanyid")):
        event["account"] = source("company", props["associatedcompanyid"])
    stage = mapping.stages.get(str(props.get("lifecyclestage") or "").lower())
    if stage:
        event["stage"] = stage
    dealer = props.get(mapping.dealer_property) if mapping.dealer_property else None
    owner = f"dealer:{str(dealer).strip()}" if not _blank(dealer) else None
    owner = owner or mapping.sender_for_owner(props.get("hubspot_owner_id"))
    if owner:
        event["owner"] = owner
    for field_name, names in mapping.contact_fields.items():
        value = _first(props, names)
        if field_name == "replacement_cycle_years":
            value = to_number(value)
        elif field_name == "do_not_market_until":
            value = to_date(value)
        elif field_name == "timezone":
            value = to_timezone(value)
        elif field_name == "preferred_channel":
            value = str(value).strip().lower() if not _blank(value) else None
            value = value if value in CHANNELS else None
        elif not _blank(value):
            value = str(value).strip()
        if value is not None:
            event[field_name] = value
    return event


def account_event(record: Mapping, mapping: HubSpotMapping) -> dict:
    """Turn a company into an ``account`` event."""
    props = record.get("properties") or {}
    event: dict[str, Any] = {"type": "account", "source": source("company", record["id"])}
    for name, prop in (("name", "name"), ("domain", "domain")):
        if not _blank(props.get(prop)):
            event[name] = str(props[prop]).strip()
    owner = mapping.sender_for_owner(props.get("hubspot_owner_id"))
    if owner:
        event["owner"] = owner
    return event


def _people(event: dict, contacts: Sequence[str], companies: Sequence[str]) -> dict:
    if contacts:
        event["person"] = person_ref(contacts[0])
    if companies:
        event["account"] = source("company", companies[0])
    return event


def is_won(deal: Mapping, mapping: HubSpotMapping) -> bool:
    """Tell whether a deal is closed won (HubSpot's flag or a mapped won stage)."""
    props = deal.get("properties") or {}
    if str(props.get("hs_is_closed_won") or "").lower() == "true":
        return True
    return str(props.get("dealstage") or "") in mapping.won_stages


def purchase_events(
    deal: Mapping,
    line_items: Sequence[Mapping],
    products: Mapping[str, Mapping],
    contacts: Sequence[str],
    companies: Sequence[str],
    mapping: HubSpotMapping,
) -> list[dict]:
    """Turn a won deal into one ``purchase`` per line item (the deal itself if it has none)."""
    props = deal.get("properties") or {}
    at = to_time(props.get("closedate")) or to_time(props.get("createdate"))
    currency = props.get("deal_currency_code") or None
    if not line_items:
        event = {
            "type": "purchase",
            "source": source("deal", deal["id"]),
            "product": props.get("dealname") or None,
            "at": at,
        }
        if to_number(props.get("amount")) is not None:
            event["amount"] = to_number(props.get("amount"))
        if currency:
            event["currency"] = currency
        return [_people(event, contacts, companies)]
    events = []
    for item in line_items:
        item_props = item.get("properties") or {}
        product = products.get(str(item_props.get("hs_product_id") or "")) or {}
        product_props = product.get("properties") or {}
        names = [mapping.product_property] if mapping.product_property else []
        event: dict[str, Any] = {
            "type": "purchase",
            "source": source("line_item", item["id"]),
            "product": _first(item_props, names)
            or _first(product_props, ["hs_sku"])
            or _first(item_props, ["name"]),
            "at": at,
        }
        if mapping.category_property:
            category = _first(product_props, [mapping.category_property])
            if category:
                event["category"] = str(category)
        amount = to_number(item_props.get("amount"))
        if amount is not None:
            event["amount"] = amount
        if currency:
            event["currency"] = currency
        events.append(_people(event, contacts, companies))
    return events


def case_event(
    ticket: Mapping, contacts: Sequence[str], closed_stages: frozenset[str], mapping: HubSpotMapping
) -> dict:
    """Turn a ticket into a ``case``: open unless its pipeline stage is a closed one."""
    props = ticket.get("properties") or {}
    status = "closed" if str(props.get("hs_pipeline_stage") or "") in closed_stages else "open"
    event: dict[str, Any] = {
        "type": "case",
        "source": source("ticket", ticket["id"]),
        "status": status,
        "at": to_time(props.get("createdate")),
    }
    if not _blank(props.get("subject")):
        event["subject"] = str(props["subject"]).strip()
    owner = mapping.sender_for_owner(props.get("hubspot_owner_id"))
    if owner:
        event["owner"] = owner
    if contacts:
        event["person"] = person_ref(contacts[0])
    return event


# Engagement object type -> (record type, direction property, outbound values).
ENGAGEMENTS = {
    "emails": ("email", "hs_email_direction", ("EMAIL",)),
    "calls": ("call", "hs_call_direction", ("OUTBOUND",)),
    "meetings": ("meeting", None, ()),
}


def touch_events(
    kind: str, record: Mapping, contacts: Sequence[str], mapping: HubSpotMapping
) -> list[dict]:
    """Turn an outbound email, call or meeting into a ``touch`` per associated contact.

    Inbound emails and calls are the customer contacting us, not a contact
    we made, so they count toward no cap. With several contacts each gets
    its own touch, sourced ``<engagement id>:<contact id>``.
    """
    record_type, direction_property, outbound = ENGAGEMENTS[kind]
    props = record.get("properties") or {}
    if direction_property and not _blank(props.get(direction_property)):
        if str(props[direction_property]).upper() not in outbound:
            return []
    config = mapping.engagements[kind]
    purpose = _first(props, [config.purpose_property]) if config.purpose_property else None
    owner_id = props.get("hubspot_owner_id")
    sender = mapping.owners.get(str(owner_id)) if owner_id else None
    base: dict[str, Any] = {
        "type": "touch",
        "channel": config.channel,
        "purpose": purpose or config.purpose,
        "sender": sender or mapping.engagement_sender,
        "at": to_time(props.get("hs_timestamp")) or to_time(props.get("createdate")),
    }
    if not base["purpose"]:
        del base["purpose"]
    events = []
    for contact in contacts:
        record_id = record["id"] if len(contacts) == 1 else f"{record['id']}:{contact}"
        events.append(
            {**base, "source": source(record_type, record_id), "person": person_ref(contact)}
        )
    return events


def custom_event(
    obj_event: str,
    record_type: str,
    fields: Mapping[str, str],
    record: Mapping,
    contacts: Sequence[str],
    companies: Sequence[str],
) -> dict:
    """Turn a custom object record into the event its mapping names."""
    props = record.get("properties") or {}
    event: dict[str, Any] = {"type": obj_event, "source": source(record_type, record["id"])}
    for name, prop in fields.items():
        value = props.get(prop)
        if _blank(value):
            continue
        if name in ("at", "sent_at", "paid_at"):
            value = to_time(value)
        elif name in ("start", "end", "due", "next_due"):
            value = to_date(value)
        elif name in ("amount", "mileage", "next_due_mileage"):
            value = to_number(value)
        event[name] = value
    return _people(event, contacts, companies)


# Communication preferences v4: a subscription status is one of these words.
OPT_IN, OPT_OUT, NOT_STATED = "SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED"


def _consent(contact_id: str, record_id: str, purpose: str, status: str, at: Any) -> dict:
    return {
        "type": "consent",
        "source": source("subscription", record_id),
        "person": person_ref(contact_id),
        "channel": "email",
        "purpose": purpose,
        "status": status,
        "at": to_time(at),
    }


def consent_events(
    contact_id: str,
    statuses: Sequence[Mapping],
    wide_statuses: Sequence[Mapping],
    mapping: HubSpotMapping,
) -> list[dict]:
    """Turn a contact's v4 email subscription statuses into ``consent`` events.

    ``UNSUBSCRIBED`` is an opt-out and ``SUBSCRIBED`` an opt-in; a subscription
    with no stated status (``NOT_SPECIFIED``) retracts any earlier consent from
    it. A word the API does not document leaves the stored consent as it is:
    guessing could retract an opt-out. Opting out of all email is an opt-out
    for every purpose.
    """
    events = []
    for status in statuses:
        if str(status.get("channel") or "EMAIL").upper() != "EMAIL":
            continue
        sub_id = str(status.get("subscriptionId"))
        record_id = f"{contact_id}:sub:{sub_id}"
        state = str(status.get("status") or "").upper()
        if state == NOT_STATED:
            events.append(deleted("consent", "subscription", record_id))
        elif state in (OPT_IN, OPT_OUT):
            purpose = mapping.subscriptions.get(sub_id) or mapping.subscriptions.get(
                str(status.get("subscriptionName") or "")
            )
            consent = "opt_in" if state == OPT_IN else "opt_out"
            events.append(
                _consent(contact_id, record_id, purpose or "*", consent, status.get("timestamp"))
            )
    for wide in wide_statuses:
        if str(wide.get("channel") or "EMAIL").upper() != "EMAIL":
            continue
        record_id = f"{contact_id}:sub:all"
        state = str(wide.get("status") or "").upper()
        if state == OPT_OUT:
            events.append(_consent(contact_id, record_id, "*", "opt_out", wide.get("timestamp")))
        elif state in (OPT_IN, NOT_STATED):
            events.append(deleted("consent", "subscription", record_id))
    return events


def today_iso(now: datetime | date) -> str:
    """Format a moment for a HubSpot datetime property."""
    if isinstance(now, datetime):
        return now.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return now.isoformat()
