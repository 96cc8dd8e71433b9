"""The rows one batch of events names: read up front, kept current, new ones written together.

A sync stores thousands of events a batch. ``BatchRows`` reads the records,
people, identities, accounts and reported touches they name in a few
queries, answers the writer from memory as events are applied, and holds
the batch's new people, identities, records and touches until ``flush``
writes them, each table in one statement, before anything reads them back.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from guard.ingest.events import Event
from guard.ingest.identity import Ref, source_ref
from guard.ingest.people import (
    LOOKUP_CHUNK,
    current_people,
    new_person_id,
    people_of,
    resolve_person,
)
from guard.store.tables import accounts, identities, ledger, people, records
from guard.store.util import chunks

# Built once: a sync stores thousands of events a batch, and building a statement
# costs more than running it.
_RECORD = sa.select(records).where(
    records.c.source_system == sa.bindparam("system"),
    records.c.source_type == sa.bindparam("source_type"),
    records.c.source_id == sa.bindparam("source_id"),
    records.c.type == sa.bindparam("record_type"))
# One (system, record type, event type) at a time: SQLite searches the unique source index
# for a list of ids, where a list of whole (system, type, id, event type) rows scans.
_RECORDS_OF = sa.select(records).where(
    records.c.source_system == sa.bindparam("system"),
    records.c.source_type == sa.bindparam("source_type"),
    records.c.source_id.in_(sa.bindparam("ids", expanding=True)),
    records.c.type == sa.bindparam("record_type"))
_UPDATE_RECORD = sa.update(records).where(records.c.id == sa.bindparam("record_id"))
_ACCOUNT_EXISTS = sa.select(accounts.c.id).where(accounts.c.id == sa.bindparam("account_id"))
_ACCOUNTS_EXIST = sa.select(accounts.c.id).where(
    accounts.c.id.in_(sa.bindparam("ids", expanding=True)))
_TOUCHES_EXIST = sa.select(ledger.c.record_key).where(
    ledger.c.record_key.in_(sa.bindparam("keys", expanding=True)))
_INSERT_ACCOUNT = sa.insert(accounts)
# The pending rows of each table, written in this order: people before the identities
# and records that name them.
_INSERTS = (("people", sa.insert(people)), ("identities", sa.insert(identities)),
            ("records", sa.insert(records)), ("ledger", sa.insert(ledger)))


def account_id_for(ref: Ref) -> str:
    """Return the stable account id of an account's source reference."""
    return "acc_" + hashlib.sha256(ref.value.encode()).hexdigest()[:20]


def _record_key(event: Event) -> tuple[str, str, str, str]:
    """Return what names an event's stored record: source system, type and id, event type."""
    return (event.source.system, event.source.type, event.source.id, event.type)


