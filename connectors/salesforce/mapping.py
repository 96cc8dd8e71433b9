"""The mapping configuration: which Salesforce fields become which event fields.

Loaded once at start-up from YAML (the shipped ``mapping.yaml``, with an org's
own file laid over it), validated with marshmallow and frozen. Every field name
ends up in SOQL, so each must be a plain API name; a wrong key or value fails
with its dotted path.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import yaml
from marshmallow import Schema, ValidationError, fields, validate

from connectors.base import OBJECT_FIELDS, REQUIRED_OBJECT_FIELDS
from connectors.salesforce.errors import MappingError

DEFAULT_MAPPING = Path(__file__).with_name("mapping.yaml")

STAGES = ("prospect", "opportunity", "customer")
CHANNELS = ("email", "sms", "call", "mail", "push")
PERSON_FIELDS = (
    "replacement_cycle_years",
    "preferred_channel",
    "contact_hours",
    "do_not_market_until",
    "timezone",
    "name",
)
# An API name, or a relationship path such as Account.Type; nothing else may
# reach a SOQL statement.
API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$")
SENDER = re.compile(r"^[a-z][a-z0-9_-]*(:[A-Za-z0-9_.-]+)?$")


def _api_name() -> fields.String:
    return fields.String(validate=validate.Regexp(API_NAME, error="not a Salesforce API name"))


def _optional_api_name() -> fields.String:
    return fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Regexp(API_NAME, error="not a Salesforce API name"),
    )


def _sender(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Regexp(SENDER, error="not a sender"), **kwargs)


def _person_fields() -> fields.Dict:
    """Person fields mapped to the Salesforce fields tried for them, first filled wins."""
    return fields.Dict(
        data_key="fields",
        keys=fields.String(validate=validate.OneOf(PERSON_FIELDS)),
        values=fields.List(_api_name()),
        load_default=dict,
    )


class _Strict(Schema):
    class Meta:
        ordered = True


class ContactSchema(_Strict):
    fields_ = _person_fields()
    dealer_field = _optional_api_name()
    stage_field = _optional_api_name()
    stages = fields.Dict(
        keys=fields.String(), values=fields.String(validate=validate.OneOf(STAGES)),
        load_default=dict,
    )
    account_types = fields.Dict(
        keys=fields.String(), values=fields.String(validate=validate.OneOf(STAGES)),
        load_default=dict,
    )


class LeadSchema(_Strict):
    fields_ = _person_fields()
    dealer_field = _optional_api_name()
    stage = fields.String(validate=validate.OneOf(STAGES), load_default="prospect")


class OpportunitySchema(_Strict):
    product_field = _api_name()
    category_field = _optional_api_name()
    currency_field = _optional_api_name()


class ContractSchema(_Strict):
    statuses = fields.Dict(keys=fields.String(), values=fields.String(), load_default=dict)
    product_field = _optional_api_name()


class TaskSchema(_Strict):
    sender = _sender(required=True)
    purpose_field = _optional_api_name()
    purposes = fields.Dict(
        keys=fields.String(validate=validate.OneOf(("call", "email"))),
        values=fields.String(),
        required=True,
    )


class CampaignSchema(_Strict):
    id_field = _api_name()
    purpose_field = _optional_api_name()
    offer_field = _optional_api_name()
    eligible_when_field = _optional_api_name()
    notify_owner_field = _optional_api_name()


class CampaignMemberSchema(_Strict):
    sent_statuses = fields.List(fields.String(), load_default=list)
    channels = fields.Dict(
        keys=fields.String(), values=fields.String(validate=validate.OneOf(CHANNELS)),
        load_default=dict,
    )
    purpose = fields.String(required=True)
    sender = _sender(required=True)


class ObjectSchema(_Strict):
    object = _api_name()
    event = fields.String(required=True, validate=validate.OneOf(tuple(OBJECT_FIELDS)))
    person = _optional_api_name()
    account = _optional_api_name()
    fields_ = fields.Dict(
        data_key="fields", keys=fields.String(), values=_api_name(), required=True
    )


class MappingSchema(_Strict):
    owners = fields.Dict(keys=fields.String(), values=_sender(), load_default=dict)
    contact = fields.Nested(ContactSchema, required=True)
    lead = fields.Nested(LeadSchema, required=True)
    opportunity = fields.Nested(OpportunitySchema, required=True)
    contract = fields.Nested(ContractSchema, required=True)
    task = fields.Nested(TaskSchema, required=True)
    campaign = fields.Nested(CampaignSchema, required=True)
    campaign_member = fields.Nested(CampaignMemberSchema, required=True)
    objects = fields.List(fields.Nested(ObjectSchema), load_default=list)


@dataclass(frozen=True)
class CustomObject:
    """A custom object whose records become events of one type."""

    object: str
    event: str
    person: str | None
    account: str | None
    fields: Mapping[str, str]


@dataclass(frozen=True)
class SalesforceMapping:
    """The validated, frozen mapping the streams read from."""

    owners: Mapping[str, str]
    contact: Mapping[str, Any]
    lead: Mapping[str, Any]
    opportunity: Mapping[str, Any]
    contract: Mapping[str, Any]
    task: Mapping[str, Any]
    campaign: Mapping[str, Any]
    campaign_member: Mapping[str, Any]
    objects: tuple[CustomObject, ...]

    @property
    def campaigns_enabled(self) -> bool:
        """Tell whether Campaigns carry the guard's offer fields in this org."""
        return bool(self.campaign["purpose_field"] and self.campaign["offer_field"])


