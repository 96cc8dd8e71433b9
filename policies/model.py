"""The attempt, profile, ledger and decision model that every rule kind reads.

Everything here is immutable and JSON-round-trippable: the guard stores
materialised profiles with ``Profile.to_dict`` and rebuilds them with
``Profile.from_dict``; ``guard check --profile FILE`` reads the same shape.

Times are timezone-aware ``datetime``; calendar facts (contract end, due
dates, do-not-market-until) are ``date``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, field, fields
from datetime import UTC, date, datetime
from typing import Any

CHANNELS = ("email", "sms", "call", "mail", "push")

# Most restrictive last: the combiner picks the verdict with the highest rank.
VERDICTS = ("allow", "defer", "reroute", "block")
VERDICT_RANK = {v: i for i, v in enumerate(VERDICTS)}

DEFAULT_PURPOSES = {
    "promotion": "marketing",
    "price_offer": "marketing",
    "newsletter": "marketing",
    "event_offer": "marketing",
    "prospecting": "sales",
    "trade_in": "sales",
    "upgrade_offer": "sales",
    "service_reminder": "service",
    "survey": "service",
    "invoice": "billing",
    "payment_reminder": "billing",
    "collections": "billing",
    "transactional": "required",
    "safety_recall": "required",
}
CATEGORIES = ("marketing", "sales", "service", "billing", "required")


def parse_datetime(value: Any) -> datetime | None:
    """Parse an ISO 8601 time; a naive time is taken as UTC."""
    if type(value) is str:
        # Stored profiles hold canonical ISO text: parse it straight, and fall back to the
        # lenient path below (spaces, a lower-case "z") only when that fails.
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            pass  # not canonical: the lenient parse below decides
        else:
            return dt if dt.tzinfo is not None else dt.replace(tzinfo=UTC)
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, date):
        dt = datetime(value.year, value.month, value.day)
    else:
        text = str(value).strip()
        if text.endswith("Z") or text.endswith("z"):
            text = text[:-1] + "+00:00"
        dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt


def parse_date(value: Any) -> date | None:
    """Parse an ISO 8601 date (a full timestamp keeps only its date)."""
    if type(value) is str and len(value) == 10:
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass  # not canonical: the lenient parse below decides
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    text = str(value).strip()
    if len(text) > 10:
        return parse_datetime(text).date()
    return date.fromisoformat(text)


def _iso(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


@dataclass(frozen=True, slots=True)
class Evidence:
    """A pointer to the source record a fact came from."""

    system: str
    type: str
    id: str

    def to_dict(self) -> dict:
        return {"system": self.system, "type": self.type, "id": self.id}

    @classmethod
    def from_dict(cls, data: Mapping) -> Evidence:
        return _new_evidence(str(data["system"]), str(data.get("type") or ""), str(data["id"]))


def _evidence_decoder() -> Callable[[Mapping], Evidence]:
    """Return a decoder that builds each distinct pointer once.

    A profile cites the same few records many times (every field it took from one
    Contact, and the Contact again among its sources); Evidence is immutable, so
    the repeats share one object.
    """
    seen: dict[tuple, Evidence] = {}

    def decode(data: Mapping) -> Evidence:
        key = system, kind, record_id = data["system"], data.get("type"), data["id"]
        found = seen.get(key)
        if found is None and type(system) is str and type(record_id) is str \
                and (kind is None or type(kind) is str):
            # Text needs no conversion: the common case, built without from_dict's str().
            found = seen[key] = _new_evidence(system, kind or "", record_id)
        elif found is None:
            found = Evidence.from_dict(data)
            # Only text is shared: 1, 1.0 and True are equal keys but read differently.
            if (found.system, found.type or None, found.id) == (key[0], key[1] or None, key[2]):
                seen[key] = found
        return found

    return decode


def _evidence_or_none(data: Any) -> Evidence | None:
    return Evidence.from_dict(data) if data else None


class _Record:
    """Shared to_dict / from_dict for the fact records below."""

    _dates: tuple[str, ...] = ()
    _datetimes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        out = {}
        for name, _ in _DECODERS.get(type(self)) or _decoders_of(type(self)):
            value = getattr(self, name)
            if isinstance(value, Evidence):
                value = value.to_dict()
            out[name] = _iso(value)
        return out

    @classmethod
    def from_dict(cls, data: Mapping):
        try:
            return (_FAST.get(cls) or _fast_decoder(cls))(data, Evidence.from_dict)
        except Exception:
            # The fast decoder only reads well-formed input; the generic one below gives
            # malformed input the error it always had.
            return cls._from_dict(data)

    @classmethod
    def _from_dict(cls, data: Mapping):
        decoders = _DECODERS.get(cls) or _decoders_of(cls)
        kwargs = {}
        for name, decode in decoders:
            if name in data:
                value = data[name]
                kwargs[name] = decode(value) if decode is not None else value
        return cls(**kwargs)


# Each record class's fields and how to decode them, worked out once per class: profiles
# are decoded on every check.
_DECODERS: dict[type, tuple[tuple[str, Any], ...]] = {}


def _decoders_of(cls: type) -> tuple[tuple[str, Any], ...]:
    decoders = []
    for f in fields(cls):  # type: ignore[arg-type]
        if f.name == "source":
            decoders.append((f.name, _evidence_or_none))
        elif f.name in cls._dates:  # type: ignore[attr-defined]
            decoders.append((f.name, parse_date))
        elif f.name in cls._datetimes:  # type: ignore[attr-defined]
            decoders.append((f.name, parse_datetime))
        else:
            decoders.append((f.name, None))
    _DECODERS[cls] = tuple(decoders)
    return _DECODERS[cls]


def _generate(cls: type, signature: str, values: list[str], namespace: dict) -> Callable:
    """Compile ``def make(signature)`` that returns a ``cls`` holding ``values``, in field order.

    It fills the slots through their descriptors instead of calling the frozen
    dataclass's ``__init__`` (one ``object.__setattr__`` per field, twice the cost):
    bulk screening builds every record of every recipient's profile. The object is
    the same as ``__init__`` would build, as none of these classes has ``__post_init__``.
    """
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has __post_init__: build it with its __init__")
    names = [f.name for f in fields(cls)]
    namespace.update({f"set{i}": getattr(cls, name).__set__ for i, name in enumerate(names)},
                     cls=cls, new=object.__new__)
    lines = [f"def make({signature}):", "    self = new(cls)"]
    lines += [f"    set{i}(self, {value})" for i, value in enumerate(values)]
    lines.append("    return self")
    exec("\n".join(lines), namespace)  # noqa: S102 - generated from the class's own fields
    return namespace["make"]


def fast_constructor(cls: type) -> Callable:
    """Return a constructor of ``cls`` (every field, no defaults) that skips ``__init__``."""
    names = [f.name for f in fields(cls)]
    return _generate(cls, ", ".join(names), names, {})


_new_evidence = fast_constructor(Evidence)


# A decoder per record class, ``decode(data, evidence)``, that agrees with the generic
# ``_from_dict`` on valid input: a bulk screen decodes every fact of every recipient's
# profile, and the generic loop spent more on its bookkeeping than on the values.
_FAST: dict[type, Callable[[Mapping, Callable[[Mapping], Evidence]], Any]] = {}


def _fast_decoder(cls: type) -> Callable[[Mapping, Callable[[Mapping], Evidence]], Any]:
    """Generate the record class's fast decoder."""
    namespace: dict[str, Any] = {"parse_date": parse_date, "parse_datetime": parse_datetime}
    values = []
    for i, (f, (name, decode)) in enumerate(zip(fields(cls), _decoders_of(cls), strict=True)):
        # A field without a default must be given: data[name] fails (and the generic
        # decoder then reports the missing argument) where get() would invent a None.
        if f.default is MISSING:
            value = f"data[{name!r}]"
        else:
            namespace[f"default{i}"] = f.default
            value = f"data.get({name!r}, default{i})"
        if decode is _evidence_or_none:
            value = f"(evidence(v) if (v := {value}) else None)"
        elif decode is not None:
            value = f"{decode.__name__}({value})"
        values.append(value)
    _FAST[cls] = _generate(cls, "data, evidence", values, namespace)
    return _FAST[cls]


