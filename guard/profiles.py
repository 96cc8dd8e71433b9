"""Build each person's materialised profile from their stored records.

The profile is what ``check`` reads on the hot path: one row, in
``Profile.to_dict`` shape, rebuilt once per ingested batch for every person
the batch touched, together with the flags shown in the CRM.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from guard.db import accounts, identities, people, records
from guard.flags import flags_for, hash_flags, lapses_at
from policies.model import (
    Account,
    Case,
    Consent,
    Contract,
    Evidence,
    Invoice,
    Profile,
    Purchase,
    Service,
)

PERSON_FIELDS = ("name", "stage", "owner", "timezone", "preferred_channel", "contact_hours",
                 "replacement_cycle_years", "do_not_market_until")
_FACTS = {
    "purchase": ("purchases", Purchase),
    "contract": ("contracts", Contract),
    "consent": ("consents", Consent),
    "case": ("cases", Case),
    "service": ("services", Service),
    "invoice": ("invoices", Invoice),
}
_FACT_FIELDS = {
    "purchase": ("product", "at", "category", "amount", "currency"),
    "contract": ("status", "start", "end", "owner", "product"),
    "consent": ("channel", "purpose", "status", "at"),
    "case": ("status", "owner", "subject", "at"),
    "service": ("asset", "at", "mileage", "next_due", "next_due_mileage"),
    "invoice": ("number", "sent_at", "due", "paid_at", "amount"),
}


def evidence_of(row: Mapping) -> Evidence:
    """Return the evidence (system, record type, id) of a stored record row."""
    # A source sent without a record type is named by its event type, so a rep still
    # reads what kind of record to look for ("dms purchase SO-1").
    return Evidence(row["source_system"], row["source_type"] or row["type"], row["source_id"])


def _fact(row: Mapping, via_account: bool):
    name, record = _FACTS[row["type"]]
    payload = row["payload"]
    data: dict[str, Any] = {k: payload.get(k) for k in _FACT_FIELDS[row["type"]] if k in payload}
    if row["type"] == "purchase":
        data.setdefault("product", None)
    if row["type"] in ("purchase", "invoice"):
        data["via_account"] = via_account
    elif row["type"] == "contract":
        data["via_account"] = via_account or row["person_id"] is None
    data["source"] = evidence_of(row).to_dict()
    return name, record.from_dict(data)


def _sort_key(fact) -> str:
    for name in ("at", "start", "sent_at", "due", "next_due"):
        value = getattr(fact, name, None)
        if value is not None:
            return value.isoformat()
    return ""


def build_profile(conn: Connection, person_id: str, *, erased: bool = False,
                  account_cache: dict | None = None) -> Profile:
    """Merge every record of a person (and their account) into one profile.

    ``account_cache`` keeps each account's row and facts across the people of
    one rebuild, so a deal filed under an account with 2,000 members reads the
    account once, not 2,000 times.
    """
    own = conn.execute(
        sa.select(records).where(records.c.person_id == person_id)
        .order_by(records.c.updated_at, records.c.id)
    ).mappings().all()
    person_rows = [r for r in own if r["type"] == "person"]
    fields: dict[str, Any] = {}
    field_sources: dict[str, Evidence] = {}
    emails: list[str] = []
    phones: list[str] = []
    crm_ids: dict[str, str] = {}
    account_id = None
    for row in person_rows:
        payload = row["payload"]
        for name in PERSON_FIELDS:
            if payload.get(name) is not None:
                fields[name] = payload[name]
                field_sources[name] = evidence_of(row)
        for email in payload.get("emails") or ():
            if email not in emails:
                emails.append(email)
        for phone in payload.get("phones") or ():
            if phone not in phones:
                phones.append(phone)
        for system, record_id in (payload.get("crm_ids") or {}).items():
            crm_ids.setdefault(system, record_id)
        if row["account_id"]:
            account_id = row["account_id"]
    facts: dict[str, list] = {name: [] for name, _ in _FACTS.values()}
    for row in own:
        if row["type"] in _FACTS:
            name, fact = _fact(row, via_account=False)
            facts[name].append(fact)
    account = None
    account_rows: list = []
    if account_id:
        cached = (account_cache or {}).get(account_id)
        if cached is None:
            cached = _account_records(conn, account_id)
            if account_cache is not None:
                account_cache[account_id] = cached
        account, every_fact = cached
        # The account's own facts, and those a colleague's record also files under the
        # account (a CRM deal names both the buyer and the company); the person's own
        # records are already among their own facts.
        account_rows = [r for r in every_fact if r["person_id"] != person_id]
        for row in account_rows:
            name, fact = _fact(row, via_account=True)
            facts[name].append(fact)
    addresses = emails + phones
    bare = []
    if addresses:
        bare = conn.execute(
            sa.select(records).where(records.c.address.in_(addresses),
                                     records.c.person_id.is_(None),
                                     records.c.type == "consent")
            .order_by(records.c.updated_at, records.c.id)
        ).mappings().all()
        for row in bare:
            name, fact = _fact(row, via_account=False)
            facts[name].append(fact)
    sources = []
    for row in (*own, *account_rows, *bare):
        evidence = evidence_of(row)
        if evidence not in sources:
            sources.append(evidence)
    return Profile(
        id=person_id,
        emails=tuple(emails),
        phones=tuple(phones),
        crm_ids=crm_ids,
        account=account,
        field_sources=field_sources,
        sources=tuple(sources),
        erased=erased,
        **{name: tuple(sorted(items, key=_sort_key)) for name, items in facts.items()},
        **_person_values(fields),
    )


def _account_records(conn: Connection, account_id: str) -> tuple[Account | None, list]:
    """Read an account and every fact filed under it, oldest first."""
    account_row = conn.execute(
        sa.select(accounts).where(accounts.c.id == account_id)).mappings().first()
    account = None
    if account_row is not None:
        account = Account.from_dict(account_row["account"] or {"id": account_id})
    rows = conn.execute(
        sa.select(records).where(records.c.account_id == account_id,
                                 records.c.type.in_(tuple(_FACTS)))
        .order_by(records.c.updated_at, records.c.id)
    ).mappings().all()
    return account, list(rows)


def _person_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    data = Profile.from_dict({"id": None, **fields})
    return {name: getattr(data, name) for name in PERSON_FIELDS}


def stated_identities(conn: Connection, person_id: str) -> set[tuple[str, str]]:
    """Return the identities the person's own person records state."""
    rows = conn.execute(
        sa.select(records.c.source_system, records.c.source_id, records.c.payload)
        .where(records.c.person_id == person_id, records.c.type == "person")
    ).all()
    found: set[tuple[str, str]] = set()
    for system, source_id, payload in rows:
        found.add(("ref", f"{system}:{source_id}"))
        for email in payload.get("emails") or ():
            found.add(("email", email))
        for phone in payload.get("phones") or ():
            found.add(("phone", phone))
        for ref in payload.get("identities") or ():
            found.add(tuple(ref))
    return found