class BatchRows:
    """What the store holds of one batch's records, people and accounts, and its new rows."""

    def __init__(self, conn: Connection, now: datetime):
        self.conn, self.now = conn, now
        self._records: dict[tuple, Mapping | None] = {}  # by record key; None: no record
        self._identities: dict[Ref, str | None] = {}  # non-person refs; None: nobody
        self._persons: dict[str, str | None] = {}  # person ids read again; None: gone
        self._known_accounts: set[str] = set()  # account rows that exist in this transaction
        self._touch_keys: set[str] = set()  # ledger rows of reported touches that exist
        self._pending: dict[str, list[dict]] = {table: [] for table, _ in _INSERTS}
        self._pending_keys: set[tuple] = set()
        self._pending_people: set[str] = set()

    def prefetch(self, events: Sequence[Event]) -> None:
        """Read the records, identities and accounts a batch refers to, a few queries in all."""
        keys = {_record_key(e) for e in events if e.type != "erase"}
        self._records.update(dict.fromkeys(keys))
        ids: dict[tuple[str, str, str], list[str]] = {}
        for system, source_type, source_id, record_type in sorted(keys):
            ids.setdefault((system, source_type, record_type), []).append(source_id)
        for (system, source_type, record_type), wanted in ids.items():
            for part in chunks(wanted, LOOKUP_CHUNK):
                for row in self.conn.execute(_RECORDS_OF, {
                        "system": system, "source_type": source_type,
                        "record_type": record_type, "ids": part}).mappings():
                    self._records[(row["source_system"], row["source_type"],
                                   row["source_id"], row["type"])] = row
        # The people stored person records name: each is resolved again when read again.
        held = sorted({row["person_id"] for row in self._records.values()
                       if row is not None and row["type"] == "person" and row["person_id"]})
        self._persons.update(current_people(self.conn, held))
        refs = {ref for e in events for ref in (*e.identities, e.person)
                if ref is not None and ref.kind != "person"}
        self._identities.update(people_of(self.conn, refs))
        account_ids = sorted({account_id_for(e.account) for e in events if e.account} |
                             {account_id_for(source_ref(e.source.system, e.source.id))
                              for e in events if e.type == "account" and not e.deleted})
        for part in chunks(account_ids, LOOKUP_CHUNK):
            self._known_accounts.update(
                self.conn.execute(_ACCOUNTS_EXIST, {"ids": part}).scalars())
        touches = sorted({e.source.key for e in events if e.type == "touch" and not e.deleted})
        for part in chunks(touches, LOOKUP_CHUNK):
            self._touch_keys.update(self.conn.execute(_TOUCHES_EXIST, {"keys": part}).scalars())

    def flush(self) -> None:
        """Write the pending people, identities, records and touches, in the order they came."""
        for table, statement in _INSERTS:
            rows = self._pending[table]
            if rows:
                self.conn.execute(statement, rows)
                rows.clear()
        for key in self._pending_keys:
            self._records.pop(key, None)  # re-read with its id when next needed
        self._pending_keys.clear()
        self._pending_people.clear()

    def resolve(self, ref: Ref) -> str | None:
        """Return the live person a reference names, or None."""
        if ref.kind == "person":
            if ref.value in self._pending_people:
                return ref.value
            if ref.value in self._persons:
                return self._persons[ref.value]
            # Rows still pending are fresh people, never an alias: the store answers alone.
            return resolve_person(self.conn, ref)
        if ref not in self._identities:
            self._identities.update(people_of(self.conn, {ref}))
        return self._identities[ref]

    def record(self, event: Event) -> Mapping | None:
        """Return the stored record of the event's source, or None."""
        key = _record_key(event)
        if key in self._pending_keys:
            self.flush()
        if key not in self._records:
            source = event.source
            self._records[key] = self.conn.execute(_RECORD, {
                "system": source.system, "source_type": source.type, "source_id": source.id,
                "record_type": event.type}).mappings().first()
        return self._records[key]

    def account(self, ref: Ref) -> str:
        """Return the id of the account a source reference names, making its row if need be."""
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

    def touch_stored(self, key: str) -> bool:
        """Say whether the ledger holds the reported touch with this source key."""
        return key in self._touch_keys

    def add_person(self) -> str:
        """Hold a new person's row for the next flush; return their id."""
        person_id = new_person_id()
        self._pending["people"].append({
            "id": person_id, "profile": {"id": person_id}, "erased": False,
            "created_at": self.now, "updated_at": self.now})
        self._pending_people.add(person_id)
        return person_id

    def add_identity(self, ref: Ref, person_id: str) -> None:
        """Hold a new identity of a person for the next flush."""
        self._pending["identities"].append(
            {"kind": ref.kind, "value": ref.value, "person_id": person_id})
        self._identities[ref] = person_id

    def add_record(self, event: Event, values: Mapping) -> None:
        """Hold the new record of an event's source for the next flush."""
        source = event.source
        self._pending["records"].append({
            "source_system": source.system, "source_type": source.type,
            "source_id": source.id, "type": event.type, **values})
        self._pending_keys.add(_record_key(event))

    def add_touch(self, key: str, row: dict) -> None:
        """Hold the ledger row of a touch the ledger has never seen for the next flush."""
        self._pending["ledger"].append(row)
        self._touch_keys.add(key)

    def update_record(self, event: Event, old: Mapping, values: Mapping) -> None:
        """Write new values to the stored record of an event's source."""
        self.conn.execute(_UPDATE_RECORD, {"record_id": old["id"], **values})
        self._records[_record_key(event)] = {**old, **values}

    def delete_record(self, event: Event, old: Mapping) -> None:
        """Delete the stored record of an event's source."""
        self.conn.execute(sa.delete(records).where(records.c.id == old["id"]))
        self._records[_record_key(event)] = None

    def reassign(self, person_id: str, to: str | None) -> None:
        """Take note that what a person held is another's now (a merge), or nobody's (erasure)."""
        self._identities = {ref: (to if pid == person_id else pid)
                            for ref, pid in self._identities.items()}
        self._persons = {value: (to if pid == person_id else pid)
                         for value, pid in self._persons.items()}
        # Their records moved or went: each is read again when next needed.
        self._records.clear()
