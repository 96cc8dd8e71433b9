"""Write-back: guard status and flags onto Contacts and Leads, owner Tasks onto the record.

Both go through sObject Collections (``composite/sobjects``, 200 records a
call). Flags are compared with what the record holds now and written only when
they differ, so a sync that reads our own write back sees nothing new to do.
Tasks carry their dedupe key in an external-id field that Salesforce keeps
unique, so even two replicas racing create a task once.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC
from typing import Any, TypeVar

from simple_salesforce import Salesforce

from connectors.base import FlagUpdate, OwnerTask
from connectors.salesforce.client import Api
from connectors.salesforce.streams import GUARD_TASK_PREFIX, PERSON_PREFIXES

T = TypeVar("T")

COLLECTION_SIZE = 200  # sObject Collections take at most 200 records a call
IDS_PER_QUERY = 200
KEYS_PER_QUERY = 100  # keys are longer than ids; keeps the GET query URL short
STATUS_FIELD = "Guard_Status__c"
FLAGS_FIELD = "Guard_Flags__c"
UPDATED_FIELD = "Guard_Updated__c"
DEDUPE_FIELD = "Guard_Dedupe_Key__c"
FLAGS_LENGTH = 32768  # the Long Text Area the installer creates
RECORD_ID = re.compile(r"^[A-Za-z0-9]{15}([A-Za-z0-9]{3})?$")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Split items into consecutive slices of at most size."""
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _quoted(values: Iterable[str]) -> str:
    return ", ".join("'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
                     for value in values)


def _object_type(record_id: str, given: str | None) -> str | None:
    if not RECORD_ID.match(record_id):
        return None
    return given or PERSON_PREFIXES.get(record_id[:3])


def _flags_text(flags: Sequence[str]) -> str:
    return "\n".join(flag.replace("\n", " ") for flag in flags)[:FLAGS_LENGTH]


def _same_text(held: Any, wanted: str) -> bool:
    return (held or "").replace("\r\n", "\n") == wanted


def _send(sf: Salesforce, api: Api, method: str, records: list[dict]) -> list[dict]:
    response = api.call(sf.restful, "composite/sobjects", method=method,
                        json={"allOrNone": False, "records": records})
    return list(response or [])


def write_flags(sf: Salesforce, api: Api, updates: Sequence[FlagUpdate]) -> tuple[int, list[str]]:
    """Write changed status and flags; return records written and per-record errors."""
    errors: list[str] = []
    latest: dict[str, tuple[str, FlagUpdate]] = {}
    for update in updates:
        object_type = _object_type(update.record_id, update.object_type)
        if object_type is None:
            errors.append(f"{update.record_id}: not a Salesforce Contact or Lead id")
            continue
        latest[update.record_id] = (object_type, update)
    written = 0
    by_type: dict[str, list[FlagUpdate]] = {}
    for object_type, update in latest.values():
        by_type.setdefault(object_type, []).append(update)
    for object_type, group in by_type.items():
        changed: list[dict] = []
        for part in chunks(group, IDS_PER_QUERY):
            held = {
                record["Id"]: record
                for record in api.call(
                    sf.query_all,
                    f"SELECT Id, {STATUS_FIELD}, {FLAGS_FIELD} FROM {object_type} "
                    f"WHERE Id IN ({_quoted(update.record_id for update in part)})",
                )["records"]
            }
            for update in part:
                record = _held(held, update.record_id)
                if record is None:
                    errors.append(f"{update.record_id}: no such {object_type} (deleted?)")
                    continue
                flags = _flags_text(update.flags)
                if record.get(STATUS_FIELD) == update.status and _same_text(
                        record.get(FLAGS_FIELD), flags):
                    continue
                changed.append({
                    "attributes": {"type": object_type},
                    "Id": record["Id"],
                    STATUS_FIELD: update.status,
                    FLAGS_FIELD: flags,
                    UPDATED_FIELD: update.updated.astimezone(UTC)
                    .strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                })
        for part in chunks(changed, COLLECTION_SIZE):
            for record, result in zip(part, _send(sf, api, "PATCH", list(part)), strict=False):
                if result.get("success"):
                    written += 1
                else:
                    errors.append(f"{record['Id']}: {_errors(result)}")
    return written, errors


