"""API keys: create one (shown once), store only its hash, authenticate, limit and revoke it.

Keys are 32 random bytes, so a plain SHA-256 is the right hash: there is
nothing to brute-force that a slow password hash would protect, and every
request pays for the lookup. A key found in the store is remembered by each
process for ``KEY_CACHE_SECONDS``: a key revoked, replaced or removed in the
store stops working within that time (at once in the process that did it).

A key's ``sender`` and ``purpose`` are defaults; its ``senders`` and
``purposes`` are limits (names or patterns such as ``dealer:*``): a request
outside them is refused, whatever endpoint it comes through (``ApiKey.permit``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import secrets
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from time import monotonic
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from guard.errors import Conflict, Forbidden, InvalidField, NotFound
from guard.store.engine import read_only
from guard.store.tables import api_keys
from guard.store.util import utc_now

SCOPES = ("check", "send", "events", "admin", "console", "metrics")
PREFIX = "cg_"
# The key GUARD_ADMIN_KEY bootstraps keeps this id, so changing the setting replaces it.
BOOTSTRAP_ID = "key_admin"


@dataclass(frozen=True)
class ApiKey:
    """A caller's key as stored: who it is, what it may do, its defaults and its limits."""

    id: str
    name: str
    scopes: frozenset[str]
    sender: str | None = None
    purpose: str | None = None
    # Allow-lists of names or patterns; empty: no limit.
    senders: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    @property
    def defaults(self) -> dict[str, str]:
        """The sender and purpose a request falls back to."""
        return {k: v for k, v in (("sender", self.sender), ("purpose", self.purpose)) if v}

    def permit(self, sender: str | None, purpose: str | None, *,
               sender_field: str = "sender", purpose_field: str = "purpose") -> None:
        """Raise Forbidden naming the field if the sender or purpose is outside the key's lists."""
        if sender and not within(sender, self.senders):
            raise Forbidden(f"{sender_field}: key {self.name!r} may not send as {sender!r} "
                            f"(its senders: {', '.join(self.senders)})", field=sender_field)
        if purpose and not within(purpose, self.purposes):
            raise Forbidden(f"{purpose_field}: key {self.name!r} may not send for {purpose!r} "
                            f"(its purposes: {', '.join(self.purposes)})", field=purpose_field)


def within(value: str, patterns: Sequence[str]) -> bool:
    """Say whether ``value`` is one of ``patterns`` or matches one; no patterns: no limit."""
    return not patterns or any(value == p or fnmatch.fnmatchcase(value, p) for p in patterns)


