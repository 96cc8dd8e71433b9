"""Build each person's materialised profile from their stored records.

The profile is what ``check`` reads on the hot path: one row, in
``Profile.to_dict`` shape, rebuilt once per ingested batch for every person
the batch touched, together with the flags shown in the CRM. ``rebuild``
works in chunks of people: a few IN-queries read their records, accounts and
bare consents, the profiles are built in memory and written with one
executemany; ``build_profile`` reads one person alone and builds the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    account_id = _account_of(own)
    cached = None
    if account_id:
        cached = (account_cache or {}).get(account_id)
        if cached is None:
            cached = _account_records(conn, account_id)
            if account_cache is not None:
                account_cache[account_id] = cached
    addresses = _addresses(own)
    bare = []
    if addresses:
        bare = conn.execute(
            sa.select(records).where(records.c.address.in_(addresses),
                                     records.c.person_id.is_(None),
                                     records.c.type == "consent")
            .order_by(records.c.updated_at, records.c.id)
        ).mappings().all()
    return _assemble(person_id, own, cached, bare, erased=erased)


def _account_of(own: list) -> str | None:
    """Return the account the person's latest person record files them under."""
    account_id = None
    for row in own:
        if row["type"] == "person" and row["account_id"]:
            account_id = row["account_id"]
    return account_id


def _addresses(own: list) -> list[str]:
    """Return the person's emails then phones, as their person records state them."""
    emails: list[str] = []
    phones: list[str] = []
    for row in own:
        if row["type"] != "person":
            continue
        for email in row["payload"].get("emails") or ():
            if email not in emails:
                emails.append(email)
        for phone in row["payload"].get("phones") or ():
            if phone not in phones:
                phones.append(phone)
    return emails + phones


def _assemble(person_id: str, own: list, account_entry: tuple | None, bare: list, *,
              erased: bool = False, shared: dict | None = None) -> Profile:
    """Build a profile from rows already read: own records, account entry, bare consents.

    ``shared`` keeps the facts and evidence built from account rows and bare
    consents across the people of one rebuild (they are immutable), so an
    account's deals are decoded once, not once per member.
    """
    shared = {} if shared is None else shared
    person_rows = [r for r in own if r["type"] == "person"]
    fields: dict[str, Any] = {}
    field_sources: dict[str, Evidence] = {}
    emails: list[str] = []
    phones: list[str] = []
    crm_ids: dict[str, str] = {}
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
    facts: dict[str, list] = {name: [] for name, _ in _FACTS.values()}
    for row in own:
        if row["type"] in _FACTS:
            name, fact = _fact(row, via_account=False)
            facts[name].append(fact)
    account = None
    account_rows: list = []
    if account_entry is not None:
        account, every_fact = account_entry
        # The account's own facts, and those a colleague's record also files under the
        # account (a CRM deal names both the buyer and the company); the person's own
        # records are already among their own facts.
        account_rows = [r for r in every_fact if r["person_id"] != person_id]
        for row in account_rows:
            name, fact, _ = _shared_fact(shared, row, via_account=True)
            facts[name].append(fact)
    for row in bare:
        name, fact, _ = _shared_fact(shared, row, via_account=False)
        facts[name].append(fact)
    # Evidence is hashable: a dict keeps the first of each in order.
    sources = list(dict.fromkeys([
        *(evidence_of(row) for row in own),
        *(_shared_fact(shared, row, via_account=True)[2] for row in account_rows),
        *(_shared_fact(shared, row, via_account=False)[2] for row in bare)]))
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


def _shared_fact(shared: dict, row: Mapping, *, via_account: bool) -> tuple[str, Any, Evidence]:
    """Return (profile list, fact, evidence) of a row other people's profiles hold too."""
    key = (row["id"], via_account)
    found = shared.get(key)
    if found is None:
        name, fact = _fact(row, via_account=via_account)
        found = shared[key] = (name, fact, evidence_of(row))
    return found