def rebuild(conn: Connection, person_ids: Iterable[str], policy, now: datetime) -> None:
    """Rebuild the profile, identities and flags of each person."""
    account_cache: dict = {}
    for person_id in sorted(set(person_ids)):
        row = conn.execute(
            sa.select(people.c.erased, people.c.flags_hash).where(people.c.id == person_id)
        ).first()
        if row is None:
            continue
        erased, old_hash = row
        if erased:
            continue
        _sync_identities(conn, person_id)
        profile = build_profile(conn, person_id, account_cache=account_cache)
        status, lines = flags_for(profile, policy, now)
        flags = {"status": status, "flags": lines}
        flags_hash = hash_flags(flags)
        values: dict[str, Any] = {"profile": profile.to_dict(), "updated_at": now,
                                  "flags_lapse_at": lapses_at(profile, policy, now)}
        if flags_hash != old_hash:
            values.update(flags={**flags, "updated": now.isoformat()}, flags_hash=flags_hash)
        conn.execute(sa.update(people).where(people.c.id == person_id).values(**values))


def _sync_identities(conn: Connection, person_id: str) -> None:
    # A record that no longer states an address (or was retracted) no longer
    # identifies the person by it.
    wanted = stated_identities(conn, person_id)
    have = {
        (kind, value) for kind, value in conn.execute(
            sa.select(identities.c.kind, identities.c.value)
            .where(identities.c.person_id == person_id)
        ).all()
    }
    for kind, value in have - wanted:
        conn.execute(sa.delete(identities).where(identities.c.kind == kind,
                                                 identities.c.value == value))