def _held(held: dict[str, dict], record_id: str) -> dict | None:
    # Salesforce answers with 18-character ids; callers may hold the 15-character form.
    if record_id in held:
        return held[record_id]
    return next((record for key, record in held.items() if key[:15] == record_id[:15]), None)


def _errors(result: dict) -> str:
    return "; ".join(f"{error.get('statusCode')}: {error.get('message')}"
                     for error in result.get("errors") or []) or "failed"


def dedupe_value(key: str) -> str:
    """Fit a dedupe key into the 255-character external-id field."""
    if len(key) <= 255:
        return key
    return "sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def create_tasks(sf: Salesforce, api: Api, tasks: Sequence[OwnerTask]) -> tuple[int, list[str]]:
    """Create the Tasks not created before; return tasks created and per-task errors."""
    errors: list[str] = []
    pending: dict[str, OwnerTask] = {}
    for task in tasks:
        if _object_type(task.record_id, task.object_type) is None:
            errors.append(f"{task.record_id}: not a Salesforce Contact or Lead id")
            continue
        pending.setdefault(dedupe_value(task.dedupe_key), task)
    keys = list(pending)
    for part in chunks(keys, KEYS_PER_QUERY):
        existing = api.call(
            sf.query_all,
            f"SELECT {DEDUPE_FIELD} FROM Task WHERE {DEDUPE_FIELD} IN ({_quoted(part)})",
        )["records"]
        for record in existing:
            pending.pop(record[DEDUPE_FIELD], None)
    owners = _record_owners(sf, api, [task for task in pending.values() if not task.owner])
    records = []
    for key, task in pending.items():
        owner = task.owner or owners.get(task.record_id[:15])
        record: dict[str, Any] = {
            "attributes": {"type": "Task"},
            "WhoId": task.record_id,
            "Subject": _subject(task.subject),
            "Description": task.description,
            DEDUPE_FIELD: key,
        }
        if owner:
            record["OwnerId"] = owner
        if task.due is not None:
            record["ActivityDate"] = task.due.date().isoformat()
        records.append(record)
    created = 0
    for part in chunks(records, COLLECTION_SIZE):
        for record, result in zip(part, _send(sf, api, "POST", list(part)), strict=False):
            if result.get("success"):
                created += 1
            elif not any(error.get("statusCode") == "DUPLICATE_VALUE"
                         for error in result.get("errors") or []):
                # DUPLICATE_VALUE: another run created this task a moment ago.
                errors.append(f"{record['WhoId']}: {_errors(result)}")
    return created, errors


def _subject(subject: str) -> str:
    """Mark the task as the guard's (the Task stream skips these), exactly once."""
    if not subject.startswith(GUARD_TASK_PREFIX):
        subject = f"{GUARD_TASK_PREFIX} {subject}"
    return subject[:255]


def _record_owners(sf: Salesforce, api: Api, tasks: Sequence[OwnerTask]) -> dict[str, str]:
    """Find the user who owns each record; records owned by a queue get none."""
    by_type: dict[str, list[str]] = {}
    for task in tasks:
        object_type = _object_type(task.record_id, task.object_type)
        if object_type:
            by_type.setdefault(object_type, []).append(task.record_id)
    owners: dict[str, str] = {}
    for object_type, ids in by_type.items():
        for part in chunks(sorted(set(ids)), IDS_PER_QUERY):
            for record in api.call(
                sf.query_all,
                f"SELECT Id, OwnerId FROM {object_type} WHERE Id IN ({_quoted(part)})",
            )["records"]:
                # Tasks can only be assigned to users (005...), never to queues.
                if (record.get("OwnerId") or "").startswith("005"):
                    owners[record["Id"][:15]] = record["OwnerId"]
    return owners
