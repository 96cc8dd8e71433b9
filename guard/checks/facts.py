"""What deciding a batch of attempts needs from the store, read in a few statements.

One reader for one attempt and for thousands: each recipient kind is one
statement that resolves the recipients and returns each person's profile (as
text, decoded once) joined with their committed ledger entries since a time,
one row per entry, and the batch's campaign riding along. Recipients who match
no person are read together in one more statement (erased, or bare consents).

PostgreSQL, committed checks: the people are first locked, in id order (two
batches sharing people cannot deadlock), by their own statement: a statement
that waited for a lock still reads the snapshot from before the wait, and so
would miss the contact the lock's holder just wrote. The lock and the read
go in one pipeline (one round trip), the read starting once the lock is held.
SQLite needs no row locks: a committed check runs in a write transaction,
and writers take turns.

The statements run on the driver's cursor, compiled once (``_OnCursor``).
"""

from __future__ import annotations

import weakref
from collections import namedtuple
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Dialect

from guard.errors import GuardError
from guard.ingest import erasure
from guard.ingest.identity import Ref, erasure_hash
from guard.ingest.people import resolve_person
from guard.store import ledger as contact_ledger
from guard.store.codec import loads_json
from guard.store.compiled import Compiled
from guard.store.engine import on_cursor, on_cursor_together
from guard.store.tables import campaigns, erasures, identities, ledger, people, records
from policies.model import Campaign, Consent, Evidence, LedgerEntry, Profile


class ErasureKeyMissing(GuardError):
    """People were erased in this store, and this process has no key to recognise them."""

    status = 503
    title = "Service Unavailable"

    def __init__(self) -> None:
        super().__init__(f"{erasure.SETTING}: not set, and people were erased in this store; "
                         "no recipient who matches no person can be checked without it",
                         field=erasure.SETTING)


@dataclass(slots=True)
class Facts:
    """What a batch's reads found: people, their profiles and ledgers, strangers, campaigns."""

    people_of: dict[Ref, str]
    profiles: dict[str, Profile]
    entries: dict[str, list[LedgerEntry]]
    erased: set[Ref]
    bare: dict[str, list]
    campaigns: dict[str, Campaign]

    def profile_of(self, target: Ref) -> tuple[Profile | None, list[LedgerEntry]]:
        """Return the profile of ``target`` and their entries; (None, []) for no one known."""
        person_id = self.people_of.get(target)
        profile = self.profiles.get(person_id) if person_id is not None else None
        if profile is None:
            return None, []
        return profile, [] if profile.erased else self.entries.get(person_id, [])

    def stranger(self, target: Ref) -> Profile:
        """Return the profile of a recipient who matches no person: erased, or bare consents."""
        if target in self.erased:
            return Profile(id=None, erased=True)
        return _stranger_profile(target, self.bare.get(target.value, ()))


def _in_json_list(column: sa.Column, name: str) -> sa.ColumnElement:
    """Return "``column`` is in the JSON array ``:name``" (SQLite)."""
    listed = sa.select(sa.column("value")).select_from(
        sa.func.json_each(sa.bindparam(name, type_=sa.JSON))).scalar_subquery()
    return column.in_(listed)


def _in_array(column: sa.Column, name: str) -> sa.ColumnElement:
    """Return "``column`` is one of the array ``:name``" (PostgreSQL)."""
    # TEXT[]: a cast to varchar(n)[] would silently truncate, and could match a wrong row.
    return column == sa.any_(sa.bindparam(name, type_=postgresql.ARRAY(sa.Text)))


def per_dialect(build: Callable[[Callable[[sa.Column, str], sa.ColumnElement]], Any]
                ) -> dict[str, Any]:
    """Build a statement whose list parameter is one value, for each dialect by name.

    One parameter, a JSON array (SQLite) or an array (PostgreSQL), instead of an
    IN list with a parameter per value: SQLAlchemy renders such a list anew for
    every execution, and every batch size would be new SQL to the driver, parsed
    afresh and never prepared. The query plans are the same index look-ups.
    """
    return {"sqlite": build(_in_json_list), "postgresql": build(_in_array)}


