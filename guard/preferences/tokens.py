"""Signed links: a person's preference link and a message's one-click unsubscribe link.

A token is ``<key id>.<payload>.<signature>``: the payload is compact JSON in
URL-safe base64, the signature HMAC-SHA256 over key id and payload with the
key of that id, so a key can be retired while the links it signed still work
until it is removed from ``GUARD_PREFERENCES_KEYS``. The payload names only
the guard's opaque person id (or, for a recipient the guard does not know,
the address the message went to), the expiry and, for a message, its sender,
channel and purpose category. Anything forged, cut short, expired or signed
by an unknown key reads as no token at all: the caller answers 404 either way.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

# The payload's first item: what the link is for.
PERSON, MESSAGE = "p", "m"
# Who the link is about: a person id, or an address the guard knows no person for.
SUBJECT_PERSON, SUBJECT_EMAIL = "p", "e"
TOKEN_MAX = 1024


@dataclass(frozen=True)
class Grant:
    """What a valid token lets its holder do: whom it is about and, for a message, what."""

    kind: str  # PERSON or MESSAGE
    subject: str  # SUBJECT_PERSON or SUBJECT_EMAIL
    value: str  # the person id or the address
    expires: int  # unix seconds
    sender: str | None = None
    channel: str | None = None
    category: str | None = None

    @property
    def person_id(self) -> str | None:
        return self.value if self.subject == SUBJECT_PERSON else None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Make and read tokens with the configured keys (the first one signs)."""

    def __init__(self, keys: Mapping[str, bytes], lifetime: timedelta):
        if not keys:
            raise ValueError("no signing key")
        self.keys = dict(keys)
        self.key_id = next(iter(self.keys))
        self.lifetime = lifetime

    def person(self, person_id: str, now: datetime) -> str:
        """Return a link token for the person's preference page."""
        return self._sign([PERSON, SUBJECT_PERSON, person_id, self._expiry(now)])

    def message(self, subject: str, value: str, sender: str, channel: str, category: str,
                now: datetime) -> str:
        """Return a one-click token for one message: who it went to, from whom, about what."""
        return self._sign([MESSAGE, subject, value, self._expiry(now), sender, channel,
                           category])

    def read(self, token: str, now: datetime) -> Grant | None:
        """Return what ``token`` grants, or None for anything not signed by us and current."""
        if not isinstance(token, str) or len(token) > TOKEN_MAX or token.count(".") != 2:
            return None
        key_id, body, signature = token.split(".")
        key = self.keys.get(key_id)
        if key is None:
            return None
        expected = hmac.new(key, f"{key_id}.{body}".encode(), hashlib.sha256).digest()
        try:
            given = _unb64(signature)
            if not hmac.compare_digest(given, expected):
                return None
            items = json.loads(_unb64(body))
        except ValueError:
            return None
        grant = _grant(items)
        if grant is None or grant.expires <= int(now.timestamp()):
            return None
        return grant

    def _expiry(self, now: datetime) -> int:
        return int((now + self.lifetime).timestamp())

    def _sign(self, items: list) -> str:
        body = _b64(json.dumps(items, separators=(",", ":"), ensure_ascii=False).encode())
        key = self.keys[self.key_id]
        signature = hmac.new(key, f"{self.key_id}.{body}".encode(), hashlib.sha256).digest()
        return f"{self.key_id}.{body}.{_b64(signature)}"


def _grant(items) -> Grant | None:
    """Read a signed payload; None when its shape is not one this code writes."""
    if not isinstance(items, list) or len(items) not in (4, 7):
        return None
    kind, subject, value, expires, *rest = items
    if not isinstance(expires, int) or isinstance(expires, bool):
        return None
    if not all(isinstance(i, str) and i for i in (kind, subject, value, *rest)):
        return None
    if subject not in (SUBJECT_PERSON, SUBJECT_EMAIL):
        return None
    if kind == PERSON and not rest and subject == SUBJECT_PERSON:
        return Grant(kind, subject, value, expires)
    if kind == MESSAGE and len(rest) == 3:
        return Grant(kind, subject, value, expires, *rest)
    return None


def digest(token: str) -> str:
    """Return a stable name for a token that does not give the token away."""
    return hashlib.sha256(token.encode()).hexdigest()