def _account_records(conn: Connection, account_id: str) -> tuple[Account | None, list]:
    """Read an account and every fact filed under it, oldest first."""
    return _accounts_records(conn, [account_id])[account_id]


def _accounts_records(conn: Connection, account_ids: Sequence[str]
                      ) -> dict[str, tuple[Account | None, list]]:
    """Read accounts and every fact filed under each, oldest first, in a few queries."""
    found: dict[str, tuple[Account | None, list]] = {}
    for part in _chunks(sorted(set(account_ids))):
        shown = dict(conn.execute(_ACCOUNTS, {"ids": part}).all())
        rows: dict[str, list] = {account_id: [] for account_id in part}
        for row in conn.execute(_ACCOUNT_FACTS, {"ids": part}).mappings():
            rows[row["account_id"]].append(row)
        for account_id in part:
            account = None
            if account_id in shown:
                account = Account.from_dict(shown[account_id] or {"id": account_id})
            found[account_id] = (account, rows[account_id])
    return found


def _person_values(fields: Mapping[str, Any]) -> dict[str, Any]:
    data = Profile.from_dict({"id": None, **fields})
    return {name: getattr(data, name) for name in PERSON_FIELDS}


def stated_identities(conn: Connection, person_id: str) -> set[tuple[str, str]]:
    """Return the identities the person's own person records state."""
    rows = conn.execute(
        sa.select(records.c.source_system, records.c.source_id, records.c.payload)
        .where(records.c.person_id == person_id, records.c.type == "person")
    ).mappings().all()
    return _stated(rows)


def _stated(rows: Iterable[Mapping]) -> set[tuple[str, str]]:
    """Return the identities some person records state."""
    found: set[tuple[str, str]] = set()
    for row in rows:
        payload = row["payload"]
        found.add(("ref", f"{row['source_system']}:{row['source_id']}"))
        for email in payload.get("emails") or ():
            found.add(("email", email))
        for phone in payload.get("phones") or ():
            found.add(("phone", phone))
        for ref in payload.get("identities") or ():
            found.add(tuple(ref))
    return found


# A rebuild reads and writes people in chunks: a few IN-queries and one executemany per
# chunk instead of several statements per person (a CRM sync touches thousands at once).
REBUILD_CHUNK = 500


def _chunks(items: Sequence, size: int | None = None) -> Iterable[Sequence]:
    size = size or REBUILD_CHUNK
    for start in range(0, len(items), size):
        yield list(items[start:start + size])


_PEOPLE = sa.select(people.c.id, people.c.erased, people.c.flags_hash).where(
    people.c.id.in_(sa.bindparam("ids", expanding=True)))
_OWN_RECORDS = sa.select(records).where(
    records.c.person_id.in_(sa.bindparam("ids", expanding=True))
).order_by(records.c.updated_at, records.c.id)
_IDENTITIES = sa.select(identities.c.person_id, identities.c.kind, identities.c.value).where(
    identities.c.person_id.in_(sa.bindparam("ids", expanding=True)))
_ACCOUNTS = sa.select(accounts.c.id, accounts.c.account).where(
    accounts.c.id.in_(sa.bindparam("ids", expanding=True)))
_ACCOUNT_FACTS = sa.select(records).where(
    records.c.account_id.in_(sa.bindparam("ids", expanding=True)),
    records.c.type.in_(tuple(_FACTS)),
).order_by(records.c.updated_at, records.c.id)
# "person_id IS NULL" is checked on the rows read: in SQL it leads SQLite to walk every
# record without a person (accounts too) instead of looking the addresses up.
_BARE_CONSENTS = sa.select(records).where(
    records.c.address.in_(sa.bindparam("addresses", expanding=True)),
    records.c.type == "consent",
).order_by(records.c.updated_at, records.c.id)
_DELETE_IDENTITY = sa.delete(identities).where(
    identities.c.kind == sa.bindparam("b_kind"), identities.c.value == sa.bindparam("b_value"))
