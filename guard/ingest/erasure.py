"""Right to erasure (GDPR Art. 17): forget a person everywhere the store holds them.

What stays of an erased person is a keyed hash of each address and CRM id
(HMAC-SHA256 with ``GUARD_ERASURE_SALT``), so a later sync, import or check
recognises them without the store holding who they were; and, in the
ledger, what the audit trail needs of each decision (verdict, rules, time,
policy version), never the address.

The key is a secret outside the store: with it in the store, anyone who
reads the store recovers a phone number from its hash by trying every number
of the country. The store keeps only a check value of the key (an HMAC of a
fixed text), so a service started with another key refuses to start instead
of letting erased people back in.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from hashlib import sha256
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from guard.checks.flags import DO_NOT_CONTACT, ERASED
from guard.ingest import names
from guard.ingest.identity import (
    Ref,
    erased_recipient,
    erasure_hash,
    normalize_email,
    normalize_phone,
)
from guard.proxy.erasure import forget_sends
from guard.store import ledger as contact_ledger
from guard.store.tables import (
    ACTIONS_FINISHED,
    erasure_notices,
    erasures,
    hook_inbox,
    hubspot_actions,
    idempotency_keys,
    identities,
    owner_tasks,
    people,
    records,
    settings,
)
from guard.store.util import chunks
from policies.model import Profile, parse_datetime

SETTING = "GUARD_ERASURE_SALT"
# The settings rows: the check value of the key, and a salt older stores keep in
# themselves, which start-up deletes (the key belongs outside the store).
KEY_CHECK = "erasure_key_check"
STORED_SALT = "erasure_salt"
# A new key must be long enough that trying keys is hopeless; a key earlier erasures were
# made with is kept whatever its length (their hashes cannot be made again without it).
KEY_MIN_LENGTH = 32
_CHECK_TEXT = b"contact-guard erasure key check"
_PAGE = 500
# Fields of a HubSpot webhook event that name the record it is about.
_OBJECT_FIELDS = ("objectId", "primaryObjectId", "mergedObjectIds", "newObjectId")
_REDACTED_ERROR = "redacted: named a person who exercised the right to erasure"
_INSERT = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}
_ANY_ERASURE = sa.select(erasures.c.hash).limit(1)
_ERASED_AT = sa.select(erasures.c.hash, erasures.c.erased_at).where(
    erasures.c.hash.in_(sa.bindparam("hashes", expanding=True)))


@dataclass(frozen=True)
class KeyState:
    """What the store says about the erasure key: its check value, an old salt, erasures."""

    check: str | None
    stored_salt: str | None
    erased: bool


def key_state(conn: Connection) -> KeyState:
    """Read the key's check value, a salt kept in the store, and whether anyone is erased."""
    found = dict(conn.execute(sa.select(settings.c.name, settings.c.value).where(
        settings.c.name.in_((KEY_CHECK, STORED_SALT)))).all())
    return KeyState(found.get(KEY_CHECK), found.get(STORED_SALT), anyone_erased(conn))


def anyone_erased(conn: Connection) -> bool:
    """Say whether anyone was ever erased in this store (most stores never erase anyone)."""
    return conn.execute(_ANY_ERASURE).first() is not None


def erased_on(conn: Connection, key: bytes, refs: Collection[Ref]) -> dict[Ref, str]:
    """Return the day (ISO date) each erased identity among ``refs`` was erased."""
    hashes = {erasure_hash(key, ref): ref for ref in refs}
    if not hashes:
        return {}
    return {hashes[digest]: parse_datetime(at).date().isoformat() for digest, at in
            conn.execute(_ERASED_AT, {"hashes": list(hashes)}).all()}


def key_problem(state: KeyState, key: bytes | None) -> str | None:
    """Say why ``key`` cannot make and read this store's erasure hashes (None: it can)."""
    read_salt = (f"set {SETTING} to the value of: SELECT value FROM settings WHERE "
                 f"name = '{STORED_SALT}'")
    if key is None:
        if state.stored_salt is not None and state.erased:
            return (f"not set, and this store keeps the salt of its erasure hashes in its "
                    f"settings table, where anyone who reads the store can recover an erased "
                    f"phone number from its hash. Move it out: {read_salt}; then start again "
                    f"(the service deletes the stored copy)")
        if state.check is not None or state.erased:
            return ("not set, and people were erased in this store: recognising them needs "
                    "the key their hashes were made with")
        return None
    if state.check is not None and not hmac.compare_digest(state.check, check_value(key)):
        return "not the key this store's erasures were made with"
    if state.check is None and state.stored_salt is not None and state.erased \
            and not hmac.compare_digest(state.stored_salt.encode(), key):
        return (f"differs from the salt this store's erasures were made with, which it keeps "
                f"in its settings table; {read_salt}")
    if state.check is None and not state.erased and len(key) < KEY_MIN_LENGTH:
        return (f"at least {KEY_MIN_LENGTH} characters of a random secret, got {len(key)} "
                "(e.g. the output of: openssl rand -hex 32)")
    return None


