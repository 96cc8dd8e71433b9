"""Write-back: guard status and flags onto Contacts and Leads, owner Tasks onto the record.

Both go through sObject Collections (``composite/sobjects``, 200 records a
call). Flags are compared with what the record holds now and written only when
they differ, so a sync that reads our own write back sees nothing new to do.
Tasks carry their dedupe key in an indexed external-id field; Activity fields
cannot be unique, so ``create_tasks`` keeps the key unique itself.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any, TypeVar

from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceMalformedRequest

from connectors.base import FlagUpdate, OwnerTask
from connectors.salesforce.client import Api, error_code, error_message
from connectors.salesforce.errors import OutcomeUnknown
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


# Per-record answers that no retry changes: the record is skipped and said so, once.
PERMANENT = {
    "CANNOT_UPDATE_CONVERTED_LEAD": "the Lead was converted; its Contact carries the person on",
    "ENTITY_IS_DELETED": "the record is in the recycle bin",
    "INVALID_CROSS_REFERENCE_KEY": "no such record (deleted and purged?)",
    "MALFORMED_ID": "not a Salesforce record id",
}
CREATE_ATTEMPTS = 3  # creates whose answer was lost, looked up and sent again at most this often


@dataclass
class WriteOutcome:
    """What became of one write-back: records written, and the ones that were not.

    ``failed`` lines name records worth another try next run; ``skipped``
    lines name records Salesforce refused for good. Both start with the id.
    """

    done: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def refused(self, record_id: str, result: dict) -> None:
        """File a record Salesforce answered with errors under failed or skipped."""
        codes = [error.get("statusCode") for error in result.get("errors") or []]
        permanent = next((code for code in codes if code in PERMANENT), None)
        if permanent:
            self.skipped.append(f"{record_id}: {permanent}: {PERMANENT[permanent]}")
        else:
            self.failed.append(f"{record_id}: {_errors(result)}")


def _send(sf: Salesforce, api: Api, method: str, records: Sequence[dict], ids: Sequence[str],
          outcome: WriteOutcome, *, create: bool = False) -> list[dict] | None:
    """Send one collection; return its per-record results, or None when refused whole.

    Salesforce answers a request it cannot run at all (a field the object
    lacks or the integration user cannot see: INVALID_FIELD) with one 400 for
    every record; each record is reported as failed, to be tried again once
    the org is fixed.
    """
    call = api.create if create else api.call
    try:
        response = call(sf.restful, "composite/sobjects", method=method,
                        json={"allOrNone": False, "records": list(records)})
    except SalesforceMalformedRequest as exc:
        code = error_code(exc) or "MALFORMED_REQUEST"
        hint = (" (run guard install salesforce and assign the Contact_Guard_Integration "
                "permission set)" if code == "INVALID_FIELD" else "")
        for record_id in ids:
            outcome.failed.append(f"{record_id}: {code}: {error_message(exc)}{hint}")
        return None
    return list(response or [])


def write_flags(sf: Salesforce, api: Api, updates: Sequence[FlagUpdate]) -> WriteOutcome:
    """Write changed status and flags; say which records were not written and why."""
    outcome = WriteOutcome()
    latest: dict[str, tuple[str, FlagUpdate]] = {}
    for update in updates:
        object_type = _object_type(update.record_id, update.object_type)
        if object_type is None:
            outcome.skipped.append(f"{update.record_id}: not a Salesforce Contact or Lead id")
            continue
        latest[update.record_id] = (object_type, update)
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
                    outcome.skipped.append(f"{update.record_id}: no such {object_type} (deleted?)")
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
        parts = list(chunks(changed, COLLECTION_SIZE))
        for n, part in enumerate(parts):
            ids = [record["Id"] for record in part]
            results = _send(sf, api, "PATCH", part, ids, outcome)
            if results is None:
                # The same fields go to every record of this type: the rest fail alike.
                for rest in parts[n + 1:]:
                    outcome.failed += [f"{record['Id']}: not sent, as the request before it "
                                       "was refused" for record in rest]
                break
            for record_id, result in zip(ids, results, strict=False):
                if result.get("success"):
                    outcome.done += 1
                else:
                    outcome.refused(record_id, result)
    return outcome


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


def _existing(sf: Salesforce, api: Api, keys: Sequence[str]) -> dict[str, list[str]]:
    """Find the live Tasks holding each dedupe key, oldest first."""
    found: dict[str, list[str]] = {}
    for part in chunks(list(keys), KEYS_PER_QUERY):
        for record in api.call(
            sf.query_all,
            f"SELECT Id, {DEDUPE_FIELD} FROM Task WHERE {DEDUPE_FIELD} IN ({_quoted(part)}) "
            "ORDER BY CreatedDate ASC, Id ASC",
        )["records"]:
            found.setdefault(record[DEDUPE_FIELD], []).append(record["Id"])
    return found


def _task_record(key: str, task: OwnerTask, owner: str | None) -> dict[str, Any]:
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
    return record


def create_tasks(sf: Salesforce, api: Api, tasks: Sequence[OwnerTask]) -> WriteOutcome:
    """Create the Tasks not created before; say which were not created and why.

    Activity fields cannot be unique, so the key is kept unique here: Tasks
    holding it are looked for before creating; a create whose answer was lost
    is looked for again rather than sent again blindly; and when two runs
    raced, the younger copies are deleted, keeping the oldest Task of a key.
    """
    outcome = WriteOutcome()
    pending: dict[str, OwnerTask] = {}
    for task in tasks:
        if _object_type(task.record_id, task.object_type) is None:
            outcome.skipped.append(f"{task.record_id}: not a Salesforce Contact or Lead id")
            continue
        pending.setdefault(dedupe_value(task.dedupe_key), task)
    existing = _existing(sf, api, list(pending))
    todo = {key: task for key, task in pending.items() if key not in existing}
    owners = _record_owners(sf, api, [task for task in todo.values() if not task.owner])
    records = {key: _task_record(key, task, task.owner or owners.get(task.record_id[:15]))
               for key, task in todo.items()}
    ours: dict[str, str] = {}  # key -> the id of the Task this run created or found for it
    remaining = list(records)
    for _ in range(CREATE_ATTEMPTS):
        uncertain: list[str] = []
        for part in chunks(remaining, COLLECTION_SIZE):
            ids = [todo[key].record_id for key in part]
            try:
                results = _send(sf, api, "POST", [records[key] for key in part], ids, outcome,
                                create=True)
            except OutcomeUnknown:
                uncertain += part
                continue
            for key, result in zip(part, results or (), strict=False):
                if result.get("success"):
                    ours[key] = result["id"]
                else:
                    outcome.refused(todo[key].record_id, result)
        if not uncertain:
            remaining = []
            break
        # The answer was lost, not necessarily the Tasks: look before creating again.
        found = _existing(sf, api, uncertain)
        ours.update({key: found[key][0] for key in uncertain if key in found})
        remaining = [key for key in uncertain if key not in found]
        if not remaining:
            break
    for key in remaining:
        outcome.failed.append(f"{todo[key].record_id}: Salesforce did not confirm Task {key!r}")
    outcome.done = _keep_oldest(sf, api, ours)
    return outcome


def _keep_oldest(sf: Salesforce, api: Api, ours: dict[str, str]) -> int:
    """Delete younger Tasks of keys another run created too; return how many of ours remain."""
    if not ours:
        return 0
    found = _existing(sf, api, list(ours))
    extra = [task_id for ids in found.values() for task_id in ids[1:]]
    for part in chunks(extra, COLLECTION_SIZE):
        api.call(sf.restful, "composite/sobjects", method="DELETE",
                 params={"ids": ",".join(part), "allOrNone": "false"})
    return sum(1 for key, task_id in ours.items() if found.get(key, [None])[0] == task_id)


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


# The customer's own choices, written in Salesforce's standard opt-out checkboxes.
OPT_OUT_FIELDS = {"email": "HasOptedOutOfEmail", "call": "DoNotCall"}


@dataclass(frozen=True)
class PreferenceWrite:
    """A person's stated preferences for one Contact or Lead.

    ``values`` holds person fields (preferred_channel, contact_hours,
    do_not_market_until) with the value to hold; ``opt_outs`` says per channel
    (email, call) whether the standard opt-out checkbox is to be ticked.
    """

    record_id: str
    values: Mapping[str, Any]
    opt_outs: Mapping[str, bool]
    object_type: str | None = None


def _preference_fields(mapping, object_type: str) -> dict[str, str]:
    """Person field -> the Salesforce field it is read from first, for this object."""
    section = mapping.contact if object_type == "Contact" else mapping.lead
    return {name: names[0] for name, names in (section.get("fields") or {}).items() if names}


def write_preferences(sf: Salesforce, api: Api, mapping,
                      updates: Sequence[PreferenceWrite]) -> WriteOutcome:
    """Write changed preference fields and opt-out checkboxes; say what was not written."""
    outcome = WriteOutcome()
    by_type: dict[str, dict[str, PreferenceWrite]] = {}
    for update in updates:
        object_type = _object_type(update.record_id, update.object_type)
        if object_type is None:
            outcome.skipped.append(f"{update.record_id}: not a Salesforce Contact or Lead id")
            continue
        by_type.setdefault(object_type, {})[update.record_id] = update
    for object_type, group in by_type.items():
        names = _preference_fields(mapping, object_type)
        wanted = [names[f] for f in ("preferred_channel", "contact_hours",
                                     "do_not_market_until") if f in names]
        columns = ", ".join(dict.fromkeys(["Id", *wanted, *OPT_OUT_FIELDS.values()]))
        changed: list[dict] = []
        for part in chunks(list(group.values()), IDS_PER_QUERY):
            held = {record["Id"]: record for record in api.call(
                sf.query_all, f"SELECT {columns} FROM {object_type} "
                              f"WHERE Id IN ({_quoted(u.record_id for u in part)})")["records"]}
            for update in part:
                record = _held(held, update.record_id)
                if record is None:
                    outcome.skipped.append(f"{update.record_id}: no such {object_type} (deleted?)")
                    continue
                fields: dict[str, Any] = {}
                for name, value in update.values.items():
                    column = names.get(name)
                    if column and value not in (None, "") and record.get(column) != value:
                        fields[column] = value
                for channel, out in update.opt_outs.items():
                    column = OPT_OUT_FIELDS.get(channel)
                    if column and bool(record.get(column)) != out:
                        fields[column] = out
                if fields:
                    changed.append({"attributes": {"type": object_type}, "Id": record["Id"],
                                    **fields})
        for part in chunks(changed, COLLECTION_SIZE):
            ids = [record["Id"] for record in part]
            results = _send(sf, api, "PATCH", part, ids, outcome)
            for record_id, result in zip(ids, results or (), strict=False):
                if result.get("success"):
                    outcome.done += 1
                else:
                    outcome.refused(record_id, result)
    return outcome