@dataclass(frozen=True, slots=True)
class Account(_Record):
    """The company or household a person belongs to."""

    id: str
    name: str | None = None
    domain: str | None = None
    owner: str | None = None
    source: Evidence | None = None


@dataclass(frozen=True, slots=True)
class Purchase(_Record):
    """Something the person (or their account, ``via_account``) bought."""

    product: str | None
    at: datetime
    category: str | None = None
    amount: float | None = None
    currency: str | None = None
    via_account: bool = False
    source: Evidence | None = None
    _datetimes = ("at",)


@dataclass(frozen=True, slots=True)
class Contract(_Record):
    """A contract held by the person or (usually) their account."""

    status: str
    start: date | None = None
    end: date | None = None
    owner: str | None = None
    product: str | None = None
    via_account: bool = True
    source: Evidence | None = None
    _dates = ("start", "end")


@dataclass(frozen=True, slots=True)
class Consent(_Record):
    """An opt-in or opt-out for a channel (or ``*``) and purpose/category (or ``*``)."""

    channel: str
    purpose: str
    status: str
    at: datetime | None = None
    source: Evidence | None = None
    _datetimes = ("at",)


@dataclass(frozen=True, slots=True)
class Case(_Record):
    """A support case or complaint."""

    status: str
    owner: str | None = None
    subject: str | None = None
    at: datetime | None = None
    source: Evidence | None = None
    _datetimes = ("at",)