def load_mapping(source: str | Path | Mapping[str, Any] | None = None) -> SalesforceMapping:
    """Load the default mapping with an org's file (or dict) laid over it, and validate it."""
    base = _read(DEFAULT_MAPPING)
    if source is not None:
        override = source if isinstance(source, Mapping) else _read(Path(source))
        base = _overlay(base, override)
    return parse_mapping(base)


def parse_mapping(data: Any) -> SalesforceMapping:
    """Validate a complete mapping document and freeze it."""
    if not isinstance(data, Mapping):
        raise MappingError("mapping: expected a mapping at the top level")
    try:
        loaded = MappingSchema().load(data)
    except ValidationError as exc:
        raise MappingError(_first_problem(exc.messages)) from None
    objects = []
    for index, obj in enumerate(loaded["objects"]):
        allowed = OBJECT_FIELDS[obj["event"]]
        for key in obj["fields_"]:
            if key not in allowed:
                raise MappingError(
                    f"objects.{index}.fields.{key}: not a field of a {obj['event']} event "
                    f"(one of {', '.join(allowed)})"
                )
        for key in REQUIRED_OBJECT_FIELDS.get(obj["event"], ()):
            if key not in obj["fields_"]:
                raise MappingError(f"objects.{index}.fields.{key}: required for {obj['event']}")
        if not obj["person"] and not obj["account"]:
            raise MappingError(f"objects.{index}: name a person or an account field")
        objects.append(CustomObject(obj["object"], obj["event"], obj["person"], obj["account"],
                                    MappingProxyType(dict(obj["fields_"]))))
    for key in ("contact", "lead"):
        loaded[key]["fields"] = MappingProxyType(
            {name: tuple(values) for name, values in loaded[key].pop("fields_").items()}
        )
    return SalesforceMapping(
        owners=MappingProxyType(dict(loaded["owners"])),
        contact=MappingProxyType(loaded["contact"]),
        lead=MappingProxyType(loaded["lead"]),
        opportunity=MappingProxyType(loaded["opportunity"]),
        contract=MappingProxyType(loaded["contract"]),
        task=MappingProxyType(loaded["task"]),
        campaign=MappingProxyType(loaded["campaign"]),
        campaign_member=MappingProxyType(loaded["campaign_member"]),
        objects=tuple(objects),
    )


def _read(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return yaml.safe_load(handle) or {}
    except OSError as exc:
        raise MappingError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise MappingError(f"{path}: not valid YAML: {exc}") from None


def _overlay(base: Any, override: Any, path: str = "") -> Any:
    """Lay an org's mapping over the defaults: mappings merge, anything else replaces.

    Under ``fields`` an org's own source fields go first and the plugin's stay
    as the fallback, so an org never has to repeat them.
    """
    if not isinstance(override, Mapping):
        raise MappingError(f"{path or 'mapping'}: expected a mapping")
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        here = f"{path}.{key}" if path else str(key)
        current = merged.get(key)
        if path.endswith("fields") and isinstance(current, list):
            own = value if isinstance(value, list) else [value]
            merged[key] = [*own, *(name for name in current if name not in own)]
        elif isinstance(current, Mapping) and isinstance(value, Mapping) and current:
            merged[key] = _overlay(current, value, here)
        else:
            merged[key] = value
    return merged


def _first_problem(messages: Any, path: str = "") -> str:
    """Turn marshmallow's nested messages into one 'dotted.path: message' line."""
    if isinstance(messages, Mapping):
        key, value = next(iter(messages.items()))
        if key == "_schema":
            return _first_problem(value, path)
        key = "fields" if key == "fields_" else key
        if isinstance(value, Mapping) and set(value) <= {"key", "value"}:
            inner = value.get("key") or value.get("value")
            return _first_problem(inner, f"{path}.{key}".lstrip("."))
        return _first_problem(value, f"{path}.{key}".lstrip("."))
    if isinstance(messages, list):
        first = messages[0]
        if isinstance(first, str):
            return f"{path or 'mapping'}: {first}"
        return _first_problem(first, path)
    return f"{path or 'mapping'}: {messages}"
