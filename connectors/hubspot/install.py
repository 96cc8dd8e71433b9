"""The plugin's contact properties (SPEC §9), created idempotently."""

from __future__ import annotations

from connectors.hubspot.client import Api

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