# Built once: reused with new parameters, they skip SQLAlchemy's per-call construction.
_SINCE = sa.bindparam("since", type_=ledger.c.at.type)
_PROFILE_AND_LEDGER = (
    people.c.id, sa.cast(people.c.profile, sa.Text).label("profile"),
    # The batch's one campaign (NULL without one) rides along in the same statement.
    sa.cast(sa.select(campaigns.c.campaign).where(campaigns.c.id == sa.bindparam("campaign"))
            .scalar_subquery(), sa.Text).label("campaign_record"),
    *contact_ledger.ENTRY_COLUMNS)
_WITH_LEDGER = people.outerjoin(ledger, contact_ledger.counted_since(people.c.id, _SINCE))
READ_BY_IDENTITY = per_dialect(lambda one_of: (
    sa.select(identities.c.value, *_PROFILE_AND_LEDGER)
    .select_from(identities.join(_WITH_LEDGER, people.c.id == identities.c.person_id))
    .where(identities.c.kind == sa.bindparam("kind"), one_of(identities.c.value, "values"))
    .order_by(ledger.c.at)))
READ_BY_ID = per_dialect(lambda one_of: (
    sa.select(*_PROFILE_AND_LEDGER).select_from(_WITH_LEDGER)
    .where(one_of(people.c.id, "ids")).order_by(ledger.c.at)))
_RESOLVE = per_dialect(lambda one_of: sa.select(identities.c.value, identities.c.person_id).where(
    identities.c.kind == sa.bindparam("kind"), one_of(identities.c.value, "values")))
_LOCK_BY_IDENTITY = per_dialect(lambda one_of: (
    sa.select(identities.c.value, people.c.id)
    .join_from(identities, people, people.c.id == identities.c.person_id)
    .where(identities.c.kind == sa.bindparam("kind"), one_of(identities.c.value, "values"))
    .order_by(people.c.id).with_for_update(of=people)))
_LOCK_BY_ID = per_dialect(lambda one_of: sa.select(people.c.id).where(
    one_of(people.c.id, "ids")).order_by(people.c.id).with_for_update())
_CAMPAIGNS = per_dialect(lambda one_of: sa.select(campaigns.c.id, campaigns.c.campaign).where(
    one_of(campaigns.c.id, "ids")))
_BARE_COLUMNS = (records.c.address, records.c.payload, records.c.source_system,
                 records.c.source_type, records.c.source_id)


def _strangers(erased: Callable[[Callable], sa.Select]) -> dict[str, Any]:
    """Recipients who match no person, in one statement: the erased, then bare consents.

    An erased recipient comes back as a row without a source, its hash as the address.
    """
    nothing = tuple(sa.cast(sa.null(), c.type).label(c.name) for c in _BARE_COLUMNS[1:])
    return per_dialect(lambda one_of: sa.union_all(
        erased(one_of).add_columns(*nothing),
        sa.select(*_BARE_COLUMNS).where(one_of(records.c.address, "addresses"),
                                        records.c.person_id.is_(None),
                                        records.c.type == "consent")))


_STRANGERS = _strangers(lambda one_of: sa.select(erasures.c.hash.label("address")).where(
    one_of(erasures.c.hash, "hashes")))
# Without the erasure key a recipient cannot be told apart from the erased: any erasure at
# all stops the check (ErasureKeyMissing) rather than let an erased person through.
_STRANGERS_WITHOUT_KEY = _strangers(lambda one_of: sa.select(
    sa.cast(sa.null(), records.c.address.type).label("address")).where(
    sa.exists(sa.select(erasures.c.hash))))


class _OnCursor:
    """A select compiled for one dialect once, run on the driver's cursor.

    Its parameters and its rows go through SQLAlchemy's own conversions
    (JSON, timestamps), worked out once; rows come back as named tuples.
    """

    def __init__(self, statement: sa.Select, dialect: Dialect):
        self.compiled = Compiled(statement, dialect)
        columns = list(statement.selected_columns)
        self.row = namedtuple("Row", [c.key for c in columns])
        self.convert = [(i, p) for i, p in enumerate(
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns)
            if p is not None]

    def params(self, values: Mapping[str, Any]) -> Any:
        """Return ``values`` converted for the driver, in its parameter style."""
        compiled = self.compiled
        converted = []
        for name in compiled.names:
            value = values[name] if name in values else compiled.fixed[name]
            convert = compiled.convert[name]
            converted.append(convert(value) if convert is not None else value)
        return tuple(converted) if compiled.positional \
            else dict(zip(compiled.names, converted, strict=True))

    def rows(self, found: list | None) -> list:
        """Return the driver's rows converted, as named tuples."""
        make, convert = self.row._make, self.convert
        if not convert:
            return [make(r) for r in found or ()]
        out = []
        for raw in found or ():
            row = list(raw)
            for i, process in convert:
                row[i] = process(row[i])
            out.append(make(row))
        return out