@dataclass(frozen=True, slots=True)
class Service(_Record):
    """A service visit on an asset, with when the next one is due."""

    asset: str | None = None
    at: datetime | None = None
    mileage: int | None = None
    next_due: date | None = None
    next_due_mileage: int | None = None
    source: Evidence | None = None
    _datetimes = ("at",)
    _dates = ("next_due",)


@dataclass(frozen=True, slots=True)
class Invoice(_Record):
    """An invoice and whether it was sent and paid."""

    number: str | None = None
    sent_at: datetime | None = None
    due: date | None = None
    paid_at: datetime | None = None
    amount: float | None = None
    via_account: bool = False
    source: Evidence | None = None
    _datetimes = ("sent_at", "paid_at")
    _dates = ("due",)


@dataclass(frozen=True, slots=True)
class Campaign(_Record):
    """A registered campaign: what it promises, who is eligible, and whether the owner is told.

    ``notify_owner`` is on unless the campaign opts out: a person's owner must
    know what head office promised before the customer walks in with the letter.
    """

    id: str
    purpose: str | None = None
    offer: str | None = None
    eligible_when: str | None = None
    starts: datetime | None = None
    ends: datetime | None = None
    notify_owner: bool = True
    source: Evidence | None = None
    _datetimes = ("starts", "ends")


# The profile's fact lists and the record type each one holds.
FACT_RECORDS = {
    "purchases": Purchase,
    "contracts": Contract,
    "consents": Consent,
    "cases": Case,
    "services": Service,
    "invoices": Invoice,
}