def check_value(key: bytes) -> str:
    """Return the check value the store keeps of the key (it reveals nothing of the key)."""
    return hmac.new(key, _CHECK_TEXT, sha256).hexdigest()


def adopt_key(conn: Connection, state: KeyState, key: bytes | None, *,
              erasing: bool = False) -> None:
    """Record the key's check value once anyone is erased; delete a salt the store kept.

    Call only when ``key_problem`` found none: a stored salt is then either the
    key itself or the salt of a store that never erased anyone.
    """
    if key is not None and state.check is None and (state.erased or erasing):
        # Two processes adopting the same key at once write the same row: one of them is kept.
        insert = _INSERT[conn.dialect.name](settings).on_conflict_do_nothing(
            index_elements=["name"])
        conn.execute(insert.values(name=KEY_CHECK, value=check_value(key)))
    if state.stored_salt is not None:
        conn.execute(sa.delete(settings).where(settings.c.name == STORED_SALT))


def erase_person(conn: Connection, person_id: str, key: bytes, now: datetime,
                 region: str | None = None) -> None:
    """Delete a person's data everywhere, keeping keyed hashes of their identities."""
    refs = [Ref(kind, value) for kind, value in conn.execute(
        sa.select(identities.c.kind, identities.c.value)
        .where(identities.c.person_id == person_id)).all()]
    profile = conn.execute(sa.select(people.c.profile).where(people.c.id == person_id)).scalar()
    profile = profile or {}
    for email in profile.get("emails") or ():
        refs.append(Ref("email", email))
    for phone in profile.get("phones") or ():
        refs.append(Ref("phone", phone))
    crm_ids: dict[str, set[str]] = {}
    for system, ids in (profile.get("crm_ids") or {}).items():
        crm_ids.setdefault(system, set()).update(
            str(i) for i in ([ids] if isinstance(ids, (str, int)) else ids))
    for ref in refs:
        if ref.kind == "ref":
            system, record_id = ref.value.split(":", 1)
            crm_ids.setdefault(system, set()).add(record_id)
    refs = list(dict.fromkeys(refs))
    # Reps must see "Do not contact" on the CRM records too, until an admin deletes them.
    for system, ids in (profile.get("crm_ids") or {}).items():
        for record_id in [ids] if isinstance(ids, (str, int)) else ids:
            conn.execute(sa.delete(erasure_notices).where(
                erasure_notices.c.system == system,
                erasure_notices.c.record_id == str(record_id)))
            conn.execute(sa.insert(erasure_notices).values(
                system=system, record_id=str(record_id), erased_at=now))
    hashes = {erasure_hash(key, ref) for ref in refs}
    known = set(conn.execute(sa.select(erasures.c.hash).where(erasures.c.hash.in_(hashes)))
                .scalars()) if hashes else set()
    for digest in sorted(hashes - known):
        conn.execute(sa.insert(erasures).values(hash=digest, erased_at=now))
    addresses = {r.value for r in refs if r.kind in ("email", "phone")}
    conn.execute(sa.delete(identities).where(identities.c.person_id == person_id))
    conn.execute(sa.delete(records).where(records.c.person_id == person_id))
    if addresses:
        conn.execute(sa.delete(records).where(records.c.address.in_(sorted(addresses))))
    conn.execute(sa.delete(owner_tasks).where(owner_tasks.c.person_id == person_id))
    decision_ids = set(contact_ledger.redact_person(conn, person_id))
    decision_ids.update(contact_ledger.redact_recipients(
        conn, {ref.value: erased_recipient(key, ref) for ref in refs}))
    theirs = _recognise(addresses, region)
    forget_sends(conn, decision_ids, theirs)
    forget_deliveries(conn, crm_ids, addresses, theirs)
    forget_answers(conn, decision_ids)
    forget_executions(conn, decision_ids)
    names.forget(conn, [person_id])
    erased = Profile(id=person_id, erased=True)
    conn.execute(sa.update(people).where(people.c.id == person_id).values(
        profile=erased.to_dict(), erased=True, updated_at=now,
        flags={"status": DO_NOT_CONTACT, "flags": [ERASED], "updated": now.isoformat()},
        flags_hash=None))


def _recognise(addresses: Collection[str], region: str | None) -> Callable[[str], bool]:
    """Return whether a recipient as a caller wrote it is one of the erased ``addresses``."""
    emails = {a for a in addresses if "@" in a}
    phones = {a for a in addresses if "@" not in a}

    def erased(text: str) -> bool:
        try:
            if "@" in text:
                return bool(emails) and normalize_email(text) in emails
            return bool(phones) and normalize_phone(text.removeprefix("whatsapp:"),
                                                    region) in phones
        except ValueError:
            return False

    return erased


