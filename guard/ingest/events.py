"""Validate the events of SPEC §6, one at a time, into normalised records.

``parse_event(raw, policy)`` either returns an ``Event`` whose fields are
normalised (emails lower-cased, phones in E.164, times in ISO 8601 UTC) or
raises ``InvalidField`` naming the field, e.g. ``purchase.at: not a date:
'not a date'``. Any event may carry ``"deleted": true`` to retract the record
with that source (connectors send these for deleted or archived CRM records).
``ingest(conn, events, policy, now, salt)`` stores a batch: each event whole
or not at all (every check that can refuse an event runs before its first
write, so no savepoint is needed), the valid rest of the batch kept, and each
touched person's profile rebuilt once at the end. The records, identities and
accounts a batch names are read in a few queries up front, and its new rows
are written together.
"""

from __future__ import annotations

import gc
import hashlib
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from guard.errors import InvalidField
from guard.ingest import erasure
from guard.ingest.identity import (
    ID_MAX,
    SENDER_MAX,
    Ref,
    address,
    crm_refs,
    erasure_hash,
    identifier,
    normalize_email,
    normalize_phone,
    reference,
    source_ref,
)
from guard.store.codec import dumps_json, loads_json
from guard.store.ledger import delete_touch, new_touch_row, upsert_touch
from guard.store.tables import (
    accounts,
    campaigns,
    erasures,
    identities,
    ledger,
    owner_tasks,
    people,
    person_aliases,
    records,
)
from policies.model import (
    CATEGORIES,
    CHANNELS,
    Account,
    Campaign,
    Evidence,
    parse_date,
    parse_datetime,
)

STAGES = ("prospect", "opportunity", "customer")
CONSENT_STATUSES = ("opt_in", "opt_out")


@dataclass(frozen=True)
class Source:
    """Where an event's record lives: system, record type (optional) and id."""

    system: str
    type: str
    id: str

    @property
    def key(self) -> str:
        return f"{self.system}:{self.type}:{self.id}"

    def to_dict(self) -> dict:
        out = {"system": self.system, "id": self.id}
        if self.type:
            out["type"] = self.type
        return out


@dataclass(frozen=True)
class Event:
    """One validated event: its type, source, normalised fields and references."""

    type: str
    source: Source
    fields: dict = field(default_factory=dict)
    deleted: bool = False
    person: Ref | None = None  # whom a fact is about (kind "email"/"phone" for bare consents)
    account: Ref | None = None  # the account it is about (a source reference)
    identities: tuple[Ref, ...] = ()  # person events: every identity the record states

    @property
    def evidence(self) -> Evidence:
        """Name the source record; one sent without a record type is named by the event's."""
        return Evidence(self.source.system, self.source.type or self.type, self.source.id)


# --- field converters: each returns the normalised value or raises ValueError -------------


def _text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"expected text, got {value!r}")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    return text


def _sender(value: Any) -> str:
    return identifier(value, SENDER_MAX)


def _id(value: Any) -> str:
    return identifier(value, ID_MAX)