@dataclass(frozen=True, slots=True)
class Profile:
    """One person merged across systems, with every fact the rules read.

    ``id`` is ``None`` for a recipient that matches no known person; such a
    profile still carries bare-address consents (an opt-out for an address we
    know nothing else about must be honoured). ``erased`` marks an address
    whose person exercised the right to erasure.
    """

    id: str | None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    crm_ids: Mapping[str, str] = field(default_factory=dict)
    name: str | None = None
    stage: str | None = None
    owner: str | None = None
    timezone: str | None = None
    preferred_channel: str | None = None
    contact_hours: str | None = None
    replacement_cycle_years: float | None = None
    do_not_market_until: date | None = None
    account: Account | None = None
    purchases: tuple[Purchase, ...] = ()
    contracts: tuple[Contract, ...] = ()
    consents: tuple[Consent, ...] = ()
    cases: tuple[Case, ...] = ()
    services: tuple[Service, ...] = ()
    invoices: tuple[Invoice, ...] = ()
    # Which record stated each person-level field ("replacement_cycle_years" →
    # the Contact it was read from), so a finding can cite it.
    field_sources: Mapping[str, Evidence] = field(default_factory=dict)
    sources: tuple[Evidence, ...] = ()
    erased: bool = False

    @property
    def known(self) -> bool:
        return self.id is not None

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "id": self.id,
            "emails": list(self.emails),
            "phones": list(self.phones),
            "crm_ids": dict(self.crm_ids),
            "name": self.name,
            "stage": self.stage,
            "owner": self.owner,
            "timezone": self.timezone,
            "preferred_channel": self.preferred_channel,
            "contact_hours": self.contact_hours,
            "replacement_cycle_years": self.replacement_cycle_years,
            "do_not_market_until": _iso(self.do_not_market_until),
            "account": self.account.to_dict() if self.account else None,
        }
        for name in FACT_RECORDS:
            out[name] = [r.to_dict() for r in getattr(self, name)]
        out["field_sources"] = {k: v.to_dict() for k, v in self.field_sources.items()}
        out["sources"] = [s.to_dict() for s in self.sources]
        out["erased"] = self.erased
        return out

    @classmethod
    def from_dict(cls, data: Mapping) -> Profile:
        evidence = _evidence_decoder()
        get = data.get
        # Read in the order the fields are declared, so malformed data fails on the same
        # field as ever.
        person_id = get("id")
        emails = tuple(get("emails") or ())
        phones = tuple(get("phones") or ())
        crm_ids = dict(get("crm_ids") or {})
        name, stage, owner = get("name"), get("stage"), get("owner")
        timezone, preferred_channel = get("timezone"), get("preferred_channel")
        contact_hours, replacement_cycle_years = get("contact_hours"), \
            get("replacement_cycle_years")
        do_not_market_until = parse_date(get("do_not_market_until"))
        account = get("account")
        account = _account(account, evidence) if account else None
        field_sources = _field_sources(get("field_sources"), evidence)
        sources = _sources(get("sources"), evidence)
        erased = bool(get("erased", False))
        purchases, contracts, consents, cases, services, invoices = (
            decode(get(kind), evidence) for kind, decode in _FACT_DECODERS.items())
        return _new_profile(
            id=person_id, emails=emails, phones=phones, crm_ids=crm_ids, name=name,
            stage=stage, owner=owner, timezone=timezone, preferred_channel=preferred_channel,
            contact_hours=contact_hours, replacement_cycle_years=replacement_cycle_years,
            do_not_market_until=do_not_market_until, account=account, purchases=purchases,
            contracts=contracts, consents=consents, cases=cases, services=services,
            invoices=invoices, field_sources=field_sources, sources=sources, erased=erased)

    @classmethod
    def from_stored(cls, data: Mapping) -> Profile:
        """Rebuild a profile the guard stored, decoding its facts only once a rule reads them.

        For ``to_dict`` output (what the store holds); other input belongs to
        ``from_dict``, which reports malformed facts at once.
        """
        get = data.get
        profile = object.__new__(_StoredProfile)
        evidence = _evidence_decoder()
        _stored_set_data(profile, data)
        _stored_set_evidence(profile, evidence)
        _stored_set["id"](profile, get("id"))
        _stored_set["emails"](profile, tuple(get("emails") or ()))
        _stored_set["phones"](profile, tuple(get("phones") or ()))
        _stored_set["crm_ids"](profile, dict(get("crm_ids") or {}))
        for name in ("name", "stage", "owner", "timezone", "preferred_channel",
                     "contact_hours", "replacement_cycle_years"):
            _stored_set[name](profile, get(name))
        _stored_set["do_not_market_until"](profile, parse_date(get("do_not_market_until")))
        account = get("account")
        _stored_set["account"](profile, _account(account, evidence) if account else None)
        _stored_set["erased"](profile, bool(get("erased", False)))
        return profile


_new_profile = fast_constructor(Profile)
for _record in (Account, Campaign, *FACT_RECORDS.values()):
    _fast_decoder(_record)


