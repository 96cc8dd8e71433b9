"""The mapping configuration: which HubSpot properties become which event fields.

Loaded once at start-up from YAML (the shipped ``mapping.yaml`` or a portal's
own copy), validated with marshmallow, and frozen; a wrong key fails loudly
with its dotted path.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields, validate

from connectors import base
from connectors.hubspot.errors import MappingError

DEFAULT_MAPPING = Path(__file__).with_name("mapping.yaml")

PERSON_FIELDS = (
    "name",
    "timezone",
    "preferred_channel",
    "contact_hours",
    "replacement_cycle_years",
    "do_not_market_until",
    "stage",
    "owner",
)
STAGES = ("prospect", "opportunity", "customer")
CHANNELS = ("email", "sms", "call", "mail", "push")
# Custom objects fill the fact events; touches come from HubSpot's own engagements.
OBJECT_FIELDS = {event: names for event, names in base.OBJECT_FIELDS.items() if event != "touch"}
REQUIRED_OBJECT_FIELDS = base.REQUIRED_OBJECT_FIELDS
# A portal's mapping adds to these; it never has to repeat them.
DEFAULT_CONTACT_FIELDS = {
    "replacement_cycle_years": ("guard_replacement_cycle_years",),
    "preferred_channel": ("guard_preferred_channel",),
    "contact_hours": ("guard_contact_hours",),
    "do_not_market_until": ("guard_do_not_market_until",),
    "timezone": ("hs_timezone",),
}
DEFAULT_STAGES = {
    "subscriber": "prospect",
    "lead": "prospect",
    "marketingqualifiedlead": "prospect",
    "salesqualifiedlead": "prospect",
    "opportunity": "opportunity",
    "customer": "customer",
    "evangelist": "customer",
}


def _properties() -> fields.List:
    return fields.List(fields.String(validate=validate.Length(min=1)), validate=validate.Length(1))


class _ContactSchema(Schema):
    fields_ = fields.Dict(
        data_key="fields",
        keys=fields.String(validate=validate.OneOf(PERSON_FIELDS)),
        values=_properties(),
        load_default=dict,
    )
    dealer_property = fields.String(allow_none=True, load_default=None)
    stages = fields.Dict(
        keys=fields.String(),
        values=fields.String(validate=validate.OneOf(STAGES)),
        load_default=dict,
    )


class _DealsSchema(Schema):
    won_stages = fields.List(fields.String(), load_default=lambda: ["closedwon"])
    product_property = fields.String(allow_none=True, load_default="hs_sku")
    category_property = fields.String(allow_none=True, load_default=None)


class _TicketsSchema(Schema):
    closed_stages = fields.List(fields.String(), load_default=list)


class _EngagementSchema(Schema):
    channel = fields.String(required=True, validate=validate.OneOf(CHANNELS))
    purpose = fields.String(allow_none=True, load_default=None)
    purpose_property = fields.String(allow_none=True, load_default=None)


def _engagement(channel: str) -> fields.Nested:
    return fields.Nested(
        _EngagementSchema, load_default=lambda: {"channel": channel, "purpose": "prospecting"}
    )


class _EngagementsSchema(Schema):
    sender = fields.String(load_default="sales")
    emails = _engagement("email")
    calls = _engagement("call")
    meetings = _engagement("call")


class _ObjectSchema(Schema):
    object_type = fields.String(required=True, validate=validate.Length(min=1))
    event = fields.String(required=True, validate=validate.OneOf(tuple(OBJECT_FIELDS)))
    fields_ = fields.Dict(
        data_key="fields", keys=fields.String(), values=fields.String(), required=True
    )
    replication_key = fields.String(load_default="hs_lastmodifieddate")


def _nested(schema: type[Schema]) -> fields.Nested:
    # An absent section still gets its defaults, loaded through its schema.
    return fields.Nested(schema, load_default=lambda: schema().load({}))


class _MappingSchema(Schema):
    owners = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    contact = _nested(_ContactSchema)
    deals = _nested(_DealsSchema)
    tickets = _nested(_TicketsSchema)
    engagements = _nested(_EngagementsSchema)
    subscriptions = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    objects = fields.List(fields.Nested(_ObjectSchema), load_default=list)


@dataclass(frozen=True)
class Engagement:
    """How one engagement type becomes a touch."""

    channel: str
    purpose: str | None = None
    purpose_property: str | None = None


@dataclass(frozen=True)
class CustomObject:
    """A custom object type whose records become events of one type."""

    object_type: str
    event: str
    fields: Mapping[str, str]
    replication_key: str = "hs_lastmodifieddate"


@dataclass(frozen=True)
class HubSpotMapping:
    """The validated mapping configuration."""

    owners: Mapping[str, str] = field(default_factory=dict)
    contact_fields: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    dealer_property: str | None = None
    stages: Mapping[str, str] = field(default_factory=dict)
    won_stages: frozenset[str] = frozenset({"closedwon"})
    product_property: str | None = "hs_sku"
    category_property: str | None = None
    closed_ticket_stages: frozenset[str] = frozenset()
    engagement_sender: str = "sales"
    engagements: Mapping[str, Engagement] = field(default_factory=dict)
    subscriptions: Mapping[str, str] = field(default_factory=dict)
    objects: tuple[CustomObject, ...] = ()

    def sender_for_owner(self, owner_id: str | None) -> str | None:
        """Name the sender behind a HubSpot owner id."""
        if not owner_id:
            return None
        return self.owners.get(str(owner_id), f"hubspot-owner:{owner_id}")

    def contact_properties(self) -> list[str]:
        """List the contact properties the mapping reads."""
        names = [p for props in self.contact_fields.values() for p in props]
        if self.dealer_property:
            names.append(self.dealer_property)
        return names


def _first_error(messages: Any, path: str = "") -> tuple[str, str]:
    if isinstance(messages, dict):
        key, value = next(iter(messages.items()))
        if key == "_schema":
            return _first_error(value, path)
        if isinstance(key, int):
            return _first_error(value, f"{path}[{key}]")
        name = "fields" if key == "fields_" else str(key)
        return _first_error(value, f"{path}.{name}" if path else name)
    if isinstance(messages, list) and messages:
        if all(isinstance(m, str) for m in messages):
            return path or "mapping", "; ".join(messages)
        return _first_error(messages[0], path)
    return path or "mapping", str(messages)


def parse_mapping(data: Any) -> HubSpotMapping:
    """Validate a mapping document (already parsed from YAML) into a ``HubSpotMapping``."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MappingError("mapping", "must be a mapping of keys to values")
    try:
        doc = _MappingSchema().load(data)
    except ValidationError as exc:
        raise MappingError(*_first_error(exc.messages)) from None
    objects = []
    for i, obj in enumerate(doc["objects"]):
        allowed = OBJECT_FIELDS[obj["event"]]
        for name in obj["fields_"]:
            if name not in allowed:
                raise MappingError(
                    f"objects[{i}].fields.{name}",
                    f"not a field of a {obj['event']} event (one of {', '.join(allowed)})",
                )
        for name in REQUIRED_OBJECT_FIELDS.get(obj["event"], ()):
            if name not in obj["fields_"]:
                raise MappingError(f"objects[{i}].fields", f"a {obj['event']} needs '{name}'")
        objects.append(
            CustomObject(
                obj["object_type"],
                obj["event"],
                MappingProxyType(dict(obj["fields_"])),
                obj["replication_key"],
            )
        )
    contact, deals, engagements = doc["contact"], doc["deals"], doc["engagements"]
    return HubSpotMapping(
        owners=MappingProxyType({str(k): v for k, v in doc["owners"].items()}),
        contact_fields=MappingProxyType(
            DEFAULT_CONTACT_FIELDS | {k: tuple(v) for k, v in contact["fields_"].items()}
        ),
        dealer_property=contact["dealer_property"],
        stages=MappingProxyType(
            DEFAULT_STAGES | {k.lower(): v for k, v in contact["stages"].items()}
        ),
        won_stages=frozenset(deals["won_stages"]),
        product_property=deals["product_property"],
        category_property=deals["category_property"],
        closed_ticket_stages=frozenset(doc["tickets"]["closed_stages"]),
        engagement_sender=engagements["sender"],
        engagements=MappingProxyType(
            {kind: Engagement(**engagements[kind]) for kind in ("emails", "calls", "meetings")}
        ),
        subscriptions=MappingProxyType(dict(doc["subscriptions"])),
        objects=tuple(objects),
    )


def load_mapping(path: str | Path | None = None) -> HubSpotMapping:
    """Read and validate a mapping file; the shipped default when ``path`` is None."""
    path = Path(path) if path else DEFAULT_MAPPING
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise MappingError(str(path), f"cannot read the mapping file: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise MappingError(str(path), f"not valid YAML: {exc}") from None
    return parse_mapping(data)