_on_cursor: weakref.WeakKeyDictionary[Dialect, dict[int, _OnCursor]] = \
    weakref.WeakKeyDictionary()


def _runner(conn: Connection, statements: dict[str, sa.Select]) -> _OnCursor:
    dialect = conn.dialect
    statement = statements[dialect.name]
    built = _on_cursor.setdefault(dialect, {})
    runner = built.get(id(statement))
    if runner is None:
        runner = built[id(statement)] = _OnCursor(statement, dialect)
    return runner


def _select(conn: Connection, statements: dict[str, sa.Select], values: Mapping[str, Any]
            ) -> list:
    """Run this dialect's one of ``statements`` on the driver's cursor; return its rows."""
    runner = _runner(conn, statements)
    return runner.rows(on_cursor(conn, runner.compiled.sql, runner.params(values)))


def _select_together(conn: Connection, selects: list[tuple[dict[str, sa.Select], Mapping]]
                     ) -> list[list]:
    """Run several selects in order (PostgreSQL: in one round trip); return each one's rows."""
    runners = [_runner(conn, statements) for statements, _ in selects]
    found = on_cursor_together(conn, [(r.compiled.sql, r.params(values))
                                      for r, (_, values) in zip(runners, selects, strict=True)])
    return [r.rows(rows) for r, rows in zip(runners, found, strict=True)]


def read_facts(conn: Connection, targets: Collection[Ref], *, since: datetime,
               campaign_ids: Iterable[str | None] = (), lock: Collection[Ref] = (),
               erasure_key: bytes | None) -> Facts:
    """Read what deciding attempts to ``targets`` needs; lock ``lock``'s people first."""
    dialect = conn.dialect.name
    wanted = sorted({c for c in campaign_ids if c})
    found = Facts({}, {}, {}, set(), {}, {})
    params = {"since": since.astimezone(UTC), "campaign": wanted[0] if len(wanted) == 1 else None}
    looked_up: set[Ref] = set()
    if lock and dialect == "postgresql":
        looked_up = {t for t in targets if t in lock}
        if not _lock_and_read(conn, found, looked_up, params, since):
            _lock(conn, found.people_of, list(looked_up))
    by_kind: dict[str, set[str]] = {}
    for target in targets:
        if target not in looked_up:
            by_kind.setdefault(target.kind, set()).add(target.value)
    for kind, values in sorted(by_kind.items()):
        if kind == "person":
            for value in sorted(values):
                person_id = resolve_person(conn, Ref(kind, value))
                if person_id:
                    found.people_of[Ref(kind, value)] = person_id
            continue
        rows = _select(conn, READ_BY_IDENTITY, {**params, "kind": kind, "values": sorted(values)})
        _take(found, rows, since, params["campaign"], kind)
    unread = sorted({p for p in found.people_of.values() if p not in found.profiles})
    if unread:
        rows = _select(conn, READ_BY_ID, {**params, "ids": unread})
        _take(found, rows, since, params["campaign"])
    strangers = [t for t in targets if t.kind != "person" and (
        t not in found.people_of or found.people_of[t] not in found.profiles)]
    if strangers:
        _read_strangers(conn, found, strangers, erasure_key)
    missing = [c for c in wanted if c not in found.campaigns]
    if missing:
        found.campaigns.update({
            row.id: Campaign.from_dict(row.campaign)
            for row in conn.execute(_CAMPAIGNS[dialect], {"ids": missing})})
    return found