def hash_key(token: str) -> str:
    """Hash a presented key for lookup."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def check_scopes(scopes: Iterable[str]) -> frozenset[str]:
    """Validate a list of scope names, raising InvalidField naming the bad one."""
    chosen = []
    for index, scope in enumerate(scopes):
        if scope not in SCOPES:
            raise InvalidField(f"scopes.{index}", f"unknown scope {scope!r} (known: "
                               f"{', '.join(SCOPES)})")
        chosen.append(scope)
    if not chosen:
        raise InvalidField("scopes", f"give at least one of {', '.join(SCOPES)}")
    return frozenset(chosen)


# An allow-list entry: printable, no blanks (a stray space makes an entry that never matches).
_NAME = re.compile(r"[^\x00-\x20\x7f-\x9f]{1,128}")


def _limits(field: str, values: Iterable[str] | None, known: Iterable[str] | None,
            covers) -> tuple[str, ...]:
    """Validate an allow-list; None: no limit. ``covers(entry, name)`` matches a policy name."""
    if values is None:
        return ()
    chosen: list[str] = []
    names = tuple(known) if known is not None else None
    for index, value in enumerate(values):
        if not isinstance(value, str) or not _NAME.fullmatch(value):
            raise InvalidField(f"{field}.{index}", "a name or pattern of 1-128 printable "
                                                  "characters without spaces")
        if names is not None and not any(covers(value, name) for name in names):
            raise InvalidField(f"{field}.{index}", f"{value!r} matches none of the policy's "
                                                  f"{field} ({', '.join(names)})")
        if value not in chosen:
            chosen.append(value)
    if not chosen:
        raise InvalidField(field, "give at least one name or pattern, or leave it out for no "
                                  "limit")
    return tuple(chosen)


def _sender_covers(entry: str, declared: str) -> bool:
    # Either may be a pattern: "dealer:*" on a key covers the policy's "dealer:*" and
    # "dealer:munich"; "dealer:munich" on a key lies within the policy's "dealer:*".
    return (entry == declared or fnmatch.fnmatchcase(entry, declared)
            or fnmatch.fnmatchcase(declared, entry))


def _purpose_covers(entry: str, declared: str) -> bool:
    return entry == declared or fnmatch.fnmatchcase(declared, entry)


def new_key(name: str, scopes: Iterable[str], *, sender: str | None = None,
            purpose: str | None = None, senders: Iterable[str] | None = None,
            purposes: Iterable[str] | None = None, policy: Any = None) -> ApiKey:
    """Validate a key's settings, raising InvalidField naming the bad one; return the key.

    With ``policy``, every sender and purpose must be one it knows. The
    defaults must lie within the key's own allow-lists.
    """
    if not isinstance(name, str) or not name.strip():
        raise InvalidField("name", "give the key a name")
    chosen = check_scopes(scopes)
    sender_limits = _limits("senders", senders, policy.senders if policy else None,
                            _sender_covers)
    purpose_limits = _limits("purposes", purposes, policy.purposes if policy else None,
                             _purpose_covers)
    if sender and policy is not None and not policy.knows_sender(sender):
        raise InvalidField("sender", f"{sender!r} matches none of the policy's senders "
                                     f"({', '.join(policy.senders)})")
    if sender and not within(sender, sender_limits):
        raise InvalidField("sender", f"the default {sender!r} is outside the key's senders "
                                     f"({', '.join(sender_limits)})")
    if purpose and policy is not None and purpose not in policy.purposes:
        raise InvalidField("purpose", f"unknown purpose {purpose!r}")
    if purpose and not within(purpose, purpose_limits):
        raise InvalidField("purpose", f"the default {purpose!r} is outside the key's purposes "
                                      f"({', '.join(purpose_limits)})")
    return ApiKey(f"key_{secrets.token_hex(8)}", name.strip(), chosen, sender or None,
                  purpose or None, sender_limits, purpose_limits)


def _row(key: ApiKey, digest: str) -> dict:
    return {
        "id": key.id,
        "name": key.name,
        "key_hash": digest,
        "scopes": " ".join(sorted(key.scopes)),
        "sender": key.sender,
        "purpose": key.purpose,
        "senders": list(key.senders) or None,
        "purposes": list(key.purposes) or None,
        "created_at": utc_now(),
        "revoked_at": None,
    }


def create_key(
    engine: Engine,
    name: str,
    scopes: Iterable[str],
    *,
    sender: str | None = None,
    purpose: str | None = None,
    senders: Iterable[str] | None = None,
    purposes: Iterable[str] | None = None,
    policy: Any = None,
) -> tuple[ApiKey, str]:
    """Create a key; return it and the secret token, which is never shown again."""
    key = new_key(name, scopes, sender=sender, purpose=purpose, senders=senders,
                  purposes=purposes, policy=policy)
    token = PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(sa.insert(api_keys).values(_row(key, hash_key(token))))
    return key, token


def ensure_admin_key(engine: Engine, token: str) -> ApiKey:
    """Make ``token`` the bootstrap admin key (idempotent; replaces a previous bootstrap key).

    A new value replaces a revoked one; the very value that was revoked stays
    revoked, and saying so (Conflict) is the caller's cue to stop.
    """
    key = ApiKey(BOOTSTRAP_ID, "admin (GUARD_ADMIN_KEY)", frozenset({"admin"}))
    digest = hash_key(token)
    _recent.forget(engine)
    with engine.begin() as conn:
        current = conn.execute(
            sa.select(api_keys.c.key_hash, api_keys.c.revoked_at)
            .where(api_keys.c.id == BOOTSTRAP_ID)
        ).first()
        if current is None:
            conn.execute(sa.insert(api_keys).values(_row(key, digest)))
        elif not hmac.compare_digest(current.key_hash, digest):
            conn.execute(
                sa.update(api_keys).where(api_keys.c.id == BOOTSTRAP_ID)
                .values(key_hash=digest, revoked_at=None)
            )
        elif current.revoked_at is not None:
            raise Conflict("GUARD_ADMIN_KEY: this value was revoked (guard keys revoke "
                           f"{BOOTSTRAP_ID}); set a new one", field="GUARD_ADMIN_KEY")
    return key


def _utc(value: datetime | None) -> str | None:
    # SQLite keeps no offset: every time is stored in UTC and read back naive.
    if value is None:
        return None
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
            ).isoformat()


def describe(row: Any) -> dict[str, Any]:
    """A stored key as the API and CLI show it: everything but its hash."""
    return {
        "id": row.id, "name": row.name, "scopes": sorted((row.scopes or "").split()),
        "sender": row.sender, "purpose": row.purpose,
        "senders": list(row.senders) if row.senders else None,
        "purposes": list(row.purposes) if row.purposes else None,
        "created_at": _utc(row.created_at), "revoked_at": _utc(row.revoked_at),
    }


# Every column but the hash, so that no listing can show it by accident.
_PUBLIC = [c for c in api_keys.c if c.name != "key_hash"]


def list_keys(engine: Engine) -> list[dict[str, Any]]:
    """List every key, revoked ones included, oldest first."""
    with read_only(engine.connect()) as conn:
        rows = conn.execute(sa.select(*_PUBLIC).order_by(api_keys.c.created_at, api_keys.c.id))
        return [describe(row) for row in rows]


def revoke_key(engine: Engine, key_id: str) -> dict[str, Any]:
    """Revoke a key (idempotent) and return it; raise NotFound for an unknown id.

    It stops working at once in this process and within ``KEY_CACHE_SECONDS``
    in others; the worker drops the sends it left in the outbox.
    """
    with engine.begin() as conn:
        conn.execute(sa.update(api_keys)
                     .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                     .values(revoked_at=utc_now()))
        row = conn.execute(sa.select(*_PUBLIC).where(api_keys.c.id == key_id)).first()
    _recent.forget(engine)
    if row is None:
        raise NotFound(f"id: no API key {key_id!r}", field="id")
    return describe(row)


def revocation(engine: Engine, key_id: str | None) -> str | None:
    """Say why sends queued under ``key_id`` may not go out (revoked or removed), or None."""
    if key_id is None:
        return None
    with read_only(engine.connect()) as conn:
        row = conn.execute(sa.select(api_keys.c.revoked_at)
                           .where(api_keys.c.id == key_id)).first()
    if row is None:
        return f"API key {key_id} no longer exists; what it queued is not sent"
    if row.revoked_at is not None:
        return (f"API key {key_id} was revoked at {_utc(row.revoked_at)}; what it queued is "
                "not sent")
    return None


# Built once: every API request looks its key up.
_BY_HASH = sa.select(api_keys).where(api_keys.c.key_hash == sa.bindparam("key_hash"))


KEY_CACHE_SECONDS = 5.0
_KEY_CACHE_SIZE = 1024


class _RecentKeys:
    """Keys found in each store in the last ``KEY_CACHE_SECONDS``, by hash.

    Only keys that exist are remembered, so a key is usable the moment it is
    created. ``forget`` starts a new generation: a lookup that began before it
    (and may have read a key since revoked) does not put its answer back.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: weakref.WeakKeyDictionary[Engine, dict[str, tuple[float, ApiKey]]] = (
            weakref.WeakKeyDictionary())
        self._generations: weakref.WeakKeyDictionary[Engine, int] = weakref.WeakKeyDictionary()

    def get(self, engine: Engine, digest: str) -> ApiKey | None:
        with self._lock:
            found = self._stores.get(engine, {}).get(digest)
        if found is None or found[0] < monotonic():
            return None
        return found[1]

    def generation(self, engine: Engine) -> int:
        with self._lock:
            return self._generations.get(engine, 0)

    def put(self, engine: Engine, digest: str, key: ApiKey, generation: int) -> None:
        with self._lock:
            if self._generations.get(engine, 0) != generation:
                return
            known = self._stores.setdefault(engine, {})
            if len(known) >= _KEY_CACHE_SIZE:
                known.clear()
            known[digest] = (monotonic() + KEY_CACHE_SECONDS, key)

    def forget(self, engine: Engine) -> None:
        with self._lock:
            self._stores.pop(engine, None)
            self._generations[engine] = self._generations.get(engine, 0) + 1


_recent = _RecentKeys()


def authenticate(engine: Engine, token: str) -> ApiKey | None:
    """Find the key a caller presented, or None (unknown or revoked)."""
    if not token:
        return None
    digest = hash_key(token)
    key = _recent.get(engine, digest)
    if key is not None:
        return key
    generation = _recent.generation(engine)
    with read_only(engine.connect()) as conn:
        row = conn.execute(_BY_HASH, {"key_hash": digest}).mappings().first()
    if row is None or row["revoked_at"] is not None:
        return None
    key = ApiKey(
        id=row["id"],
        name=row["name"],
        scopes=frozenset((row["scopes"] or "").split()),
        sender=row["sender"],
        purpose=row["purpose"],
        senders=tuple(row["senders"] or ()),
        purposes=tuple(row["purposes"] or ()),
    )
    _recent.put(engine, digest, key, generation)
    return key
