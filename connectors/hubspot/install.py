"""The plugin's contact properties (SPEC §9) and its workflow action, created idempotently."""

from __future__ import annotations

import json
from typing import Any

from connectors.hubspot import workflow_action
from connectors.hubspot.client import Api
from connectors.hubspot.errors import ApiError

GROUP = {"name": "contact_guard", "label": "Contact Guard", "displayOrder": -1}


def _options(*pairs: tuple[str, str]) -> list[dict]:
    return [
        {"label": label, "value": value, "displayOrder": i, "hidden": False}
        for i, (label, value) in enumerate(pairs)
    ]


PROPERTIES = (
    # Inputs reps fill in.
    {
        "name": "guard_replacement_cycle_years",
        "label": "Replacement cycle (years)",
        "type": "number",
        "fieldType": "number",
        "description": "How many years the customer keeps a product, as they told us.",
    },
    {
        "name": "guard_preferred_channel",
        "label": "Preferred channel",
        "type": "enumeration",
        "fieldType": "select",
        "description": "The channel the customer asked to be contacted through.",
        "options": _options(
            ("Email", "email"), ("SMS", "sms"), ("Call", "call"), ("Mail", "mail"), ("Push", "push")
        ),
    },
    {
        "name": "guard_contact_hours",
        "label": "Contact hours",
        "type": "string",
        "fieldType": "text",
        "description": "Local hours the customer accepts contact, e.g. 09:00-18:00.",
    },
    {
        "name": "guard_do_not_market_until",
        "label": "Do not market until",
        "type": "date",
        "fieldType": "date",
        "description": "No marketing to this customer before this date.",
    },
    # Outputs the guard writes.
    {
        "name": "guard_status",
        "label": "Contact Guard status",
        "type": "enumeration",
        "fieldType": "select",
        "description": "Written by Contact Guard.",
        "options": _options(
            ("Clear", "Clear"), ("Caution", "Caution"), ("Do not contact", "Do not contact")
        ),
    },
    {
        "name": "guard_flags",
        "label": "Contact Guard flags",
        "type": "string",
        "fieldType": "textarea",
        "description": "Written by Contact Guard: one line per active flag.",
    },
    {
        "name": "guard_updated",
        "label": "Contact Guard updated",
        "type": "datetime",
        "fieldType": "date",
        "description": "Written by Contact Guard: when status and flags last changed.",
    },
)


def install(api: Api) -> list[str]:
    """Create the "Contact Guard" group and its properties where missing; say what was done.

    An existing property of the same name is left as it is (a portal admin
    may have relabelled it); one of the wrong type is reported, not changed.
    """
    done: list[str] = []
    groups = {g["name"] for g in api.property_groups("contacts")}
    if GROUP["name"] not in groups:
        api.create_property_group("contacts", GROUP)
        done.append(f"created contact property group '{GROUP['label']}'")
    existing = {p["name"]: p for p in api.properties("contacts")}
    for definition in PROPERTIES:
        current = existing.get(definition["name"])
        if current is None:
            api.create_property("contacts", {**definition, "groupName": GROUP["name"]})
            done.append(f"created contact property {definition['name']}")
        elif current.get("type") != definition["type"]:
            done.append(
                f"contact property {definition['name']} exists with type "
                f"{current.get('type')!r}, expected {definition['type']!r}: left unchanged"
            )
    return done


def install_action(client: Any, app_id: int | str, action_url: str) -> list[str]:
    """Register (or bring up to date) the app's "Contact Guard check" workflow action.

    ``client`` is a ``hubspot.HubSpot`` built with the app's developer API key:
    action definitions belong to the app, not to a portal. The action is found
    by its ``actionUrl``, so a second run changes nothing.
    """
    api = client.automation.actions.definitions_api
    wanted = workflow_action.definition(action_url)
    try:
        found = [d for d in _definitions(api, app_id) if d.get("actionUrl") == action_url]
        if not found:
            created = json.loads(api.create(app_id, wanted, _preload_content=False).data)
            return [f"created workflow action '{workflow_action.ACTION_NAME}' "
                    f"(definition {created.get('id')}) calling {action_url}"]
        current = found[0]
        changed = workflow_action.differs(current, wanted)
        if not changed:
            return []
        api.update(current["id"], app_id, {key: wanted[key] for key in changed},
                   _preload_content=False)
    except Exception as exc:  # the generated client raises one class per package
        status = getattr(exc, "status", 0) or 0
        raise ApiError("workflow action definition", status,
                       str(getattr(exc, "body", None) or exc)) from exc
    return [f"updated workflow action '{workflow_action.ACTION_NAME}' "
            f"(definition {current['id']}): {', '.join(changed)}"]


def _definitions(api: Any, app_id: int | str) -> list[dict]:
    """List every action definition of the app, following ``paging.next.after``."""
    found: list[dict] = []
    after = None
    while True:
        kwargs = {"after": after} if after else {}
        page = json.loads(api.get_page(app_id, _preload_content=False, **kwargs).data)
        found += page.get("results", [])
        after = ((page.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return found