class _StoredProfile(Profile):
    """A profile the guard stored, whose fact lists and citations are decoded on first read.

    A decision reads only the facts its rules ask about (a newsletter reads
    consents, not invoices), and a bulk screen decodes a profile per recipient:
    decoding the rest was most of the decoding. Each lazy field is its
    dataclass slot, left empty until read; the value is then the one
    ``Profile.from_dict`` builds, so the profile equals the eager one.
    """

    __slots__ = ("_data", "_evidence")

    def __eq__(self, other: object) -> bool:
        # Equal to an eager Profile of the same values (the dataclass's own __eq__
        # compares only objects of the very same class).
        if not isinstance(other, Profile):
            return NotImplemented
        return all(getattr(self, f.name) == getattr(other, f.name) for f in fields(Profile))

    __hash__ = Profile.__hash__

    def __repr__(self) -> str:
        return Profile.__repr__(self).replace(type(self).__qualname__, "Profile", 1)


def _stored_field(name: str, decode: Callable[[Any, Callable[[Mapping], Evidence]], Any]
                  ) -> property:
    slot = Profile.__dict__[name]

    def get(self: _StoredProfile) -> Any:
        try:
            return slot.__get__(self)
        except AttributeError:
            pass  # not read yet: decode it now
        value = decode(self._data.get(name), self._evidence)
        slot.__set__(self, value)
        return value

    def set_(self: _StoredProfile, value: Any) -> None:
        # Only __init__ and unpickling set fields (dataclasses.replace builds anew).
        slot.__set__(self, value)

    return property(get, set_)


def _facts(record: type) -> Callable[[Any, Callable[[Mapping], Evidence]], tuple]:
    decode_one = _FAST[record]

    def decode(items: Any, evidence: Callable[[Mapping], Evidence]) -> tuple:
        if not items:
            return ()
        try:
            # Facts share the profile's interned evidence: each one is cited again among
            # the sources.
            return tuple([decode_one(item, evidence) for item in items])
        except Exception:
            # Malformed facts get the generic decoder's value or error.
            return tuple(map(record.from_dict, items))

    return decode


def _field_sources(data: Any, evidence: Callable[[Mapping], Evidence]) -> dict:
    return {k: evidence(v) for k, v in data.items()} if data else {}


def _sources(data: Any, evidence: Callable[[Mapping], Evidence]) -> tuple:
    return tuple(map(evidence, data)) if data else ()


_FACT_DECODERS = {name: _facts(record) for name, record in FACT_RECORDS.items()}
for _name, _decode in _FACT_DECODERS.items():
    setattr(_StoredProfile, _name, _stored_field(_name, _decode))
_StoredProfile.field_sources = _stored_field("field_sources", _field_sources)  # type: ignore
_StoredProfile.sources = _stored_field("sources", _sources)  # type: ignore
_stored_set = {name: Profile.__dict__[name].__set__ for name in (
    "id", "emails", "phones", "crm_ids", "name", "stage", "owner", "timezone",
    "preferred_channel", "contact_hours", "replacement_cycle_years", "do_not_market_until",
    "account", "erased")}
_stored_set_data = _StoredProfile.__dict__["_data"].__set__
_stored_set_evidence = _StoredProfile.__dict__["_evidence"].__set__