def _lock_and_read(conn: Connection, found: Facts, targets: set[Ref], params: dict,
                   since: datetime) -> bool:
    """Lock and read recipients' people in one round trip (PostgreSQL); False if unsure.

    Each kind's lock and then its read go in one pipeline: the read starts once
    the lock is held, so its snapshot holds the contact a lock's previous holder
    wrote. Only when every recipient reads as the person it locked (or neither
    finds one) do the rows count; otherwise (a person reference, or a merge
    meanwhile) ``found`` is left as it was, for ``_lock`` and the reads by id.
    """
    kinds = sorted({t.kind for t in targets})
    if not kinds or "person" in kinds:
        return False
    values = {kind: sorted({t.value for t in targets if t.kind == kind}) for kind in kinds}
    results = _select_together(conn, [
        *((_LOCK_BY_IDENTITY, {"kind": kind, "values": values[kind]}) for kind in kinds),
        *((READ_BY_IDENTITY, {**params, "kind": kind, "values": values[kind]})
          for kind in kinds)])
    locked: dict[Ref, str] = {}
    for kind, rows in zip(kinds, results[:len(kinds)], strict=True):
        locked.update((Ref(kind, row.value), row.id) for row in rows)
    read = Facts({}, {}, {}, set(), {}, {})
    for kind, rows in zip(kinds, results[len(kinds):], strict=True):
        _take(read, rows, since, params["campaign"], kind)
    if any(locked.get(t) != read.people_of.get(t) for t in targets):
        return False
    found.people_of.update(read.people_of)
    found.profiles.update(read.profiles)
    found.entries.update(read.entries)
    found.campaigns.update(read.campaigns)
    return True


def _lock(conn: Connection, people_of: dict[Ref, str], targets: list[Ref]) -> None:
    """Lock the people of ``targets``, by identity or by id, in id order (PostgreSQL)."""
    for kind in sorted({t.kind for t in targets} - {"person"}):
        values = sorted({t.value for t in targets if t.kind == kind})
        for value, person_id in _select(conn, _LOCK_BY_IDENTITY,
                                        {"kind": kind, "values": values}):
            people_of[Ref(kind, value)] = person_id
    # Person references go through aliases; and a merge that committed while a lock was
    # awaited took the locked person away from its identity: such a recipient is resolved
    # again (to the person it was merged into) and locked by id.
    ids: dict[Ref, str] = {}
    for target in (t for t in targets if t not in people_of):
        if target.kind == "person":
            person_id = resolve_person(conn, target)
        else:
            row = conn.execute(_RESOLVE["postgresql"],
                               {"kind": target.kind, "values": [target.value]}).first()
            person_id = row.person_id if row else None
        if person_id:
            ids[target] = person_id
    if ids:
        locked = set(conn.execute(_LOCK_BY_ID["postgresql"],
                                  {"ids": sorted(set(ids.values()))}).scalars())
        people_of.update({t: p for t, p in ids.items() if p in locked})


def _take(found: Facts, rows: list, since: datetime, campaign: str | None,
          kind: str | None = None) -> None:
    """Add joined profile-and-ledger rows (one per entry, ordered by time) to ``found``."""
    for row in rows:
        person_id = row.id
        if kind is not None:
            found.people_of[Ref(kind, row.value)] = person_id
        if person_id not in found.profiles:
            found.profiles[person_id] = Profile.from_stored(loads_json(row.profile))
            found.entries[person_id] = []
            if row.campaign_record is not None:
                found.campaigns[campaign] = Campaign.from_dict(loads_json(row.campaign_record))
        if row.at is not None:
            found.entries[person_id].extend(contact_ledger.entries((row,), since))


def _read_strangers(conn: Connection, found: Facts, targets: list[Ref],
                    key: bytes | None) -> None:
    """Read who among ``targets`` was erased, and the bare consents of their addresses."""
    hashes = {erasure_hash(key, t): t for t in targets} if key is not None else {}
    addresses = sorted({t.value for t in targets if t.kind in ("email", "phone")})
    statement = (_STRANGERS if key is not None else _STRANGERS_WITHOUT_KEY)[conn.dialect.name]
    for row in conn.execute(statement, {"hashes": sorted(hashes), "addresses": addresses}):
        if row.source_system is None:
            if key is None:
                raise ErasureKeyMissing()
            found.erased.add(hashes[row.address])
        else:
            found.bare.setdefault(row.address, []).append(row[1:])


def _stranger_profile(target: Ref, rows: Iterable) -> Profile:
    consents = tuple(
        Consent.from_dict({**{k: payload.get(k) for k in ("channel", "purpose", "status", "at")},
                           "source": Evidence(system, source_type or "", source_id).to_dict()})
        for payload, system, source_type, source_id in rows
    )
    return Profile(
        id=None,
        emails=(target.value,) if target.kind == "email" else (),
        phones=(target.value,) if target.kind == "phone" else (),
        consents=consents,
        sources=tuple(c.source for c in consents if c.source),
    )