def forget_deliveries(conn: Connection, crm_ids: Mapping[str, Collection[str]],
                      addresses: Collection[str], theirs: Callable[[str], bool]) -> int:
    """Take an erased person's events out of the stored webhook deliveries; return rows changed.

    An event is theirs when it is about one of their ``crm_ids`` or holds a
    value ``theirs`` recognises as one of their ``addresses``. A delivery
    processed already is deleted if it named them; one still waiting keeps
    its other events (the person's would be refused anyway).
    """
    wanted = {a.lower() for a in addresses}
    changed = 0
    after = 0
    while True:
        rows = conn.execute(
            sa.select(hook_inbox.c.id, hook_inbox.c.system, hook_inbox.c.payload,
                      hook_inbox.c.processed_at, hook_inbox.c.error)
            .where(hook_inbox.c.id > after).order_by(hook_inbox.c.id).limit(_PAGE)).all()
        if not rows:
            return changed
        after = rows[-1].id
        for row in rows:
            ids = {str(i) for i in crm_ids.get(row.system, ())}
            events = row.payload if isinstance(row.payload, list) else [row.payload]
            kept = [e for e in events if not _names(e, ids, theirs)]
            error = row.error
            if error and any(a in error.lower() for a in wanted):
                error = _REDACTED_ERROR
            if len(kept) == len(events) and error == row.error:
                continue
            changed += 1
            if not kept or (row.processed_at is not None and len(kept) != len(events)):
                conn.execute(hook_inbox.delete().where(hook_inbox.c.id == row.id))
            else:
                conn.execute(hook_inbox.update().where(hook_inbox.c.id == row.id)
                             .values(payload=kept, error=error))


def _names(event: Any, ids: set[str], theirs: Callable[[str], bool]) -> bool:
    """Say whether a webhook event is about one of ``ids`` or holds an address of theirs."""
    if not isinstance(event, Mapping):
        return False
    for name in _OBJECT_FIELDS:
        value = event.get(name)
        for one in value if isinstance(value, list) else [value]:
            if one is not None and str(one) in ids:
                return True
    return any(isinstance(v, str) and theirs(v) for v in event.values())


def forget_answers(conn: Connection, decision_ids: Collection[str]) -> int:
    """Strip the person from stored idempotent answers holding ``decision_ids``; count them.

    The answer itself stays, so a retry of that request still sends nothing again
    to the others it went to: only what names the person goes (the reroute header,
    and every field of a provider's JSON answer but its ids and status).
    """
    wanted = set(decision_ids)
    if not wanted:
        return 0
    pk = (idempotency_keys.c.key_id, idempotency_keys.c.key_hash)
    theirs = []
    after: tuple[str, str] = ("", "")
    while True:
        rows = conn.execute(
            sa.select(*pk, idempotency_keys.c.decision_ids, idempotency_keys.c.response)
            .where(sa.tuple_(*pk) > sa.tuple_(*map(sa.literal, after)))
            .order_by(*pk).limit(_PAGE)).all()
        if not rows:
            break
        after = (rows[-1].key_id, rows[-1].key_hash)
        theirs += [r for r in rows if wanted.intersection((r.decision_ids or "").split())]
    for row in theirs:
        conn.execute(idempotency_keys.update().where(
            idempotency_keys.c.key_id == row.key_id, idempotency_keys.c.key_hash == row.key_hash,
        ).values(response=_without_person(row.response)))
    return len(theirs)


def forget_executions(conn: Connection, decision_ids: Collection[str]) -> None:
    """Forget finished HubSpot workflow executions of ``decision_ids``; strip the others.

    One HubSpot still waits on stays, so the worker releases the contact's workflow
    (its next check blocks the erased contact); only the reason it would send goes.
    """
    for part in chunks(sorted(set(decision_ids)), _PAGE):
        conn.execute(hubspot_actions.delete().where(
            hubspot_actions.c.decision_id.in_(part),
            hubspot_actions.c.state.in_(ACTIONS_FINISHED)))
        for callback_id, answer, outputs in conn.execute(
                sa.select(hubspot_actions.c.callback_id, hubspot_actions.c.answer,
                          hubspot_actions.c.outputs)
                .where(hubspot_actions.c.decision_id.in_(part))).all():
            conn.execute(hubspot_actions.update()
                         .where(hubspot_actions.c.callback_id == callback_id)
                         .values(answer=_without_reason(answer),
                                 outputs=_without_reason(outputs)))


def _without_reason(value: Any) -> Any:
    """Return an execution's stored fields with every ``reason`` replaced by the erasure note."""
    if isinstance(value, Mapping):
        return {k: contact_ledger.ERASED_MESSAGE if k == "reason" else _without_reason(v)
                for k, v in value.items()}
    return value


# What a provider's answer keeps once its recipient is erased: what identifies the
# message or call and its state, nothing about the person.
_ANSWER_FIELDS = ("sid", "account_sid", "status", "code", "more_info", "api_version",
                  "direction", "uri", "date_created")


def _without_person(response: Mapping) -> dict:
    """Return a stored answer without the headers and body fields that name its recipient."""
    headers = {k: v for k, v in (response.get("headers") or {}).items()
               if k != "X-Guard-Rerouted-To"}
    try:
        body = json.loads(response.get("body") or "")
    except ValueError:
        body = None
    kept = json.dumps({k: v for k, v in body.items() if k in _ANSWER_FIELDS}) \
        if isinstance(body, dict) else ""
    return {**response, "headers": headers, "body": kept}
