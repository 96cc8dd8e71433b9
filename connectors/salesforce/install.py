"""``guard install salesforce``: the plugin's fields and permission sets, through the Metadata API.

Idempotent: what exists is read first (``readMetadata``) and only what is
missing or different is written (``upsertMetadata``), so a second run changes
nothing and reports nothing. Fields made through the Metadata API are
invisible to everyone, admins included, until a permission set grants them:
one for reps (inputs editable, outputs read-only) and one for the integration
user (everything editable).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from simple_salesforce import Salesforce

from connectors.salesforce import external_service
from connectors.salesforce.client import Api
from connectors.salesforce.external_service import FlowAction
from connectors.salesforce.mapping import CHANNELS

METADATA_BATCH = 10  # readMetadata / upsertMetadata take at most 10 components a call
PERSON_OBJECTS = ("Contact", "Lead")
REPS_PERMISSION_SET = "Contact_Guard_Users"
INTEGRATION_PERMISSION_SET = "Contact_Guard_Integration"


@dataclass(frozen=True)
class FieldSpec:
    """One custom field the plugin needs."""

    name: str
    label: str
    type: str
    help: str
    output: bool = False
    attributes: dict[str, Any] = field(default_factory=dict)
    values: tuple[str, ...] = ()


PERSON_FIELDS = (
    FieldSpec("Guard_Replacement_Cycle_Years__c", "Replacement cycle (years)", "Number",
              "How many years this person keeps a product; trade-in and upgrade offers wait "
              "until then.", attributes={"precision": 3, "scale": 0}),
    FieldSpec("Guard_Preferred_Channel__c", "Preferred channel", "Picklist",
              "The channel this person asked to be contacted through.", values=CHANNELS),
    FieldSpec("Guard_Contact_Hours__c", "Contact hours", "Text",
              "When this person may be contacted, local time, e.g. 09:00-18:00.",
              attributes={"length": 11}),
    FieldSpec("Guard_Do_Not_Market_Until__c", "Do not market until", "Date",
              "No marketing to this person before this date."),
    FieldSpec("Guard_Status__c", "Guard status", "Text",
              "Written by Contact Guard: Clear, Caution or Do not contact.", output=True,
              attributes={"length": 20}),
    FieldSpec("Guard_Flags__c", "Guard flags", "LongTextArea",
              "Written by Contact Guard: one line per active flag.", output=True,
              attributes={"length": 32768, "visibleLines": 5}),
    FieldSpec("Guard_Updated__c", "Guard updated", "DateTime",
              "Written by Contact Guard: when status or flags last changed.", output=True),
)
# Custom fields of Tasks are defined on Activity. Activity fields cannot be unique,
# so the key is an indexed external id and the write-back itself keeps it unique
# (it looks for the key before creating and removes a racing replica's copy).
TASK_FIELDS = (
    FieldSpec("Guard_Dedupe_Key__c", "Guard dedupe key", "Text",
              "Written by Contact Guard: keeps each owner task from being created twice.",
              output=True, attributes={"length": 255, "externalId": True}),
)


def desired_fields() -> list[tuple[str, FieldSpec]]:
    """Return every (full name, spec) the plugin installs."""
    fields = [(f"{obj}.{spec.name}", spec) for obj in PERSON_OBJECTS for spec in PERSON_FIELDS]
    fields += [(f"Activity.{spec.name}", spec) for spec in TASK_FIELDS]
    return fields


def field_metadata(full_name: str, spec: FieldSpec) -> dict[str, Any]:
    """Describe a field as CustomField metadata."""
    metadata: dict[str, Any] = {"fullName": full_name, "label": spec.label, "type": spec.type,
                                "inlineHelpText": spec.help, **spec.attributes}
    if spec.values:
        metadata["valueSet"] = {
            "restricted": True,
            "valueSetDefinition": {
                "sorted": False,
                "value": [{"fullName": item, "default": False, "label": item}
                          for item in spec.values],
            },
        }
    return metadata


def permission_sets(flow: FlowAction | None = None) -> list[dict[str, Any]]:
    """Describe the two permission sets that make the fields (and the Flow action) usable."""
    reps, integration = [], []
    for full_name, spec in desired_fields():
        integration.append({"field": full_name, "readable": True, "editable": True})
        if not full_name.startswith("Activity."):
            reps.append({"field": full_name, "readable": True, "editable": not spec.output})
    # The integration user runs the Flow action: it may use the guard's key.
    access = {"externalCredentialPrincipalAccesses": [external_service.principal_access()]} \
        if flow is not None else {}
    return [
        {"fullName": REPS_PERMISSION_SET, "label": "Contact Guard users",
         "description": "Sales reps: edit the Contact Guard inputs, read its status and flags.",
         "fieldPermissions": reps},
        {"fullName": INTEGRATION_PERMISSION_SET, "label": "Contact Guard integration",
         "description": "The Contact Guard integration user: read and write every guard field.",
         "fieldPermissions": integration, **access},
    ]


def _batches(items: Sequence[Any], size: int = METADATA_BATCH) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _plain(value: Any) -> Any:
    """Turn zeep objects into plain dicts and lists for comparison."""
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if hasattr(value, "__values__"):
        return {key: _plain(item) for key, item in value.__values__.items() if item is not None}
    return value


def _differs(wanted: Any, held: Any) -> bool:
    """Tell whether the held metadata lacks any part of what is wanted (extras are the org's)."""
    if isinstance(wanted, dict):
        return not isinstance(held, dict) or any(
            _differs(item, held.get(key)) for key, item in wanted.items())
    if isinstance(wanted, list):
        if not isinstance(held, list):
            return True
        return any(all(_differs(item, other) for other in held) for item in wanted)
    if isinstance(wanted, bool) or isinstance(held, bool):
        return str(wanted).lower() != str(held).lower()
    if isinstance(wanted, int | float) and held is not None:
        try:
            return float(held) != float(wanted)
        except (TypeError, ValueError):
            return True
    return wanted != held


def _sync(api: Api, kind: Any, wanted: list[dict[str, Any]], noun: str) -> list[str]:
    """Read components of one metadata type, write the missing or changed ones, say which."""
    changes: list[str] = []
    for batch in _batches(wanted):
        names = [item["fullName"] for item in batch]
        held = api.call(kind.read, names)
        held = held if isinstance(held, list) else [held]
        by_name = {item["fullName"]: item for item in map(_plain, held)
                   if isinstance(item, dict) and item.get("fullName")}
        stale = [item for item in batch if _differs(item, by_name.get(item["fullName"]))]
        if stale:
            api.call(kind.upsert, [kind(**item) for item in stale])
        changes += [f"{'updated' if item['fullName'] in by_name else 'created'} {noun} "
                    f"{item['fullName']}" for item in stale]
    return changes


def install(sf: Salesforce, api: Api, flow: FlowAction | None = None) -> list[str]:
    """Create or update the plugin's fields and permission sets; return what changed.

    With ``flow``, also the Flow action "Contact Guard: check": its External
    Credential, Named Credential and External Service, in that order (each
    names the one before), then the permission sets that grant its principal.
    """
    mdapi = sf.mdapi
    # zeep keeps its own requests session; give it ours for the timeouts.
    mdapi._client.transport.session = sf.session
    changes = _sync(api, mdapi.CustomField,
                    [field_metadata(name, spec) for name, spec in desired_fields()], "field")
    if flow is not None:
        changes += _sync(api, mdapi.ExternalCredential,
                         [external_service.external_credential()], "external credential")
        changes += _sync(api, mdapi.NamedCredential,
                         [external_service.named_credential(flow.url)], "named credential")
        changes += _sync(api, mdapi.ExternalServiceRegistration,
                         [external_service.registration(flow.schema)], "external service")
    changes += _sync(api, mdapi.PermissionSet, permission_sets(flow), "permission set")
    return changes
