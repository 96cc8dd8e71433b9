"""Store a batch of events in the caller's transaction.

``ingest(conn, events, policy, now, salt)`` stores each event whole or not at
all (every check that can refuse an event runs before its first write, so no
savepoint is needed), keeps the valid rest of the batch, and rebuilds each
touched person's profile once at the end. The records, identities and
accounts a batch names are read in a few queries up front, and its new rows
are written together (``guard.ingest.batch``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from guard import collector
from guard.errors import InvalidField
from guard.ingest import erasure
from guard.ingest.batch import BatchRows
from guard.ingest.events import Event, parse_event
from guard.ingest.identity import Ref, source_ref
from guard.ingest.people import describe, merge_people
from guard.ingest.profiles import rebuild
from guard.store.codec import dumps_json, loads_json
from guard.store.ledger import delete_touch, new_touch_row, upsert_touch
from guard.store.tables import accounts, campaigns, records
from policies.model import Account, Campaign

# Accounts and campaigns first, then people, then what refers to them; erasures last,
# so a batch that names a person and erases them leaves nothing behind.
_ORDER = {"account": 0, "campaign": 0, "person": 1, "erase": 3}
# The field of a person event that states an identity of each kind.
_IDENTITY_FIELD = {"email": "emails", "phone": "phones", "ref": "crm_ids"}


def ingest(conn: Connection, raw_events: Sequence[Any], policy, now: datetime,
           salt: bytes | None) -> dict:
    """Store a batch of events; return ``{"accepted", "rejected": [{index, source, detail}]}``."""
    with collector.paused():
        return _ingest(conn, raw_events, policy, now, salt)


def _ingest(conn: Connection, raw_events: Sequence[Any], policy, now: datetime,
            salt: bytes | None) -> dict:
    writer = _Writer(conn, policy, now, salt)
    accepted = 0
    rejected = []
    order = sorted(range(len(raw_events)), key=lambda i: (_rank(raw_events[i]), i))
    parsed: list[tuple[int, Event | InvalidField]] = []
    for index in order:
        try:
            parsed.append((index, parse_event(raw_events[index], policy)))
        except InvalidField as exc:
            parsed.append((index, exc))
    writer.rows.prefetch([event for _, event in parsed if isinstance(event, Event)])
    for index, event in parsed:
        # No savepoint per event: every handler raises InvalidField before its first
        # write, so a refused event leaves nothing behind (tests pin this).
        try:
            if isinstance(event, InvalidField):
                raise event
            writer.apply(event)
        except InvalidField as exc:
            raw = raw_events[index]
            source = raw.get("source") if isinstance(raw, Mapping) else None
            rejected.append({"index": index, "source": source, "detail": exc.detail})
            continue
        accepted += 1
    writer.finish()
    rejected.sort(key=lambda r: r["index"])
    return {"accepted": accepted, "rejected": rejected}


def _rank(raw: Any) -> int:
    kind = raw.get("type") if isinstance(raw, Mapping) else None
    return _ORDER.get(kind, 2) if isinstance(kind, str) else 2


def _unchanged(old: Mapping, payload: dict, person_id: str | None, account_id: str | None,
               address: str | None) -> bool:
    """Return whether a stored record already holds this payload for these owners."""
    if (old["person_id"], old["account_id"], old["address"]) != (person_id, account_id, address):
        return False
    # Compared as stored: through JSON, as the record was read back (dates become text).
    return old["payload"] == loads_json(dumps_json(payload))


class _Writer:
    """Applies validated events inside the caller's transaction; tracks whom to rebuild."""

    def __init__(self, conn: Connection, policy, now: datetime, salt: bytes | None):
        self.conn, self.policy, self.now, self.salt = conn, policy, now, salt
        self.rows = BatchRows(conn, now)
        self._key_adopted = False  # the store holds this key's check value
        # Most stores have never erased anyone: then no identity needs a look-up.
        self._any_erasure = erasure.anyone_erased(conn)
        self.people: set[str] = set()
        # People whose person records changed or went: only they can hold an identity
        # no record states any more (the rebuild looks for those only among them).
        self.restated: set[str] = set()
        self.accounts: set[str] = set()

    def apply(self, event: Event) -> None:
        """Store one validated event, or raise InvalidField before writing anything."""
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
        """Write what is pending and rebuild everyone the batch touched."""
        self.rows.flush()
        if self.accounts:
            members = self.conn.execute(
                sa.select(records.c.person_id).distinct()
                .where(records.c.type == "person", records.c.account_id.in_(self.accounts),
                       records.c.person_id.is_not(None))
            ).scalars()
            self.people.update(members)
        rebuild(self.conn, self.people, self.policy, self.now, self.restated)

    # -- records ---------------------------------------------------------------------

    def _upsert(self, event: Event, payload: dict, *, person_id: str | None = None,
                account_id: str | None = None, address: str | None = None,
                old: Mapping | None = None, looked_up: bool = False) -> bool:
        """Store the event's record; return False when it was stored already, unchanged."""
        if not looked_up:
            old = self.rows.record(event)
        if old is not None and _unchanged(old, payload, person_id, account_id, address):
            # A record read again as it was (a re-sync, or an edit of a field the guard does
            # not map) is not new: no write, no rebuild of its people, and its updated_at
            # keeps saying when its content last changed (profiles order records by it).
            return False
        values = {"payload": payload, "person_id": person_id, "account_id": account_id,
                  "address": address, "updated_at": self.now}
        if old is None:
            self.rows.add_record(event, values)
        else:
            self.rows.update_record(event, old, values)
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
        old = self.rows.record(event)
        if old is None:
            return  # retracting what we never had is already done
        if event.type == "touch":
            self.rows.flush()  # its ledger row may still be waiting to be written
        self.rows.delete_record(event, old)
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

    def _refuse_erased(self, kind: str, refs: Sequence[Ref]) -> None:
        if not self._any_erasure or not refs:
            return
        if self.salt is None:
            raise InvalidField(_field_of(kind, refs[0]),
                               f"{erasure.SETTING} is not set, and people were erased in "
                               "this store: it cannot tell whether this is one of them")
        erased = erasure.erased_on(self.conn, self.salt, refs)
        for ref in refs:
            if ref in erased:
                what = "address" if ref.kind in ("email", "phone") else "record"
                raise InvalidField(_field_of(kind, ref),
                                   f"{what} was erased on {erased[ref]} (right to erasure); "
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
        person_id = self.rows.resolve(ref)
        if person_id is None:
            if ref.kind != "person" and erasure.erased_on(self.conn, self.salt, [ref]):
                return  # erased before: erasing again changes nothing
            raise InvalidField("erase.person", f"no person matches {describe(ref)}")
        self.rows.flush()
        if not self._key_adopted:
            erasure.adopt_key(self.conn, state, self.salt, erasing=True)
            self._key_adopted = True
        erasure.erase_person(self.conn, person_id, self.salt, self.now,
                             self.policy.defaults.region)
        self.rows.reassign(person_id, None)
        self._any_erasure = True
        self.people.discard(person_id)

    # -- people and accounts -----------------------------------------------------------

    def _person(self, event: Event) -> None:
        self._refuse_erased("person", event.identities)
        old = self.rows.record(event)
        found: list[str] = []
        if old is not None and old["person_id"]:
            current = self.rows.resolve(Ref("person", old["person_id"]))
            if current:
                found.append(current)
        missing = []
        for ref in event.identities:
            person_id = self.rows.resolve(ref)
            if person_id is None:
                missing.append(ref)
            elif person_id not in found:
                found.append(person_id)
        if not found:
            winner = self.rows.add_person()
        else:
            winner = found[0]
            if len(found) > 1:
                self.rows.flush()
                for loser in found[1:]:
                    merge_people(self.conn, loser, winner)
                    self.rows.reassign(loser, winner)
                    self.people.discard(loser)
                    self.restated.add(winner)
        for ref in missing:
            self.rows.add_identity(ref, winner)
        account_id = self.rows.account(event.account) if event.account else None
        payload = {**event.fields, "identities": [[r.kind, r.value] for r in event.identities]}
        changed = self._upsert(event, payload, person_id=winner, account_id=account_id,
                               old=old, looked_up=True)
        if changed or missing or len(found) != 1:
            self.people.add(winner)

    def _account(self, event: Event) -> None:
        account_id = self.rows.account(source_ref(event.source.system, event.source.id))
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
            person_id = self.rows.resolve(ref)
            bare = event.type == "consent" and ref.kind in ("email", "phone")
            if person_id is None and not bare:
                raise InvalidField(f"{event.type}.person", f"no person matches {describe(ref)}")
            if bare:
                self._refuse_erased(event.type, [ref])
                address = ref.value
        account_id = self.rows.account(event.account) if event.account else None
        if not self._upsert(event, dict(event.fields), person_id=person_id,
                            account_id=account_id, address=address):
            return
        if person_id:
            self.people.add(person_id)
        if account_id:
            self.accounts.add(account_id)

    def _touch(self, event: Event) -> None:
        person_id = self.rows.resolve(event.person)
        if person_id is None:
            raise InvalidField("touch.person", f"no person matches {describe(event.person)}")
        changed = self._upsert(event, dict(event.fields), person_id=person_id)
        key = event.source.key
        if self.rows.touch_stored(key):
            if not changed:
                return  # its ledger row says the same already
            self.rows.flush()
            upsert_touch(self.conn, person_id, key, event.evidence, event.fields, self.now)
            return
        # A touch the ledger has never seen: the row upsert_touch would insert, written
        # with the batch's other new rows.
        self.rows.add_touch(key, new_touch_row(person_id, key, event.evidence, event.fields,
                                               self.now))

    def _campaign(self, event: Event) -> None:
        campaign = Campaign.from_dict({**event.fields, "source": event.evidence.to_dict()})
        key = event.source.key
        self.conn.execute(sa.delete(campaigns).where(campaigns.c.record_key == key))
        self.conn.execute(sa.delete(campaigns).where(campaigns.c.id == campaign.id))
        self.conn.execute(sa.insert(campaigns).values(
            id=campaign.id, campaign=campaign.to_dict(), record_key=key, updated_at=self.now))
        self._upsert(event, dict(event.fields))


def _field_of(kind: str, ref: Ref) -> str:
    """Name the field of a ``kind`` event that stated an identity, for an error message."""
    if kind == "person":
        return f"person.{_IDENTITY_FIELD.get(ref.kind, 'source')}"
    return f"{kind}.{ref.kind}"
