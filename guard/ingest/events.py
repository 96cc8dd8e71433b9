"""The events of SPEC §6: validate one raw event into a normalised ``Event``.

``parse_event(raw, policy)`` either returns an ``Event`` whose fields are
normalised (emails lower-cased, phones in E.164, times in ISO 8601 UTC) or
raises ``InvalidField`` naming the field, e.g. ``purchase.at: not a date:
'not a date'``. Any event may carry ``"deleted": true`` to retract the record
with that source (connectors send these for deleted or archived CRM records).
Storing a batch of them is ``guard.ingest.writer.ingest``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from guard.errors import InvalidField
from guard.ingest.identity import (
    ID_MAX,
    SENDER_MAX,
    Ref,
    address,
    crm_refs,
    identifier,
    normalize_email,
    normalize_phone,
    reference,
    source_ref,
)
from policies.model import CATEGORIES, CHANNELS, Evidence, parse_date, parse_datetime

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
    days = ""
    if text[:1].isalpha():
        # Days before the hours: "mon-fri 09:00-18:00" (or days alone: "sat,sun").
        from policies.rules.contact_window import person_window

        first, _, text = text.partition(" ")
        try:
            person_window(first)
        except ValueError:
            raise ValueError(f"expected hours like '09:00-18:00' or 'mon-fri 09:00-18:00', "
                             f"got {value!r}") from None
        days = first.lower()
        if not text.strip():
            return days
        days += " "
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
    return days + "-".join(parts)


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
