"""Flags and owner tasks written back to HubSpot."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from connectors.base import FlagUpdate, OwnerTask
from connectors.hubspot.client import BATCH_SIZE, Api, chunks
from connectors.hubspot.errors import ApiError, OutcomeUnknown
from connectors.hubspot.records import OUTPUT_PROPERTIES, today_iso

TASK_TO_CONTACT = 204  # HubSpot-defined association type: task → contact
KEY_LINE = "Contact Guard key: "
CREATE_ATTEMPTS = 3  # creates whose answer was lost, looked up and sent again at most this often
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


@dataclass
class TaskOutcome:
    """What became of a batch of owner tasks.

    ``failed`` lines name records whose tasks may succeed on a later run
    (HubSpot never confirmed them); ``skipped`` lines name tasks HubSpot
    refused for good (an owner or a contact it rejects), said once and not
    tried again. Both start with the contact id.
    """

    created: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def existing_keys(api: Api, contact_ids: Sequence[str]) -> set[str]:
    """Read the dedupe keys of the tasks already associated with these contacts."""
    existing_tasks = api.associations("contacts", "tasks", contact_ids)
    task_ids = sorted({t for ids in existing_tasks.values() for t in ids})
    known: set[str] = set()
    if task_ids:
        for record in api.batch_read("tasks", task_ids, ["hs_task_body"]).values():
            body = (record.get("properties") or {}).get("hs_task_body") or ""
            known.update(m.group(1) for m in _KEY.finditer(body))
    return known


def _task_input(task: OwnerTask, owner: str | None, now: datetime) -> dict:
    properties = {
        "hs_task_subject": task.subject,
        "hs_task_body": f"{task.description}\n\n{KEY_LINE}{task.dedupe_key}",
        "hs_timestamp": today_iso(task.due or now),
        "hs_task_status": "NOT_STARTED",
        "hs_task_type": "TODO",
    }
    if owner:
        properties["hubspot_owner_id"] = str(owner)
    return {
        "properties": properties,
        "associations": [
            {
                "to": {"id": str(task.record_id)},
                "types": [
                    {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": TASK_TO_CONTACT}
                ],
            }
        ],
    }


def _create(api: Api, inputs: dict[str, dict], keys: Sequence[str], tasks: dict,
            outcome: TaskOutcome, uncertain: list[str]) -> None:
    """Create the tasks of ``keys``; a batch HubSpot refuses is split to find the bad input.

    A refused batch created nothing, so its halves can be sent again safely;
    a single refused task is skipped and said so. Keys of a batch whose
    answer was lost go to ``uncertain``.
    """
    try:
        outcome.created += len(api.batch_create("tasks", [inputs[k] for k in keys]))
    except OutcomeUnknown:
        uncertain.extend(keys)
    except ApiError as exc:
        if exc.status != 400:
            raise
        if len(keys) == 1:
            task = tasks[keys[0]]
            outcome.skipped.append(
                f"{task.record_id}: HubSpot refused task {task.dedupe_key!r}: {exc.detail}"
            )
            return
        half = len(keys) // 2
        _create(api, inputs, keys[:half], tasks, outcome, uncertain)
        _create(api, inputs, keys[half:], tasks, outcome, uncertain)


def create_tasks(api: Api, tasks: Sequence[OwnerTask], now: datetime) -> TaskOutcome:
    """Create each owner task once as a HubSpot task on its contact.

    A task carries its dedupe key on the last line of its body; the tasks
    already associated with the contact are read first, so running the same
    tasks again creates nothing. A create whose answer was lost is not sent
    again blindly: the contacts' tasks are read again and only the ones still
    missing are created, up to ``CREATE_ATTEMPTS`` times.
    """
    outcome = TaskOutcome()
    unique: dict[str, OwnerTask] = {}
    for task in tasks:
        unique.setdefault(task.dedupe_key, task)
    if not unique:
        return outcome
    contact_ids = sorted({str(t.record_id) for t in unique.values()}, key=str)
    known = existing_keys(api, contact_ids)
    todo = {key: task for key, task in unique.items() if key not in known}
    if not todo:
        return outcome
    contacts = api.batch_read(
        "contacts", sorted({str(t.record_id) for t in todo.values()}), ["hubspot_owner_id"]
    )
    inputs: dict[str, dict] = {}
    for key, task in todo.items():
        contact = contacts.get(str(task.record_id))
        if contact is None:
            outcome.skipped.append(f"{task.record_id}: no such contact (deleted or merged away)")
            continue
        owner = task.owner or (contact.get("properties") or {}).get("hubspot_owner_id")
        inputs[key] = _task_input(task, owner, now)
    remaining = list(inputs)
    for _ in range(CREATE_ATTEMPTS):
        uncertain: list[str] = []
        for part in chunks(remaining, BATCH_SIZE):
            _create(api, inputs, part, todo, outcome, uncertain)
        if not uncertain:
            return outcome
        # Some of these may exist now: look, and create only what is still missing.
        found = existing_keys(api, sorted({str(todo[k].record_id) for k in uncertain}))
        outcome.created += sum(1 for key in uncertain if key in found)
        remaining = [key for key in uncertain if key not in found]
        if not remaining:
            return outcome
    for key in remaining:
        outcome.failed.append(
            f"{todo[key].record_id}: HubSpot did not confirm task {key!r}; tried again next run"
        )
    return outcome


# Communication preferences v4: write a contact's email subscription statuses.
STATUS_WRITE = "/communication-preferences/v4/statuses/batch/write"
# A subscription set from the customer's own choice on the guard's preference page.
CUSTOMER_CHOICE = "Set by the customer on the Contact Guard preference page"


@dataclass(frozen=True)
class PreferenceWrite:
    """A person's stated preferences for one contact.

    ``values`` holds person fields (preferred_channel, contact_hours,
    do_not_market_until) with the value to hold; ``subscriptions`` maps a
    subscription id to ``SUBSCRIBED`` or ``UNSUBSCRIBED`` for ``email``.
    """

    record_id: str
    email: str | None
    values: dict = field(default_factory=dict)
    subscriptions: dict = field(default_factory=dict)


def write_preferences(api: Api, mapping, updates: Sequence[PreferenceWrite]
                      ) -> tuple[int, list[str]]:
    """Write changed preference properties and subscription statuses; return (count, ids)."""
    latest = {str(u.record_id): u for u in updates}
    if not latest:
        return 0, []
    names = {name: props[0] for name, props in (mapping.contact_fields or {}).items() if props}
    current = api.batch_read("contacts", list(latest), sorted(set(names.values())))
    inputs, written = [], 0
    statuses = []
    for record_id, update in latest.items():
        record = current.get(record_id)
        if record is None:  # deleted or merged away since
            continue
        props = record.get("properties") or {}
        changed = {names[n]: str(v) for n, v in update.values.items()
                   if n in names and v not in (None, "") and props.get(names[n]) != str(v)}
        if changed:
            inputs.append({"id": record_id, "properties": changed})
        if update.email:
            for subscription, state in update.subscriptions.items():
                status = {"channel": "EMAIL", "statusState": state,
                          "subscriberIdString": update.email,
                          "subscriptionId": int(subscription)}
                if state == "SUBSCRIBED":
                    status.update(legalBasis="CONSENT_WITH_NOTICE",
                                  legalBasisExplanation=CUSTOMER_CHOICE)
                statuses.append((record_id, status))
    if inputs:
        written += api.batch_update("contacts", inputs)
    for part in chunks(statuses, BATCH_SIZE):
        api.post(STATUS_WRITE, {"inputs": [status for _, status in part]})
    ids = list(dict.fromkeys([i["id"] for i in inputs] + [r for r, _ in statuses]))
    return written + len(statuses), ids