def _account(data: Mapping, evidence: Callable[[Mapping], Evidence]) -> Account:
    try:
        return _FAST[Account](data, evidence)
    except Exception:
        return Account.from_dict(data)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One intended contact of one person.

    ``to`` is the recipient as the guard resolved it: a normalised email, an
    E.164 phone number, or a reference such as ``salesforce:003…``.
    """

    channel: str
    to: str
    purpose: str
    sender: str
    at: datetime
    campaign: str | None = None
    template: str | None = None
    product: str | None = None

    def to_dict(self) -> dict:
        return {
            "channel": self.channel,
            "to": self.to,
            "purpose": self.purpose,
            "sender": self.sender,
            "campaign": self.campaign,
            "template": self.template,
            "product": self.product,
            "at": self.at.isoformat(),
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> Attempt:
        return cls(
            channel=data["channel"],
            to=data["to"],
            purpose=data["purpose"],
            sender=data["sender"],
            at=parse_datetime(data["at"]),
            campaign=data.get("campaign"),
            template=data.get("template"),
            product=data.get("product"),
        )


@dataclass(frozen=True, slots=True)
class LedgerEntry:
    """A contact that happened (or was decided) for a person.

    Guard decisions carry their verdict; touches reported from other systems
    are contacts that happened, verdict ``allow``. Frequency and duplicate
    rules count only entries whose verdict is ``allow``.
    """

    at: datetime
    channel: str
    purpose: str
    sender: str
    campaign: str | None = None
    template: str | None = None
    product: str | None = None
    verdict: str = "allow"
    source: Evidence | None = None

    def to_dict(self) -> dict:
        return {
            "at": self.at.isoformat(),
            "channel": self.channel,
            "purpose": self.purpose,
            "sender": self.sender,
            "campaign": self.campaign,
            "template": self.template,
            "product": self.product,
            "verdict": self.verdict,
            "source": self.source.to_dict() if self.source else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> LedgerEntry:
        return cls(
            at=parse_datetime(data["at"]),
            channel=data["channel"],
            purpose=data["purpose"],
            sender=data["sender"],
            campaign=data.get("campaign"),
            template=data.get("template"),
            product=data.get("product"),
            verdict=data.get("verdict", "allow"),
            source=_evidence_or_none(data.get("source")),
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """What one rule says about one attempt.

    ``effect`` is one of VERDICTS. ``reroute`` ({"owner": …} and/or
    {"channel": …}) accompanies effect ``reroute``; ``not_before`` accompanies
    ``defer``. ``notify`` names an owner who must hear of the contact (a task
    in their CRM) whatever the verdict: the campaign owner who must honour an
    offer, the case owner of an open complaint.
    """

    rule: str
    kind: str
    effect: str
    message: str
    evidence: tuple[Evidence, ...] = ()
    reroute: Mapping[str, str] | None = None
    not_before: datetime | None = None
    notify: str | None = None

    def to_dict(self) -> dict:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "effect": self.effect,
            "message": self.message,
            "evidence": [e.to_dict() for e in self.evidence],
        }


@dataclass(frozen=True, slots=True)
class Notice:
    """An owner who must be told about a contact (becomes a CRM task)."""

    owner: str
    rule: str
    message: str

    def to_dict(self) -> dict:
        return {"owner": self.owner, "rule": self.rule, "message": self.message}


@dataclass(frozen=True, slots=True)
class Decision:
    """The verdict for an attempt, with its reasons (SPEC §4)."""

    verdict: str
    person: str | None
    reasons: tuple[Finding, ...] = ()
    reroute: Mapping[str, str] | None = None
    not_before: datetime | None = None
    monitored: tuple[Finding, ...] = ()
    policy_version: str = ""
    decision_id: str | None = None
    notify: tuple[Notice, ...] = ()

    @property
    def rules(self) -> tuple[str, ...]:
        return tuple(r.rule for r in self.reasons)

    def with_id(self, decision_id: str) -> Decision:
        # Every screened recipient's decision gets its id: dataclasses.replace cost 4 µs.
        return new_decision(
            verdict=self.verdict, person=self.person, reasons=self.reasons, reroute=self.reroute,
            not_before=self.not_before, monitored=self.monitored,
            policy_version=self.policy_version, decision_id=decision_id, notify=self.notify)

    def to_dict(self) -> dict:
        return {
            "decision_id": self.decision_id,
            "verdict": self.verdict,
            "person": self.person,
            "reasons": [r.to_dict() for r in self.reasons],
            "reroute": dict(self.reroute) if self.reroute else None,
            "not_before": self.not_before.isoformat() if self.not_before else None,
            "monitored": [m.to_dict() for m in self.monitored],
            "policy_version": self.policy_version,
            "notify": [n.to_dict() for n in self.notify],
        }


new_decision = fast_constructor(Decision)
