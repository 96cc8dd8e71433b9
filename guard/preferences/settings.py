"""The preference pages' settings: public URL, signing keys, token lifetime, the company's look."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from guard.config import ConfigurationError
from guard.preferences.tokens import Signer
from guard.store.secrets import read_secret, stored_secret

# A key signs links that change what reaches a customer: at least 256 bits' worth of text.
KEY_MIN_LENGTH = 32
_KEY_ID = re.compile(r"^[A-Za-z0-9_-]{1,16}$")
# Without GUARD_PREFERENCES_KEYS, links are signed with a key the store makes once, shared
# by every replica, under this id.
STORED_KEY_ID = "store"
STORED_KEY_SETTING = "preferences_key"
_COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


@dataclass(frozen=True)
class PreferenceSettings:
    """What the preference pages, one-click links and the SMS webhook need, read once."""

    public_url: str | None = None
    # Key id -> secret; the first one signs, every one verifies (rotation).
    keys: Mapping[str, bytes] = field(default_factory=dict)
    token_days: int = 365
    company_name: str = "Contact Guard"
    company_logo_url: str | None = None
    company_colour: str = "#1a56db"
    # Requests per minute one link, and one client address, may make.
    rate_per_token: int = 20
    rate_per_address: int = 60
    twilio_auth_token: str | None = None

    @property
    def signing_key_id(self) -> str | None:
        return next(iter(self.keys), None)

    @property
    def links(self) -> bool:
        """Say whether links can be made: they need the public URL customers reach."""
        return bool(self.public_url)


def signer(conf: PreferenceSettings, engine: Engine) -> Signer | None:
    """Return the signer of links: configured keys first, then the store's own key."""
    keys = dict(conf.keys)
    if keys:
        # A deployment that moves from the store's key to its own keeps its links working.
        try:
            kept = _kept_key(engine)
        except SQLAlchemyError:
            kept = None
        if kept is not None:
            keys.setdefault(STORED_KEY_ID, kept)
    else:
        try:
            keys[STORED_KEY_ID] = _store_key(engine)
        except SQLAlchemyError:
            return None  # the store is not reachable now: no link is made or read
    return Signer(keys, timedelta(days=conf.token_days))


@lru_cache(maxsize=8)
def _store_key(engine: Engine) -> bytes:
    return stored_secret(engine, STORED_KEY_SETTING).encode()


@lru_cache(maxsize=8)
def _kept_key(engine: Engine) -> bytes | None:
    found = read_secret(engine, STORED_KEY_SETTING)
    return found.encode() if found else None


def read_keys(value: Any) -> dict[str, bytes]:
    """Parse ``"k2:secret,k1:older"`` (first one signs) into key id -> secret."""
    if value in (None, ""):
        return {}
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for part in re.split(r"[,\s]+", str(value).strip()):
            if not part:
                continue
            key_id, sep, secret = part.partition(":")
            if not sep:
                raise ConfigurationError(
                    "GUARD_PREFERENCES_KEYS: write each key as <id>:<secret>, the signing key "
                    "first, e.g. k2:<new secret>,k1:<old secret>")
            pairs.append((key_id, secret))
    keys: dict[str, bytes] = {}
    for key_id, secret in pairs:
        if not _KEY_ID.match(key_id):
            raise ConfigurationError(f"GUARD_PREFERENCES_KEYS: key id {key_id!r} must be 1-16 "
                                     "letters, digits, _ or -")
        if len(secret) < KEY_MIN_LENGTH:
            raise ConfigurationError(
                f"GUARD_PREFERENCES_KEYS: key {key_id!r} must be at least {KEY_MIN_LENGTH} "
                "characters; make one with: python3 -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'")
        if key_id in keys:
            raise ConfigurationError(f"GUARD_PREFERENCES_KEYS: key id {key_id!r} twice")
        keys[key_id] = secret.encode()
    return keys


def _positive(config: Mapping, name: str, default: int) -> int:
    value = config.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"GUARD_{name}: expected a whole number, got {value!r}") from None
    if number <= 0:
        raise ConfigurationError(f"GUARD_{name}: must be positive, got {number}")
    return number


def read_settings(config: Mapping) -> PreferenceSettings:
    """Build the settings from a Flask config; raise ConfigurationError naming a bad one."""
    public = config.get("PUBLIC_URL")
    public = str(public).rstrip("/") if public not in (None, "") else None
    if public is not None:
        parts = urlsplit(public)
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.query:
            raise ConfigurationError(f"GUARD_PUBLIC_URL: expected https://host[/path], got "
                                     f"{public!r}")
    keys = read_keys(config.get("PREFERENCES_KEYS"))
    colour = str(config.get("COMPANY_COLOUR") or PreferenceSettings.company_colour)
    if not _COLOUR.match(colour):
        raise ConfigurationError(f"GUARD_COMPANY_COLOUR: expected a colour like #1a56db, got "
                                 f"{colour!r}")
    logo = config.get("COMPANY_LOGO_URL") or None
    if logo is not None and urlsplit(str(logo)).scheme not in ("https", "http"):
        raise ConfigurationError(f"GUARD_COMPANY_LOGO_URL: expected an http(s) URL, got {logo!r}")
    return PreferenceSettings(
        public_url=public, keys=keys,
        token_days=_positive(config, "PREFERENCES_TOKEN_DAYS", 365),
        company_name=str(config.get("COMPANY_NAME") or PreferenceSettings.company_name),
        company_logo_url=str(logo) if logo else None,
        company_colour=colour,
        rate_per_token=_positive(config, "PREFERENCES_RATE_PER_TOKEN", 20),
        rate_per_address=_positive(config, "PREFERENCES_RATE_PER_ADDRESS", 60),
        twilio_auth_token=str(config["TWILIO_AUTH_TOKEN"])
        if config.get("TWILIO_AUTH_TOKEN") not in (None, "") else None,
    )
