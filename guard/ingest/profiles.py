"""Build each person's materialised profile from their stored records.

The profile is what ``check`` reads on the hot path: one row, in
``Profile.to_dict`` shape, rebuilt once per ingested batch for every person
the batch touched, together with the flags shown in the CRM. ``rebuild``
works in chunks of people: a few IN-queries read their records, accounts and
bare consents, the profiles are built in memory and written with one
executemany; ``build_profile`` reads one person alone and builds the same.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from guard.checks.flags import flags_for, hash_flags, lapses_at
from guard.ingest import names
from guard.store.tables import accounts, identities, people, records
from guard.store.util import chunks
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
    parse_date,
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
# The profile's fact lists in Profile.to_dict's order.
_FACT_LISTS = ("purchases", "contracts", "consents", "cases", "services", "invoices")


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
    return _assemble_dict(person_id, own, account_entry, bare, erased=erased,
                          shared=shared)[0]


def _assemble_dict(person_id: str, own: list, account_entry: tuple | None, bare: list, *,
                   erased: bool = False, shared: dict | None = None
                   ) -> tuple[Profile, dict]:
    """Return the profile ``_assemble`` builds and its ``to_dict()``, made together.

    The stored dict reuses what the people of one rebuild share: an account's
    facts are turned into dicts once, not once per member.
    """
    shared = {} if shared is None else shared
    fields: dict[str, Any] = {}
    field_sources: dict[str, Evidence] = {}
    emails: list[str] = []
    phones: list[str] = []
    crm_ids: dict[str, str] = {}
    # (sort key, fact, its dict) by profile list; sorted stably by the key alone below.
    facts: dict[str, list] = {name: [] for name in _FACT_LISTS}
    # Every source cited, first of each in order: (evidence, its dict) by (system, type,
    # id), which Evidence equality compares; a tuple hashes faster than the dataclass.
    cited: dict[tuple, tuple[Evidence, dict]] = {}
    source_dicts: dict[str, dict] = {}
    for row in own:
        kind = row["type"]
        if kind == "touch":
            # A contact made elsewhere is evidence in the ledger, not part of the profile
            # (and a touch alone does not rebuild its person).
            continue
        key = (row["source_system"], row["source_type"] or kind, row["source_id"])
        found = cited.get(key)
        if found is None:
            found = cited[key] = (Evidence(*key),
                                  {"system": key[0], "type": key[1], "id": key[2]})
        if kind == "person":
            payload = row["payload"]
            for name in PERSON_FIELDS:
                if payload.get(name) is not None:
                    fields[name] = payload[name]
                    field_sources[name] = found[0]
                    source_dicts[name] = found[1]
            for email in payload.get("emails") or ():
                if email not in emails:
                    emails.append(email)
            for phone in payload.get("phones") or ():
                if phone not in phones:
                    phones.append(phone)
            for system, record_id in (payload.get("crm_ids") or {}).items():
                crm_ids.setdefault(system, record_id)
        elif kind in _FACTS:
            name, fact = _fact(row, via_account=False)
            facts[name].append((_sort_key(fact), fact, None))
    account = None
    account_facts: list = []
    if account_entry is not None:
        account = account_entry[0]
        # The account's own facts, and those a colleague's record also files under the
        # account (a CRM deal names both the buyer and the company); the person's own
        # records are already among their own facts.
        account_facts = [entry for row, entry in _shared_account(shared, account_entry)
                         if row["person_id"] != person_id]
    bare_facts = [_shared_fact(shared, row, via_account=False) for row in bare]
    for entries in (account_facts, bare_facts):
        for name, fact, key, as_dict, cite, evidence in entries:
            facts[name].append((key, fact, as_dict))
            if cite not in cited:
                cited[cite] = evidence
    sources = [evidence for evidence, _ in cited.values()]
    ordered = {name: sorted(items, key=_first) if len(items) > 1 else items
               for name, items in facts.items()}
    values = _person_values(fields)
    profile = Profile(
        id=person_id,
        emails=tuple(emails),
        phones=tuple(phones),
        crm_ids=crm_ids,
        account=account,
        field_sources=field_sources,
        sources=tuple(sources),
        erased=erased,
        **{name: tuple([item[1] for item in items]) for name, items in ordered.items()},
        **values,
    )
    # Profile.to_dict's keys in its order (a test holds the two equal).
    data: dict[str, Any] = {
        "id": person_id,
        "emails": list(emails),
        "phones": list(phones),
        "crm_ids": dict(crm_ids),
        **{name: values[name] for name in PERSON_FIELDS},
        "do_not_market_until": _iso(values["do_not_market_until"]),
        "account": _account_dict(shared, account) if account else None,
    }
    for name in _FACT_LISTS:
        data[name] = [item[2] if item[2] is not None else item[1].to_dict()
                      for item in ordered[name]]
    data["field_sources"] = source_dicts
    data["sources"] = [cite for _, cite in cited.values()]
    data["erased"] = erased
    return profile, data


def _first(item: tuple) -> Any:
    return item[0]


def _iso(value: Any) -> Any:
    return value.isoformat() if value is not None else None


def _account_dict(shared: dict, account: Account) -> dict:
    key = ("account", id(account))
    found = shared.get(key)
    if found is None or found[0] is not account:
        found = shared[key] = (account, account.to_dict())
    return found[1]


def _shared_fact(shared: dict, row: Mapping, *, via_account: bool) -> tuple:
    """Return what profiles take from a row people share, made once.

    That is (profile list, fact, sort key, fact dict, citation key, (evidence,
    evidence dict)).
    """
    key = (row["id"], via_account)
    found = shared.get(key)
    if found is None:
        name, fact = _fact(row, via_account=via_account)
        evidence = evidence_of(row)
        found = shared[key] = (name, fact, _sort_key(fact), fact.to_dict(),
                               (evidence.system, evidence.type, evidence.id),
                               (evidence, evidence.to_dict()))
    return found


def _shared_account(shared: dict, account_entry: tuple) -> list:
    """Return (row, shared fact) for each fact row of an account entry, made once."""
    key = ("rows", id(account_entry))
    found = shared.get(key)
    if found is None or found[0] is not account_entry:
        found = shared[key] = (account_entry, [
            (row, _shared_fact(shared, row, via_account=True)) for row in account_entry[1]])
    return found[1]


def _account_records(conn: Connection, account_id: str) -> tuple[Account | None, list]:
    """Read an account and every fact filed under it, oldest first."""
    return _accounts_records(conn, [account_id])[account_id]


def _accounts_records(conn: Connection, account_ids: Sequence[str]
                      ) -> dict[str, tuple[Account | None, list]]:
    """Read accounts and every fact filed under each, oldest first, in a few queries."""
    found: dict[str, tuple[Account | None, list]] = {}
    for part in chunks(sorted(set(account_ids)), REBUILD_CHUNK):
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
    # What Profile.from_dict makes of these fields: every one as given but the date.
    values = {name: fields.get(name) for name in PERSON_FIELDS}
    values["do_not_market_until"] = parse_date(values["do_not_market_until"])
    return values


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


def _drop_unstated(conn: Connection, live: list[str], own: Mapping[str, list]) -> None:
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


def rebuild(conn: Connection, person_ids: Iterable[str], policy, now: datetime,
            restated: Collection[str] | None = None) -> None:
    """Rebuild the profile, identities and flags of each person.

    ``restated`` names the people whose person records changed or were removed
    since their last rebuild: only they can hold identities no record states
    any more, so only theirs are checked (None: everyone's).
    """
    account_cache: dict = {}
    shared: dict = {}
    for part in chunks(sorted(set(person_ids)), REBUILD_CHUNK):
        _rebuild_chunk(conn, part, policy, now, account_cache, shared, restated)


def _rebuild_chunk(conn: Connection, person_ids: list[str], policy, now: datetime,
                   account_cache: dict, shared: dict,
                   restated: Collection[str] | None = None) -> None:
    state = {pid: (erased, old_hash) for pid, erased, old_hash
             in conn.execute(_PEOPLE, {"ids": person_ids}).all()}
    live = [pid for pid in person_ids if pid in state and not state[pid][0]]
    if not live:
        return
    own: dict[str, list] = {pid: [] for pid in live}
    for row in conn.execute(_OWN_RECORDS, {"ids": live}).mappings():
        own[row["person_id"]].append(row)
    checked = live if restated is None else [pid for pid in live if pid in restated]
    if checked:
        _drop_unstated(conn, checked, own)
    wanted_accounts = {_account_of(own[pid]) for pid in live} - {None} - set(account_cache)
    if wanted_accounts:
        account_cache.update(_accounts_records(conn, sorted(wanted_accounts)))
    addresses = {pid: _addresses(own[pid]) for pid in live}
    bare_rows: list = []
    every_address = sorted({a for found in addresses.values() for a in found})
    for part in chunks(every_address, REBUILD_CHUNK):
        bare_rows += [row for row in conn.execute(_BARE_CONSENTS, {"addresses": part}).mappings()
                      if row["person_id"] is None]
    if len(every_address) > REBUILD_CHUNK:
        # Several queries: put their rows back in the one order a single query gives.
        bare_rows.sort(key=lambda r: (r["updated_at"], r["id"]))
    at_address: dict[str, list[int]] = {}
    for index, row in enumerate(bare_rows):
        at_address.setdefault(row["address"], []).append(index)
    plain, flagged = [], []
    named: dict[str, str | None] = {}
    for pid in live:
        picked = {i for a in addresses[pid] for i in at_address.get(a, ())}
        bare = [bare_rows[i] for i in sorted(picked)]
        account_id = _account_of(own[pid])
        entry = account_cache.get(account_id) if account_id else None
        profile, data = _assemble_dict(pid, own[pid], entry, bare, shared=shared)
        named[pid] = profile.name
        status, lines = flags_for(profile, policy, now)
        flags = {"status": status, "flags": lines}
        flags_hash = hash_flags(flags)
        values: dict[str, Any] = {"b_id": pid, "b_profile": data,
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
    names.keep(conn, named)