def _datetime(value: Any) -> str:
    try:
        parsed = parse_datetime(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None:
        raise ValueError(f"not a date: {value!r}")
    return parsed.astimezone(UTC).isoformat()


def _date(value: Any) -> str:
    try:
        parsed = parse_date(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None:
        raise ValueError(f"not a date: {value!r}")
    return parsed.isoformat()


def _number(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"not a number: {value!r}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"not a number: {value!r}")
    return number


def _integer(value: Any) -> int:
    number = _number(value)
    if number != int(number):
        raise ValueError(f"not a whole number: {value!r}")
    return int(number)


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    raise ValueError(f"expected true or false, got {value!r}")


def _one_of(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return convert


def _timezone(value: Any) -> str:
    text = _text(value)
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"not a time zone: {value!r}") from None
    return text


def _hours(value: Any) -> str:
    text = _text(value)
    parts = text.replace(" ", "").split("-")
    try:
        if len(parts) != 2:
            raise ValueError
        for part in parts:
            hours, minutes = part.split(":")
            if not (0 <= int(hours) <= 24 and 0 <= int(minutes) < 60):
                raise ValueError
    except ValueError:
        raise ValueError(f"expected hours like '09:00-18:00', got {value!r}") from None
    return "-".join(parts)


def _cel(value: Any) -> str:
    from policies.cel import Condition

    text = _text(value)
    Condition(text)
    return text


def _list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (str, int)):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list, got {value!r}")
    return [v for v in value if v not in (None, "")]


# Optional fields of each type and their converters; references and required
# fields are handled in the parsers below.
FIELDS: dict[str, dict[str, Callable[[Any], Any]]] = {
    "person": {"name": _text, "stage": _one_of(*STAGES), "owner": _sender,
               "timezone": _timezone, "preferred_channel": _one_of(*CHANNELS),
               "contact_hours": _hours, "replacement_cycle_years": _number,
               "do_not_market_until": _date},
    "account": {"name": _text, "domain": _text, "owner": _sender},
    "purchase": {"product": _id, "category": _text, "at": _datetime, "amount": _number,
                 "currency": _text},
    "contract": {"status": _text, "start": _date, "end": _date, "owner": _sender,
                 "product": _id},
    "consent": {"at": _datetime},
    "case": {"status": _one_of("open", "closed"), "owner": _sender, "subject": _text,
             "at": _datetime},
    "service": {"asset": _text, "at": _datetime, "mileage": _integer, "next_due": _date,
                "next_due_mileage": _integer},
    "invoice": {"number": _text, "sent_at": _datetime, "due": _date, "paid_at": _datetime,
                "amount": _number},
    "touch": {"channel": _one_of(*CHANNELS), "purpose": _text, "sender": _sender,
              "at": _datetime, "campaign": _id, "template": _id, "product": _id},
    "campaign": {"id": _id, "purpose": _text, "offer": _text, "eligible_when": _cel,
                 "starts": _datetime, "ends": _datetime, "notify_owner": _bool},
    "erase": {},
}
REQUIRED = {
    "purchase": ("at",),
    "contract": ("status",),
    "consent": (),
    "case": ("status",),
    "touch": ("channel", "purpose", "sender", "at"),
    "campaign": ("id",),
}
# Which reference each type needs: "person", "account", "either" or "" (none).
REFERENCES = {"person": "", "account": "", "purchase": "either", "contract": "either",
              "consent": "person", "case": "person", "service": "person",
              "invoice": "either", "touch": "person", "campaign": "", "erase": "person"}
TYPES = tuple(FIELDS)


def parse_event(raw: Any, policy) -> Event:
    """Validate one event against the policy's vocabulary; raise InvalidField naming the field."""
    if not isinstance(raw, Mapping):
        raise InvalidField("event", f"expected an object, got {type(raw).__name__}")
    kind = raw.get("type")
    if not isinstance(kind, str) or kind not in FIELDS:
        raise InvalidField("type", f"unknown event type {kind!r} (known: {', '.join(TYPES)})")
    source = _source(raw.get("source"), kind)
    try:
        deleted = _bool(raw.get("deleted", False))
    except ValueError as exc:
        raise InvalidField(f"{kind}.deleted", str(exc)) from None
    if deleted:
        return Event(kind, source, deleted=True)
    region = policy.defaults.region
    fields: dict[str, Any] = {}
    for name, convert in FIELDS[kind].items():
        value = raw.get(name)
        if value is None or value == "":
            if name in REQUIRED.get(kind, ()):
                raise InvalidField(f"{kind}.{name}", "required")
            continue
        try:
            fields[name] = convert(value)
        except ValueError as exc:
            raise InvalidField(f"{kind}.{name}", str(exc)) from None
    for name in REQUIRED.get(kind, ()):
        if name not in fields:
            raise InvalidField(f"{kind}.{name}", "required")
    parse_extra = _EXTRA.get(kind)
    identities: tuple[Ref, ...] = ()
    if parse_extra:
        identities = parse_extra(kind, raw, fields, policy, source)
    person, account = _references(kind, raw, region)
    return Event(kind, source, fields, False, person, account, identities)


# The widest source system and record type the records table holds (ids: ID_MAX).
SOURCE_NAME_MAX = 64


def _source(value: Any, kind: str) -> Source:
    if not isinstance(value, Mapping):
        raise InvalidField(f"{kind}.source", "required: give {\"system\", \"id\"}")
    system, record_id = value.get("system"), value.get("id")
    if not isinstance(system, str) or not system.strip():
        raise InvalidField(f"{kind}.source.system", "required")
    if isinstance(record_id, bool) or not isinstance(record_id, (str, int)) or \
            not str(record_id).strip():
        raise InvalidField(f"{kind}.source.id", "required")
    record_type = value.get("type") or ""
    if not isinstance(record_type, str):
        raise InvalidField(f"{kind}.source.type", f"expected text, got {record_type!r}")
    parts = []
    for name, text, limit in (("system", system, SOURCE_NAME_MAX), ("id", record_id, ID_MAX),
                              ("type", record_type, SOURCE_NAME_MAX)):
        try:
            parts.append(identifier(text, limit) if str(text).strip() else "")
        except ValueError as exc:
            raise InvalidField(f"{kind}.source.{name}", str(exc)) from None
    system, record_id, record_type = parts
    return Source(system.lower(), record_type, record_id)


def _references(kind: str, raw: Mapping, region: str | None) -> tuple[Ref | None, Ref | None]:
    need = REFERENCES[kind]
    person = account = None
    if raw.get("person") not in (None, "") and need in ("person", "either"):
        try:
            person = reference(raw["person"], region)
        except ValueError as exc:
            raise InvalidField(f"{kind}.person", str(exc)) from None
    if raw.get("account") not in (None, "") and (need == "either" or kind == "person"):
        account = _account_ref(kind, raw["account"])
    if kind == "consent" and person is None:
        # An opt-out for an address we know nothing else about must still be honoured.
        for name in ("email", "phone"):
            if raw.get(name) not in (None, ""):
                try:
                    person = address(raw[name], region) if isinstance(raw[name], str) \
                        else reference({name: raw[name]}, region)
                except ValueError as exc:
                    raise InvalidField(f"consent.{name}", str(exc)) from None
                if person.kind != name:
                    raise InvalidField(f"consent.{name}", f"not an {name}: {raw[name]!r}")
                break
        if person is None:
            raise InvalidField("consent.person", "required (or a bare email or phone)")
    if need == "person" and person is None:
        raise InvalidField(f"{kind}.person", "required")
    if need == "either" and person is None and account is None:
        raise InvalidField(f"{kind}.person", "required: give person or account")
    return person, account


def _account_ref(kind: str, value: Any) -> Ref:
    if isinstance(value, Mapping) and value.get("system") and value.get("id") not in (None, ""):
        return source_ref(value["system"], value["id"])
    raise InvalidField(f"{kind}.account", f"expected {{\"system\", \"id\"}}, got {value!r}")


def _person_extra(kind: str, raw: Mapping, fields: dict, policy, source: Source
                  ) -> tuple[Ref, ...]:
    region = policy.defaults.region
    found: list[Ref] = [source_ref(source.system, source.id)]
    for name in ("emails", "phones"):
        try:
            values = _list(raw.get(name))
        except ValueError as exc:
            raise InvalidField(f"person.{name}", str(exc)) from None
        normalised = []
        kind = "email" if name == "emails" else "phone"
        for index, value in enumerate(values):
            try:
                if not isinstance(value, str):
                    raise ValueError(f"expected text, got {value!r}")
                text = normalize_email(value) if kind == "email" \
                    else normalize_phone(value, region)
            except ValueError as exc:
                raise InvalidField(f"person.{name}.{index}", str(exc)) from None
            if text not in normalised:
                normalised.append(text)
                found.append(Ref(kind, text))
        fields[name] = normalised
    try:
        crm = crm_refs(raw.get("crm_ids"))
    except ValueError as exc:
        raise InvalidField("person.crm_ids", str(exc)) from None
    fields["crm_ids"] = {}
    for ref in crm:
        system, record_id = ref.value.split(":", 1)
        fields["crm_ids"].setdefault(system, record_id)
        if ref not in found:
            found.append(ref)
    if source.system in ("salesforce", "hubspot"):
        fields["crm_ids"].setdefault(source.system, source.id)
    return tuple(found)


def _consent_extra(kind: str, raw: Mapping, fields: dict, policy, source: Source
                   ) -> tuple[Ref, ...]:
    channel = raw.get("channel")
    if channel in (None, ""):
        raise InvalidField("consent.channel", "required (a channel or '*')")
    if channel != "*" and channel not in policy.channels:
        raise InvalidField("consent.channel", f"unknown channel {channel!r} (known: "
                                              f"{', '.join(policy.channels)}, *)")
    purpose = raw.get("purpose")
    if purpose in (None, ""):
        raise InvalidField("consent.purpose", "required (a purpose, a category or '*')")
    if purpose != "*" and purpose not in policy.purposes and purpose not in CATEGORIES:
        raise InvalidField("consent.purpose", f"unknown purpose or category {purpose!r}")
    status = raw.get("status")
    if status not in CONSENT_STATUSES:
        raise InvalidField("consent.status", f"expected opt_in or opt_out, got {status!r}")
    fields.update(channel=channel, purpose=purpose, status=status)
    return ()


def _touch_extra(kind: str, raw: Mapping, fields: dict, policy, source: Source
                 ) -> tuple[Ref, ...]:
    if fields["purpose"] not in policy.purposes:
        raise InvalidField("touch.purpose", f"unknown purpose {fields['purpose']!r}")
    return ()


_EXTRA = {"person": _person_extra, "consent": _consent_extra, "touch": _touch_extra}


# --- storing ----------------------------------------------------------------------------

# Accounts and campaigns first, then people, then what refers to them; erasures last,
# so a batch that names a person and erases them leaves nothing behind.
_ORDER = {"account": 0, "campaign": 0, "person": 1, "erase": 3}
_FACT_TYPES = ("purchase", "contract", "consent", "case", "service", "invoice")


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for the block; resume it after if it ran before."""
    # A batch holds thousands of rows, events and profiles alive at once, all freed by
    # reference counting when it ends. While it runs they survive collection after
    # collection and fill the oldest generation, whose full collections (the whole
    # heap each time) took a fifth of a sync's CPU. Paused, the collector sees none.
    running = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if running:
            gc.enable()


def ingest(conn: Connection, raw_events: Sequence[Any], policy, now: datetime,
           salt: bytes | None) -> dict:
    """Store a batch of events; return ``{"accepted", "rejected": [{index, source, detail}]}``."""
    with collector_paused():
        return _ingest(conn, raw_events, policy, now, salt)


def _ingest(conn: Connection, raw_events: Sequence[Any], policy, now: datetime,
            salt: bytes | None) -> dict:
    store = _Store(conn, policy, now, salt)
    accepted = 0
    rejected = []
    order = sorted(range(len(raw_events)), key=lambda i: (_rank(raw_events[i]), i))
    parsed: list[tuple[int, Event | InvalidField]] = []
    for index in order:
        try:
            parsed.append((index, parse_event(raw_events[index], policy)))
        except InvalidField as exc:
            parsed.append((index, exc))
    store.prefetch([event for _, event in parsed if isinstance(event, Event)])
    for index, event in parsed:
        # No savepoint per event: every handler raises InvalidField before its first
        # write, so a refused event leaves nothing behind (tests pin this).
        try:
            if isinstance(event, InvalidField):
                raise event
            store.apply(event)
        except InvalidField as exc:
            raw = raw_events[index]
            source = raw.get("source") if isinstance(raw, Mapping) else None
            rejected.append({"index": index, "source": source, "detail": exc.detail})
            continue
        accepted += 1
    store.finish()
    rejected.sort(key=lambda r: r["index"])
    return {"accepted": accepted, "rejected": rejected}


def _rank(raw: Any) -> int:
    kind = raw.get("type") if isinstance(raw, Mapping) else None
    return _ORDER.get(kind, 2) if isinstance(kind, str) else 2


def new_person_id() -> str:
    """Return a fresh person id."""
    return "per_" + secrets.token_hex(10)


def account_id_for(ref: Ref) -> str:
    """Return the stable account id of an account's source reference."""
    return "acc_" + hashlib.sha256(ref.value.encode()).hexdigest()[:20]


# Built once: checks resolve a recipient on every call.
_PERSON_OR_ALIAS = sa.union_all(
    sa.select(people.c.id.label("id")).where(people.c.id == sa.bindparam("value")),
    sa.select(person_aliases.c.person_id.label("id"))
    .where(person_aliases.c.alias == sa.bindparam("value")),
)
# Many at once: the person each of a list of ids (or merged-away aliases) is now.
_PEOPLE_OR_ALIASES = sa.union_all(
    sa.select(people.c.id.label("value"), people.c.id.label("id"))
    .where(people.c.id.in_(sa.bindparam("ids", expanding=True))),
    sa.select(person_aliases.c.alias.label("value"), person_aliases.c.person_id.label("id"))
    .where(person_aliases.c.alias.in_(sa.bindparam("ids", expanding=True))),
)
_PERSON_OF_IDENTITY = sa.select(identities.c.person_id).where(
    identities.c.kind == sa.bindparam("kind"), identities.c.value == sa.bindparam("value"))


def resolve_person(conn: Connection, ref: Ref) -> str | None:
    """Return the id of the live person a reference names, or None (one query)."""
    if ref.kind == "person":
        return conn.execute(_PERSON_OR_ALIAS, {"value": ref.value}).scalar()
    return conn.execute(_PERSON_OF_IDENTITY, {"kind": ref.kind, "value": ref.value}).scalar()


def describe(ref: Ref) -> str:
    """Say what a reference named, for an error message."""
    return {"email": "email", "phone": "phone", "ref": "id", "person": "person"}[ref.kind] + \
        f" {ref.value}"


_ERASED_FIELD = {"email": "emails", "phone": "phones", "ref": "crm_ids"}

# Built once: a sync stores thousands of events a batch, and building a statement
# costs more than running it.
_RECORD = sa.select(records).where(
    records.c.source_system == sa.bindparam("system"),
    records.c.source_type == sa.bindparam("source_type"),
    records.c.source_id == sa.bindparam("source_id"),
    records.c.type == sa.bindparam("record_type"))
_INSERT_RECORD = sa.insert(records)
_UPDATE_RECORD = sa.update(records).where(records.c.id == sa.bindparam("record_id"))
_ERASED = sa.select(erasures.c.hash, erasures.c.erased_at).where(
    erasures.c.hash.in_(sa.bindparam("hashes", expanding=True)))
_ANY_ERASURE = sa.select(erasures.c.hash).limit(1)
# One kind at a time: the primary key (kind, value) finds a list of values of one kind,
# where a list of values alone scans every identity.
_PEOPLE_OF = sa.select(identities.c.kind, identities.c.value, identities.c.person_id).where(
    identities.c.kind == sa.bindparam("kind"),
    identities.c.value.in_(sa.bindparam("values", expanding=True)))
_ACCOUNT_EXISTS = sa.select(accounts.c.id).where(accounts.c.id == sa.bindparam("account_id"))
_INSERT_PERSON = sa.insert(people)
_INSERT_IDENTITY = sa.insert(identities)
_INSERT_ACCOUNT = sa.insert(accounts)


# One (system, record type, event type) at a time: SQLite searches the unique source index
# for a list of ids, where a list of whole (system, type, id, event type) rows scans.
_RECORDS_OF = sa.select(records).where(
    records.c.source_system == sa.bindparam("system"),
    records.c.source_type == sa.bindparam("source_type"),
    records.c.source_id.in_(sa.bindparam("ids", expanding=True)),
    records.c.type == sa.bindparam("record_type"))
_ACCOUNTS_EXIST = sa.select(accounts.c.id).where(
    accounts.c.id.in_(sa.bindparam("ids", expanding=True)))
_TOUCHES_EXIST = sa.select(ledger.c.record_key).where(
    ledger.c.record_key.in_(sa.bindparam("keys", expanding=True)))
_INSERT_TOUCH = sa.insert(ledger)
_PREFETCH = 500  # keys per look-up query


def _key(event: Event) -> tuple[str, str, str, str]:
    return (event.source.system, event.source.type, event.source.id, event.type)


class _Store:
    """Applies validated events inside the caller's transaction; tracks whom to rebuild.

    A batch's records, identities and accounts are looked up in a few queries
    up front and kept current as events are applied; new people, identities
    and records are written together (``_flush``) before anything reads them
    back from the database.
    """

    def __init__(self, conn: Connection, policy, now: datetime, salt: bytes | None):
        self.conn, self.policy, self.now, self.salt = conn, policy, now, salt
        self._key_adopted = False  # the store holds this key's check value
        self.people: set[str] = set()
        # People whose person records changed or went: only they can hold an identity
        # no record states any more (the rebuild looks for those only among them).
        self.restated: set[str] = set()
        self.accounts: set[str] = set()
        self._known_accounts: set[str] = set()  # account rows that exist in this transaction
        # Most stores have never erased anyone: then no identity needs a look-up.
        self._any_erasure = conn.execute(_ANY_ERASURE).first() is not None
        self._records: dict[tuple, Mapping | None] = {}  # by source key; None: no record
        self._identities: dict[Ref, str | None] = {}  # non-person refs; None: nobody
        self._persons: dict[str, str | None] = {}  # person ids read again; None: gone
        self._pending: dict[str, list[dict]] = {"people": [], "identities": [], "records": [],
                                                "ledger": []}
        self._touch_keys: set[str] = set()  # ledger rows of reported touches that exist
        self._pending_keys: set[tuple] = set()
        self._pending_people: set[str] = set()

    def prefetch(self, events: Sequence[Event]) -> None:
        """Read the records, identities and accounts a batch refers to, a few queries in all."""
        keys = {_key(e) for e in events if e.type != "erase"}
        self._records.update(dict.fromkeys(keys))
        ids: dict[tuple[str, str, str], list[str]] = {}
        for system, source_type, source_id, record_type in sorted(keys):
            ids.setdefault((system, source_type, record_type), []).append(source_id)
        for (system, source_type, record_type), wanted in ids.items():
            for start in range(0, len(wanted), _PREFETCH):
                for row in self.conn.execute(_RECORDS_OF, {
                        "system": system, "source_type": source_type,
                        "record_type": record_type,
                        "ids": wanted[start:start + _PREFETCH]}).mappings():
                    self._records[(row["source_system"], row["source_type"],
                                   row["source_id"], row["type"])] = row
        # The people stored person records name: each is resolved again when read again.
        held = sorted({row["person_id"] for row in self._records.values()
                       if row is not None and row["type"] == "person" and row["person_id"]})
        for start in range(0, len(held), _PREFETCH):
            part = held[start:start + _PREFETCH]
            self._persons.update(dict.fromkeys(part))
            self._persons.update(self.conn.execute(_PEOPLE_OR_ALIASES, {"ids": part}).all())
        refs = {ref for e in events for ref in (*e.identities, e.person)
                if ref is not None and ref.kind != "person"}
        self._identities.update(self._lookup_identities(refs))
        account_ids = sorted({account_id_for(e.account) for e in events if e.account} |
                             {account_id_for(source_ref(e.source.system, e.source.id))
                              for e in events if e.type == "account" and not e.deleted})
        for start in range(0, len(account_ids), _PREFETCH):
            self._known_accounts.update(self.conn.execute(
                _ACCOUNTS_EXIST, {"ids": account_ids[start:start + _PREFETCH]}).scalars())
        touches = sorted({e.source.key for e in events if e.type == "touch" and not e.deleted})
        for start in range(0, len(touches), _PREFETCH):
            self._touch_keys.update(self.conn.execute(
                _TOUCHES_EXIST, {"keys": touches[start:start + _PREFETCH]}).scalars())

    def _lookup_identities(self, refs: set[Ref]) -> dict[Ref, str | None]:
        found: dict[Ref, str | None] = dict.fromkeys(refs)
        for kind in sorted({ref.kind for ref in refs}):
            values = sorted(ref.value for ref in refs if ref.kind == kind)
            for start in range(0, len(values), _PREFETCH):
                for _, value, person_id in self.conn.execute(_PEOPLE_OF, {
                        "kind": kind, "values": values[start:start + _PREFETCH]}).all():
                    found[Ref(kind, value)] = person_id
        return found

    def _flush(self) -> None:
        """Write the pending people, identities and records, in the order they came."""
        for table, statement in (("people", _INSERT_PERSON), ("identities", _INSERT_IDENTITY),
                                 ("records", _INSERT_RECORD), ("ledger", _INSERT_TOUCH)):
            rows = self._pending[table]
            if rows:
                self.conn.execute(statement, rows)
                rows.clear()
        for key in self._pending_keys:
            self._records.pop(key, None)  # re-read with its id when next needed
        self._pending_keys.clear()
        self._pending_people.clear()

    def _resolve(self, ref: Ref) -> str | None:
        if ref.kind == "person":
            if ref.value in self._pending_people:
                return ref.value
            if ref.value in self._persons:
                return self._persons[ref.value]
            # Rows still pending are fresh people, never an alias: the store answers alone.
            return resolve_person(self.conn, ref)
        if ref not in self._identities:
            self._identities.update(self._lookup_identities({ref}))
        return self._identities[ref]

    def apply(self, event: Event) -> None:
        if event.deleted:
            self._retract(event)
        elif event.type == "person":
            self._person(event)
        elif event.type == "account":
            self._account(event)
        elif event.type == "campaign":
            self._campaign(event)
        elif event.type == "touch":
            self._touch(event)
        elif event.type == "erase":
            self._erase(event)
        else:
            self._fact(event)

    def finish(self) -> None:
        from guard.ingest.profiles import rebuild

        self._flush()
        if self.accounts:
            members = self.conn.execute(
                sa.select(records.c.person_id).distinct()
                .where(records.c.type == "person", records.c.account_id.in_(self.accounts),
                       records.c.person_id.is_not(None))
            ).scalars()
            self.people.update(members)
        rebuild(self.conn, self.people, self.policy, self.now, self.restated)

    # -- records ---------------------------------------------------------------------

    def _record(self, event: Event) -> Mapping | None:
        key = _key(event)
        if key in self._pending_keys:
            self._flush()
        if key not in self._records:
            source = event.source
            self._records[key] = self.conn.execute(_RECORD, {
                "system": source.system, "source_type": source.type, "source_id": source.id,
                "record_type": event.type}).mappings().first()
        return self._records[key]

    def _upsert(self, event: Event, payload: dict, *, person_id: str | None = None,
                account_id: str | None = None, address: str | None = None,
                old: Mapping | None = None, looked_up: bool = False) -> bool:
        """Store the event's record; return False when it was stored already, unchanged."""
        if not looked_up:
            old = self._record(event)
        if old is not None and _unchanged(old, payload, person_id, account_id, address):
            # A record read again as it was (a re-sync, or an edit of a field the guard does
            # not map) is not new: no write, no rebuild of its people, and its updated_at
            # keeps saying when its content last changed (profiles order records by it).
            return False
        values = {"payload": payload, "person_id": person_id, "account_id": account_id,
                  "address": address, "updated_at": self.now}
        key = _key(event)
        if old is None:
            source = event.source
            self._pending["records"].append({
                "source_system": source.system, "source_type": source.type,
                "source_id": source.id, "type": event.type, **values})
            self._pending_keys.add(key)
        else:
            self.conn.execute(_UPDATE_RECORD, {"record_id": old["id"], **values})
            self._records[key] = {**old, **values}
            self._touch_owner_of(old)
            if event.type == "person":
                self.restated.update(p for p in (old["person_id"], person_id) if p)
        return True

    def _touch_owner_of(self, row: Mapping) -> None:
        if row["person_id"]:
            self.people.add(row["person_id"])
        if row["account_id"] and row["type"] != "person":
            self.accounts.add(row["account_id"])

    def _retract(self, event: Event) -> None:
        old = self._record(event)
        if old is None:
            return  # retracting what we never had is already done
        if event.type == "touch":
            self._flush()  # its ledger row may still be waiting to be written
        self.conn.execute(sa.delete(records).where(records.c.id == old["id"]))
        self._records[_key(event)] = None
        self._touch_owner_of(old)
        if old["type"] == "person" and old["person_id"]:
            self.restated.add(old["person_id"])
        if event.type == "touch":
            delete_touch(self.conn, event.source.key)
        elif event.type == "campaign":
            self.conn.execute(sa.delete(campaigns)
                              .where(campaigns.c.record_key == event.source.key))
        elif event.type == "account":
            self.accounts.add(old["account_id"])
            self.conn.execute(sa.update(accounts).where(accounts.c.id == old["account_id"])
                              .values(account=None, updated_at=self.now))

    # -- erasure -----------------------------------------------------------------------

    def _erased_on(self, ref: Ref) -> str | None:
        at = self.conn.execute(
            sa.select(erasures.c.erased_at).where(erasures.c.hash == erasure_hash(self.salt, ref))
        ).scalar()
        return parse_datetime(at).date().isoformat() if at is not None else None

    def _refuse_erased(self, kind: str, refs: Sequence[Ref]) -> None:
        if not self._any_erasure or not refs:
            return
        if self.salt is None:
            name = f"{kind}.{_ERASED_FIELD.get(refs[0].kind, 'source')}" if kind == "person" \
                else f"{kind}.{refs[0].kind}"
            raise InvalidField(name, f"{erasure.SETTING} is not set, and people were erased "
                                     "in this store: it cannot tell whether this is one of "
                                     "them")
        hashes = {erasure_hash(self.salt, ref): ref for ref in refs}
        erased = {hashes[digest]: at for digest, at in
                  self.conn.execute(_ERASED, {"hashes": list(hashes)}).all()}
        for ref in refs:
            at = erased.get(ref)
            when = parse_datetime(at).date().isoformat() if at is not None else None
            if when:
                name = f"{kind}.{_ERASED_FIELD.get(ref.kind, 'source')}" if kind == "person" \
                    else f"{kind}.{ref.kind}"
                what = "address" if ref.kind in ("email", "phone") else "record"
                raise InvalidField(name, f"{what} was erased on {when} (right to erasure); "
                                         "it is not stored again")

    def _erase(self, event: Event) -> None:
        if self.salt is None:
            raise InvalidField("erase.person", f"{erasure.SETTING} is not set: erasure keeps a "
                                               "keyed hash of each address, and needs that "
                                               "secret key (see the README, Erasure)")
        if not self._key_adopted:
            state = erasure.key_state(self.conn)
            problem = erasure.key_problem(state, self.salt)
            if problem:
                raise InvalidField("erase.person", f"{erasure.SETTING}: {problem}")
        ref = event.person
        person_id = self._resolve(ref)
        if person_id is None:
            if ref.kind != "person" and self._erased_on(ref):
                return  # erased before: erasing again changes nothing
            raise InvalidField("erase.person", f"no person matches {describe(ref)}")
        self._flush()
        if not self._key_adopted:
            erasure.adopt_key(self.conn, state, self.salt, erasing=True)
            self._key_adopted = True
        erasure.erase_person(self.conn, person_id, self.salt, self.now,
                             self.policy.defaults.region)
        # The person's identities and records are gone: forget what was cached of them.
        self._identities = {ref: (None if pid == person_id else pid)
                            for ref, pid in self._identities.items()}
        self._persons = {value: (None if pid == person_id else pid)
                         for value, pid in self._persons.items()}
        self._records.clear()
        self._any_erasure = True
        self.people.discard(person_id)

    # -- people and accounts -----------------------------------------------------------

    def _person(self, event: Event) -> None:
        self._refuse_erased("person", event.identities)
        old = self._record(event)
        found: list[str] = []
        if old is not None and old["person_id"]:
            current = self._resolve(Ref("person", old["person_id"]))
            if current:
                found.append(current)
        missing = []
        for ref in event.identities:
            person_id = self._resolve(ref)
            if person_id is None:
                missing.append(ref)
            elif person_id not in found:
                found.append(person_id)
        if not found:
            winner = new_person_id()
            self._pending["people"].append({
                "id": winner, "profile": {"id": winner}, "erased": False,
                "created_at": self.now, "updated_at": self.now})
            self._pending_people.add(winner)
        else:
            winner = found[0]
            if len(found) > 1:
                self._flush()
                for loser in found[1:]:
                    merge_people(self.conn, loser, winner)
                    self.people.discard(loser)
                    self.restated.add(winner)
                    # What the loser held (identities, records) is the winner's now.
                    self._identities = {ref: (winner if pid == loser else pid)
                                        for ref, pid in self._identities.items()}
                    self._persons = {value: (winner if pid == loser else pid)
                                     for value, pid in self._persons.items()}
                self._records.clear()
        for ref in missing:
            self._pending["identities"].append(
                {"kind": ref.kind, "value": ref.value, "person_id": winner})
            self._identities[ref] = winner
        account_id = self._account_ref(event.account) if event.account else None
        payload = {**event.fields, "identities": [[r.kind, r.value] for r in event.identities]}
        changed = self._upsert(event, payload, person_id=winner, account_id=account_id,
                               old=old, looked_up=True)
        if changed or missing or len(found) != 1:
            self.people.add(winner)

    def _account_ref(self, ref: Ref) -> str:
        # A person or contract may name its account before the account's own event
        # arrives (CRMs sync objects in separate streams); the account row waits for it.
        account_id = account_id_for(ref)
        if account_id in self._known_accounts:
            return account_id
        exists = self.conn.execute(_ACCOUNT_EXISTS, {"account_id": account_id}).scalar()
        if exists is None:
            self.conn.execute(_INSERT_ACCOUNT, {"id": account_id, "ref": ref.value,
                                                "account": None, "updated_at": self.now})
        self._known_accounts.add(account_id)
        return account_id

    def _account(self, event: Event) -> None:
        ref = source_ref(event.source.system, event.source.id)
        account_id = self._account_ref(ref)
        if not self._upsert(event, dict(event.fields), account_id=account_id):
            return  # the account as stored: its members need no rebuild
        account = Account(id=account_id, source=event.evidence,
                          **{k: event.fields.get(k) for k in ("name", "domain", "owner")})
        self.conn.execute(sa.update(accounts).where(accounts.c.id == account_id)
                          .values(account=account.to_dict(), updated_at=self.now))
        self.accounts.add(account_id)

    # -- facts, touches, campaigns -----------------------------------------------------

    def _fact(self, event: Event) -> None:
        person_id = address = None
        ref = event.person
        if ref is not None:
            person_id = self._resolve(ref)
            bare = event.type == "consent" and ref.kind in ("email", "phone")
            if person_id is None and not bare:
                raise InvalidField(f"{event.type}.person", f"no person matches {describe(ref)}")
            if bare:
                self._refuse_erased(event.type, [ref])
                address = ref.value
        account_id = self._account_ref(event.account) if event.account else None
        if not self._upsert(event, dict(event.fields), person_id=person_id,
                            account_id=account_id, address=address):
            return
        if person_id:
            self.people.add(person_id)
        if account_id:
            self.accounts.add(account_id)

    def _touch(self, event: Event) -> None:
        person_id = self._resolve(event.person)
        if person_id is None:
            raise InvalidField("touch.person", f"no person matches {describe(event.person)}")
        changed = self._upsert(event, dict(event.fields), person_id=person_id)
        key = event.source.key
        if key in self._touch_keys:
            if not changed:
                return  # its ledger row says the same already
            self._flush()
            upsert_touch(self.conn, person_id, key, event.evidence, event.fields, self.now)
            return
        # A touch the ledger has never seen: the row upsert_touch would insert, written
        # with the batch's other new rows.
        self._pending["ledger"].append(
            new_touch_row(person_id, key, event.evidence, event.fields, self.now))
        self._touch_keys.add(key)

    def _campaign(self, event: Event) -> None:
        campaign = Campaign.from_dict({**event.fields, "source": event.evidence.to_dict()})
        key = event.source.key
        self.conn.execute(sa.delete(campaigns).where(campaigns.c.record_key == key))
        self.conn.execute(sa.delete(campaigns).where(campaigns.c.id == campaign.id))
        self.conn.execute(sa.insert(campaigns).values(
            id=campaign.id, campaign=campaign.to_dict(), record_key=key, updated_at=self.now))
        self._upsert(event, dict(event.fields))


def _unchanged(old: Mapping, payload: dict, person_id: str | None, account_id: str | None,
               address: str | None) -> bool:
    """Return whether a stored record already holds this payload for these owners."""
    if (old["person_id"], old["account_id"], old["address"]) != (person_id, account_id, address):
        return False
    # Compared as stored: through JSON, as the record was read back (dates become text).
    return old["payload"] == loads_json(dumps_json(payload))


def merge_people(conn: Connection, loser: str, winner: str) -> None:
    """Fold one person into another, keeping all facts and ledger; the loser's id resolves on."""
    for table in (identities, records, ledger, owner_tasks, person_aliases):
        conn.execute(sa.update(table).where(table.c.person_id == loser)
                     .values(person_id=winner))
    conn.execute(sa.insert(person_aliases).values(alias=loser, person_id=winner))
    conn.execute(sa.delete(people).where(people.c.id == loser))
