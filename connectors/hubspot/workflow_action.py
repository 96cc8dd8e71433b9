"""The "Contact Guard check" custom workflow action (HubSpot Automation Actions API v4).

The definition follows HubSpot's action definition (``actionUrl``,
``objectTypes``, ``inputFields`` / ``outputFields`` with a ``typeDefinition``
each, ``labels`` per locale, ``executionRules``) as documented at
developers.hubspot.com/docs/api-reference/automation-actions-v4-v4/custom-action-reference.
Requests HubSpot sends for a custom action carry signature v2 (the
custom-action guide) or v3; both are checked here.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

ACTION_NAME = "Contact Guard check"
ACTION_PATH = "/hooks/hubspot/action"
VERDICTS = ("allow", "block", "defer", "reroute")
CHANNELS = ("email", "sms", "call", "mail", "push")
# The attempt's fields, named as in POST /v1/check: (name, label, description, required).
INPUTS = (
    ("channel", "Channel", "How the contact is made: email, sms, call, mail or push.", True),
    ("purpose", "Purpose", "Why: a purpose the policy knows, e.g. price_offer.", True),
    ("sender", "Sender", "Who sends it: oem, sales, service, billing, dealer:<id> …", True),
    ("campaign", "Campaign", "The campaign id, if any.", False),
    ("template", "Template", "The template id, if any.", False),
    ("product", "Product", "The product (model, SKU or event id) offered, if any.", False),
    ("commit", "Count this contact", "true (default): an allowed contact counts toward "
                                     "caps at once; false: a dry run.", False),
)
OUTPUTS = (
    ("verdict", "Verdict"),
    ("reason", "Reason"),
    ("rules", "Rules"),
    ("not_before", "Not before"),
    ("reroute_owner", "Reroute to owner"),
    ("reroute_channel", "Reroute to channel"),
    ("decision_id", "Decision id"),
    ("error", "Error"),
)
# The output ``error`` names why a contact could not be checked; HubSpot shows the
# execution rule's message in the workflow's history.
INVALID_INPUT = "invalid_input"


def _options(values: tuple[str, ...]) -> list[dict]:
    return [{"label": value.capitalize(), "value": value, "displayOrder": i}
            for i, value in enumerate(values)]


def _input(name: str, required: bool) -> dict:
    if name == "channel":
        definition = {"name": name, "type": "enumeration", "fieldType": "select",
                      "options": _options(CHANNELS)}
    elif name == "commit":
        definition = {"name": name, "type": "enumeration", "fieldType": "select",
                      "options": _options(("true", "false"))}
    else:
        definition = {"name": name, "type": "string", "fieldType": "text"}
    return {"typeDefinition": definition, "isRequired": required,
            "supportedValueTypes": ["STATIC_VALUE", "OBJECT_PROPERTY"]}


def _output(name: str) -> dict:
    if name == "verdict":
        return {"typeDefinition": {"name": name, "type": "enumeration", "fieldType": "select",
                                   "options": _options(VERDICTS)}}
    return {"typeDefinition": {"name": name, "type": "string", "fieldType": "text"}}


def definition(action_url: str) -> dict:
    """Return the action definition for ``action_url`` (the guard's /hooks/hubspot/action)."""
    return {
        "actionUrl": action_url,
        "published": True,
        "objectTypes": ["CONTACT"],
        "inputFields": [_input(name, required) for name, _, _, required in INPUTS],
        "outputFields": [_output(name) for name, _ in OUTPUTS],
        "executionRules": [{"labelName": INVALID_INPUT,
                            "conditions": {"error": INVALID_INPUT}}],
        "labels": {"en": {
            "actionName": ACTION_NAME,
            "appDisplayName": "Contact Guard",
            "actionDescription": "Check the enrolled contact against purchases, contracts, "
                                 "consent and contact history; branch on the verdict.",
            "actionCardContent": "Check this contact with Contact Guard",
            "inputFieldLabels": {name: label for name, label, _, _ in INPUTS},
            "inputFieldDescriptions": {name: text for name, _, text, _ in INPUTS},
            "outputFieldLabels": dict(OUTPUTS),
            "executionRules": {INVALID_INPUT: "Contact Guard could not check this contact: "
                                              "{{reason}}"},
        }},
    }


def differs(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Name the top-level keys of ``wanted`` that ``current`` (as HubSpot returns it) lacks."""
    return [key for key, value in wanted.items() if key not in current
            or not _holds(current[key], value)]


def _holds(current: Any, wanted: Any) -> bool:
    """Say whether ``current`` says all ``wanted`` says; keys HubSpot adds don't count.

    HubSpot answers a definition with every field its model requires filled in
    (``options``, ``externalOptions`` of each input field, ``functions``): a value
    equal but for those is unchanged, and an install run again updates nothing.
    """
    if isinstance(wanted, Mapping):
        return isinstance(current, Mapping) and all(
            key in current and _holds(current[key], value) for key, value in wanted.items())
    if isinstance(wanted, list):
        return isinstance(current, list) and len(current) == len(wanted) and all(
            _holds(have, want) for have, want in zip(current, wanted, strict=True))
    return current == wanted


def sign_v2(secret: str, method: str, uri: str, body: bytes) -> str:
    """Compute ``X-HubSpot-Signature`` v2: SHA-256 hex of secret, method, URI and body."""
    return hashlib.sha256(secret.encode() + method.upper().encode() + uri.encode()
                          + body).hexdigest()


def verify_signature_v2(secret: str, method: str, uri: str, body: bytes,
                        signature: str) -> bool:
    """Check an ``X-HubSpot-Signature`` v2 header (it has no timestamp to go stale)."""
    if not (secret and signature):
        return False
    return hmac.compare_digest(sign_v2(secret, method, uri, body), signature.strip().lower())
