"""API keys: create one (shown once), store only its hash, authenticate a presented key.

Keys are 32 random bytes, so a plain SHA-256 is the right hash: there is
nothing to brute-force that a slow password hash would protect, and every
request pays for the lookup. A key found in the store is remembered by each
process for ``KEY_CACHE_SECONDS``: a key replaced or removed in the store
stops working within that time (at once in the process that replaced it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import weakref
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from time import monotonic

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from guard.db import api_keys, read_only
from guard.errors import InvalidField

SCOPES = ("check", "send", "events", "admin")
PREFIX = "cg_"
# The key GUARD_ADMIN_KEY bootstraps keeps this id, so changing the setting replaces it.
BOOTSTRAP_ID = "key_admin"


@dataclass(frozen=True)
class ApiKey:
    """A caller's key as stored: who it is, what it may do, its default sender and purpose."""

    id: str
    name: str
    scopes: frozenset[str]
    sender: str | None = None
    purpose: str | None = None

    def allows(self, scope: str) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    @property
    def defaults(self) -> dict[str, str]:
        """The sender and purpose a request falls back to."""
        return {k: v for k, v in (("sender", self.sender), ("purpose", self.purpose)) if v}


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


def _row(key: ApiKey, digest: str) -> dict:
    return {
        "id": key.id,
        "name": key.name,
        "key_hash": digest,
        "scopes": " ".join(sorted(key.scopes)),
        "sender": key.sender,
        "purpose": key.purpose,
        "created_at": datetime.now(UTC),
    }


def create_key(
    engine: Engine,
    name: str,
    scopes: Iterable[str],
    *,
    sender: str | None = None,
    purpose: str | None = None,
) -> tuple[ApiKey, str]:
    """Create a key; return it and the secret token, which is never shown again."""
    if not name or not name.strip():
        raise InvalidField("name", "give the key a name")
    key = ApiKey(f"key_{secrets.token_hex(8)}", name.strip(), check_scopes(scopes), sender,
                 purpose)
    token = PREFIX + secrets.token_urlsafe(32)
    with engine.begin() as conn:
        conn.execute(sa.insert(api_keys).values(_row(key, hash_key(token))))
    return key, token


def ensure_admin_key(engine: Engine, token: str) -> ApiKey:
    """Make ``token`` the bootstrap admin key (idempotent; replaces a previous bootstrap key)."""
    key = ApiKey(BOOTSTRAP_ID, "admin (GUARD_ADMIN_KEY)", frozenset({"admin"}))
    digest = hash_key(token)
    _recent.forget(engine)
    with engine.begin() as conn:
        current = conn.execute(
            sa.select(api_keys.c.key_hash).where(api_keys.c.id == BOOTSTRAP_ID)
        ).scalar_one_or_none()
        if current is None:
            conn.execute(sa.insert(api_keys).values(_row(key, digest)))
        elif not hmac.compare_digest(current, digest):
            conn.execute(
                sa.update(api_keys).where(api_keys.c.id == BOOTSTRAP_ID).values(key_hash=digest)
            )
    return key


# Built once: every API request looks its key up.
_BY_HASH = sa.select(api_keys).where(api_keys.c.key_hash == sa.bindparam("key_hash"))


KEY_CACHE_SECONDS = 5.0
_KEY_CACHE_SIZE = 1024


class _RecentKeys:
    """Keys found in each store in the last ``KEY_CACHE_SECONDS``, by hash.

    Only keys that exist are remembered, so a key is usable the moment it is created.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stores: weakref.WeakKeyDictionary[Engine, dict[str, tuple[float, ApiKey]]] = (
            weakref.WeakKeyDictionary())

    def get(self, engine: Engine, digest: str) -> ApiKey | None:
        with self._lock:
            found = self._stores.get(engine, {}).get(digest)
        if found is None or found[0] < monotonic():
            return None
        return found[1]

    def put(self, engine: Engine, digest: str, key: ApiKey) -> None:
        with self._lock:
            known = self._stores.setdefault(engine, {})
            if len(known) >= _KEY_CACHE_SIZE:
                known.clear()
            known[digest] = (monotonic() + KEY_CACHE_SECONDS, key)

    def forget(self, engine: Engine) -> None:
        with self._lock:
            self._stores.pop(engine, None)


_recent = _RecentKeys()


def authenticate(engine: Engine, token: str) -> ApiKey | None:
    """Find the key a caller presented, or None."""
    if not token:
        return None
    digest = hash_key(token)
    key = _recent.get(engine, digest)
    if key is not None:
        return key
    with read_only(engine.connect()) as conn:
        row = conn.execute(_BY_HASH, {"key_hash": digest}).mappings().first()
    if row is None:
        return None
    key = ApiKey(
        id=row["id"],
        name=row["name"],
        scopes=frozenset((row["scopes"] or "").split()),
        sender=row["sender"],
        purpose=row["purpose"],
    )
    _recent.put(engine, digest, key)
    return key
