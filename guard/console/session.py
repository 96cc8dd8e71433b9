"""Who is signed in to the console: the shared secret, sessions, CSRF tokens.

A session is a random token in a signed, HttpOnly, ``SameSite=Strict``
cookie; the store keeps only its hash, the key it was opened with and when
it ends, so a sign-out or a revoked key ends it on every replica at once.
The secret that signs cookies and CSRF tokens is ``GUARD_CONSOLE_SECRET``,
else made once and kept in the store's ``settings`` table, so replicas share it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import Flask, Request, Response
from itsdangerous import BadSignature, TimestampSigner
from sqlalchemy.engine import Engine

from guard.http import keys
from guard.store.engine import read_only
from guard.store.secrets import stored_secret
from guard.store.tables import api_keys, console_sessions
from guard.store.util import utc_now

COOKIE = "guard_console"
# A sign-in form's own token, so a forged form cannot sign a browser in as someone else.
LOGIN_COOKIE = "guard_console_login"
SECRET_SETTING = "console_secret"
SCOPE = "console"
_EXTENSION = "guard.console.secret"


@dataclass(frozen=True)
class Viewer:
    """The key behind a console session: who, and whether it may change anything."""

    key_id: str
    key_name: str
    scopes: frozenset[str]
    session_hash: str
    csrf: str

    @property
    def can_change(self) -> bool:
        """Only an admin key changes things; a ``console`` key reads."""
        return "admin" in self.scopes


def secret(app: Flask, engine: Engine) -> bytes:
    """Return the console secret: the setting, else the store's (made on first use)."""
    found = app.extensions.get(_EXTENSION)
    if found is not None:
        return found
    configured = app.config.get("CONSOLE_SECRET")
    if configured:
        value = str(configured)
    else:
        value = stored_secret(engine, SECRET_SETTING)
    app.extensions[_EXTENSION] = found = value.encode()
    return found


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _mac(key: bytes, purpose: str, value: str) -> str:
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def open_session(engine: Engine, key: keys.ApiKey, key_secret: bytes, hours: float) -> str:
    """Store a new session for ``key``; return the signed cookie value."""
    token = secrets.token_urlsafe(32)
    now = utc_now()
    with engine.begin() as conn:
        conn.execute(sa.insert(console_sessions).values(
            id=_hash(token), key_id=key.id, created_at=now,
            expires_at=now + timedelta(hours=hours)))
    return TimestampSigner(key_secret, salt="console-session").sign(token).decode()


def viewer(engine: Engine, request: Request, key_secret: bytes, hours: float) -> Viewer | None:
    """Return who the request's session belongs to, or None (no, bad, ended or expired one)."""
    cookie = request.cookies.get(COOKIE)
    if not cookie:
        return None
    try:
        token = TimestampSigner(key_secret, salt="console-session").unsign(
            cookie, max_age=int(hours * 3600)).decode()
    except (BadSignature, UnicodeDecodeError):
        return None
    digest = _hash(token)
    with read_only(engine.connect()) as conn:
        row = conn.execute(
            sa.select(console_sessions.c.expires_at, api_keys.c.id, api_keys.c.name,
                      api_keys.c.scopes, api_keys.c.revoked_at)
            .join(api_keys, api_keys.c.id == console_sessions.c.key_id)
            .where(console_sessions.c.id == digest, console_sessions.c.ended_at.is_(None))
        ).first()
    if row is None or row.revoked_at is not None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(
        tzinfo=utc_now().tzinfo)
    if expires <= utc_now():
        return None
    scopes = frozenset((row.scopes or "").split())
    if not scopes & {"admin", SCOPE}:
        return None
    return Viewer(row.id, row.name, scopes, digest, _mac(key_secret, "csrf", digest))


def end_session(engine: Engine, who: Viewer) -> None:
    """End a session everywhere (sign-out)."""
    with engine.begin() as conn:
        conn.execute(sa.update(console_sessions)
                     .where(console_sessions.c.id == who.session_hash)
                     .values(ended_at=utc_now()))


def set_cookie(response: Response, name: str, value: str, *, secure: bool,
               max_age: int | None = None) -> None:
    """Set a console cookie: HttpOnly, SameSite=Strict, for /console only."""
    response.set_cookie(name, value, max_age=max_age, path="/console", httponly=True,
                        samesite="Strict", secure=secure)


def login_token(key_secret: bytes, nonce: str) -> str:
    """Return the CSRF token of a sign-in form whose browser holds ``nonce``."""
    return _mac(key_secret, "login", nonce)


def same(expected: str, given: str | None) -> bool:
    """Compare two tokens in constant time."""
    return bool(given) and hmac.compare_digest(expected, given or "")
