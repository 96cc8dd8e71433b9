"""Flags and owner tasks written back to HubSpot."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime

from connectors.base import FlagUpdate, OwnerTask
from connectors.hubspot.client import Api
from connectors.hubspot.records import OUTPUT_PROPERTIES, today_iso

TASK_TO_CONTACT = 204  # HubSpot-defined association type: task → contact
KEY_LINE = "Contact Guard key: "
_KEY = re.compile(r"^" + re.escape(KEY_LINE) + r"(.+?)\s*$", re.MULTILINE)


def flags_text(flags: Sequence[str]) -> str:
    """Render flags as the multi-line text property, one flag per line."""
    return "\n".join(line.strip() for line in flags if line.strip())


def write_flags(api: Api, updates: Sequence[FlagUpdate]) -> tuple[int, list[str]]:
    """Write status and flags of contacts whose values differ; return (count, ids written).

    The current values are read first so an unchanged contact is not
    touched: every write bumps the record's modification time and would
    wake every other integration watching the portal.
    """
    latest: dict[str, FlagUpdate] = {}
    for update in updates:
        latest[str(update.record_id)] = update
    if not latest:
        return 0, []
    current = api.batch_read("contacts", list(latest), list(OUTPUT_PROPERTIES))
    inputs = []
    for record_id, update in latest.items():
        record = current.get(record_id)
        if record is None:  # deleted or merged away since the flags were computed
            continue
        props = record.get("properties") or {}
        text = flags_text(update.flags)
        if props.get("guard_status") == update.status and (props.get("guard_flags") or "") == text:
            continue
        inputs.append(
            {
                "id": record_id,
                "properties": {
                    "guard_status": update.status,
                    "guard_flags": text,
                    "guard_updated": today_iso(update.updated),
                },
            }
        )
    written = api.batch_update("contacts", inputs) if inputs else 0
    return written, [i["id"] for i in inputs]


def create_tasks(api: Api, tasks: Sequence[OwnerTask], now: datetime) -> int:
    """Create each owner task once as a HubSpot task on its contact; return how many were new.

    A task carries its dedupe key on the last line of its body; the tasks
    already associated with the contact are read first, so running the same
    tasks again creates nothing.
    """
    unique: dict[str, OwnerTask] = {}
    for task in tasks:
        unique.setdefault(task.dedupe_key, task)
    if not unique:
        return 0
    contact_ids = sorted({str(t.record_id) for t in unique.values()}, key=str)
    existing_tasks = api.associations("contacts", "tasks", contact_ids)
    task_ids = sorted({t for ids in existing_tasks.values() for t in ids})
    known: set[str] = set()
    if task_ids:
        for record in api.batch_read("tasks", task_ids, ["hs_task_body"]).values():
            body = (record.get("properties") or {}).get("hs_task_body") or ""
            known.update(m.group(1) for m in _KEY.finditer(body))
    todo = [t for key, t in unique.items() if key not in known]
    if not todo:
        return 0
    contacts = api.batch_read(
        "contacts", sorted({str(t.record_id) for t in todo}), ["hubspot_owner_id"]
    )
    inputs = []
    for task in todo:
        contact = contacts.get(str(task.record_id))
        if contact is None:
            continue
        owner = task.owner or (contact.get("properties") or {}).get("hubspot_owner_id")
        properties = {
            "hs_task_subject": task.subject,
            "hs_task_body": f"{task.description}\n\n{KEY_LINE}{task.dedupe_key}",
            "hs_timestamp": today_iso(task.due or now),
            "hs_task_status": "NOT_STARTED",
            "hs_task_type": "TODO",
        }
        if owner:
            properties["hubspot_owner_id"] = str(owner)
        inputs.append(
            {
                "properties": properties,
                "associations": [
                    {
                        "to": {"id": str(task.record_id)},
                        "types": [
                            {
                                "associationCategory": "HUBSPOT_DEFINED",
                                "associationTypeId": TASK_TO_CONTACT,
                            }
                        ],
                    }
                ],
            }
        )
    return len(api.batch_create("tasks", inputs)) if inputs else 0