_UPDATE_PROFILE = sa.update(people).where(people.c.id == sa.bindparam("b_id")).values(
    profile=sa.bindparam("b_profile"), updated_at=sa.bindparam("b_updated_at"),
    flags_lapse_at=sa.bindparam("b_lapse"))
_UPDATE_PROFILE_FLAGS = sa.update(people).where(people.c.id == sa.bindparam("b_id")).values(
    profile=sa.bindparam("b_profile"), updated_at=sa.bindparam("b_updated_at"),
    flags_lapse_at=sa.bindparam("b_lapse"), flags=sa.bindparam("b_flags"),
    flags_hash=sa.bindparam("b_hash"))


def rebuild(conn: Connection, person_ids: Iterable[str], policy, now: datetime) -> None:
    """Rebuild the profile, identities and flags of each person."""
    account_cache: dict = {}
    shared: dict = {}
    for part in _chunks(sorted(set(person_ids))):
        _rebuild_chunk(conn, part, policy, now, account_cache, shared)


def _rebuild_chunk(conn: Connection, person_ids: list[str], policy, now: datetime,
                   account_cache: dict, shared: dict) -> None:
    state = {pid: (erased, old_hash) for pid, erased, old_hash
             in conn.execute(_PEOPLE, {"ids": person_ids}).all()}
    live = [pid for pid in person_ids if pid in state and not state[pid][0]]
    if not live:
        return
    own: dict[str, list] = {pid: [] for pid in live}
    for row in conn.execute(_OWN_RECORDS, {"ids": live}).mappings():
        own[row["person_id"]].append(row)
    have: dict[str, set] = {pid: set() for pid in live}
    for pid, kind, value in conn.execute(_IDENTITIES, {"ids": live}).all():
        have[pid].add((kind, value))
    # A record that no longer states an address (or was retracted) no longer
    # identifies the person by it.
    gone = []
    for pid in live:
        wanted = _stated(r for r in own[pid] if r["type"] == "person")
        gone += [{"b_kind": kind, "b_value": value} for kind, value in sorted(have[pid] - wanted)]
    if gone:
        conn.execute(_DELETE_IDENTITY, gone)
    wanted_accounts = {_account_of(own[pid]) for pid in live} - {None} - set(account_cache)
    if wanted_accounts:
        account_cache.update(_accounts_records(conn, sorted(wanted_accounts)))
    addresses = {pid: _addresses(own[pid]) for pid in live}
    bare_rows: list = []
    every_address = sorted({a for found in addresses.values() for a in found})
    for part in _chunks(every_address):
        bare_rows += [row for row in conn.execute(_BARE_CONSENTS, {"addresses": part}).mappings()
                      if row["person_id"] is None]
    if len(every_address) > REBUILD_CHUNK:
        # Several queries: put their rows back in the one order a single query gives.
        bare_rows.sort(key=lambda r: (r["updated_at"], r["id"]))
    at_address: dict[str, list[int]] = {}
    for index, row in enumerate(bare_rows):
        at_address.setdefault(row["address"], []).append(index)
    plain, flagged = [], []
    for pid in live:
        picked = {i for a in addresses[pid] for i in at_address.get(a, ())}
        bare = [bare_rows[i] for i in sorted(picked)]
        account_id = _account_of(own[pid])
        entry = account_cache.get(account_id) if account_id else None
        profile = _assemble(pid, own[pid], entry, bare, shared=shared)
        status, lines = flags_for(profile, policy, now)
        flags = {"status": status, "flags": lines}
        flags_hash = hash_flags(flags)
        values: dict[str, Any] = {"b_id": pid, "b_profile": profile.to_dict(),
                                  "b_updated_at": now,
                                  "b_lapse": lapses_at(profile, policy, now)}
        if flags_hash != state[pid][1]:
            values.update(b_flags={**flags, "updated": now.isoformat()}, b_hash=flags_hash)
            flagged.append(values)
        else:
            plain.append(values)
    if plain:
        conn.execute(_UPDATE_PROFILE, plain)
    if flagged:
        conn.execute(_UPDATE_PROFILE_FLAGS, flagged)
