"""Settings: defaults, then an optional file, then ``GUARD_*`` environment, then the caller's.

``app.config.from_prefixed_env("GUARD")`` strips the prefix, so
``GUARD_DATABASE_URL`` becomes ``DATABASE_URL``, ``GUARD_POLICY`` becomes
``POLICY`` and so on. Values that look like JSON are parsed as JSON by Flask;
``normalise`` turns the ones that must stay text back into text.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Config, Flask

DEFAULTS: dict[str, Any] = {
    # The embedded default: an SQLite file in the working directory, migrated at start-up.
    "DATABASE_URL": "sqlite:///guard.db",
    # A policy file or folder; None means the shipped policies/default.yaml.
    "POLICY": None,
    # Bootstraps one admin key (idempotent; changing it revokes the previous one).
    "ADMIN_KEY": None,
    # 100,000 screened recipients are a few MB of JSON; leave room for long addresses.
    "MAX_CONTENT_LENGTH": 64 * 1024 * 1024,
    "SCREEN_MAX_RECIPIENTS": 1_000_000,
    "EVENTS_MAX_BATCH": 10_000,
    # How many screen results are joined into one chunk of the streamed response.
    "SCREEN_CHUNK": 500,
    # Check transactions one process runs at once on PostgreSQL (SQLite has one writer).
    "CHECK_LANES": 2,
    # The secret key of the hashes erasure keeps (HMAC-SHA256); never stored in the store.
    "ERASURE_SALT": None,
    # Finished outbox rows (sent, rejected, dropped) and processed webhook deliveries are
    # purged after this many days: they hold whole messages. At least a day, so a provider
    # request retried under its Idempotency-Key still finds its row.
    "OUTBOX_RETENTION_DAYS": 7,
    "INBOX_RETENTION_DAYS": 7,
    # Dry-run decisions (screens, checks with commit false) are purged after this many days.
    "DRY_RUN_RETENTION_DAYS": 30,
    # Committed decisions and contacts (the audit trail) are purged after this many days,
    # never before the longest window a rule of the policy counts has passed.
    "AUDIT_RETENTION_DAYS": 730,
    # How long the answer to a provider request with an Idempotency-Key is kept (hours).
    "IDEMPOTENCY_HOURS": 24,
    # Largest HubSpot webhook body; HubSpot sends at most 100 events (a few dozen KiB).
    "HUBSPOT_WEBHOOK_MAX_BYTES": 1024 * 1024,
    "JSON_SORT_KEYS": False,
    # Log level of the guard's JSON log lines (DEBUG, INFO, WARNING, ERROR).
    "LOG_LEVEL": "INFO",
    # E-mail addresses and phone numbers are masked in logs unless this is set (debugging
    # only: logs are copied where the right to erasure does not reach).
    "LOG_PERSONAL_DATA": False,
    # GET /metrics and the counters behind it. Under gunicorn, set the environment variable
    # PROMETHEUS_MULTIPROC_DIR (an empty directory) so every process counts into one set
    # (guard/ops/gunicorn.py empties it at start).
    "METRICS": True,
    # The console's cookie and CSRF secret; None: one is made once and kept in the store.
    "CONSOLE_SECRET": None,
    "CONSOLE_SESSION_HOURS": 8,
    # How often each process looks for a policy version published in the store (seconds).
    "POLICY_POLL_SECONDS": 2,
    # The guard's public base URL (HubSpot signs the URL it called; links point there).
    "PUBLIC_URL": None,
    # Marketing Cloud Journey Builder: the installed package's JWT signing secret, and what
    # a journey's contact key is when an activity names no recipient (email or salesforce).
    "SFMC_JWT_SECRET": None,
    "SFMC_CONTACT_KEY": "email",
}

# Settings that are text even when they look like JSON numbers or booleans.
_TEXT = ("DATABASE_URL", "POLICY", "ADMIN_KEY", "ERASURE_SALT", "LOG_LEVEL", "CONSOLE_SECRET",
         "SFMC_JWT_SECRET")
_FLAGS = ("LOG_PERSONAL_DATA", "METRICS")
# What a Journey Builder contact key is: an email address, or a Salesforce record id.
SFMC_CONTACT_KEYS = ("email", "salesforce")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_INTEGERS = ("MAX_CONTENT_LENGTH", "SCREEN_MAX_RECIPIENTS", "EVENTS_MAX_BATCH", "SCREEN_CHUNK",
             "CHECK_LANES", "OUTBOX_RETENTION_DAYS", "INBOX_RETENTION_DAYS",
             "DRY_RUN_RETENTION_DAYS", "HUBSPOT_WEBHOOK_MAX_BYTES", "IDEMPOTENCY_HOURS",
             "AUDIT_RETENTION_DAYS")


# The bootstrap admin key opens everything: at least this long, so it cannot be guessed
# (32 characters of `secrets.token_urlsafe` are 192 random bits).
ADMIN_KEY_MIN_LENGTH = 32


class ConfigurationError(RuntimeError):
    """A setting that stops the service from starting; the message says which and why."""


def load(app: Flask, config: Mapping[str, Any] | None = None) -> None:
    """Fill ``app.config`` from defaults, ``GUARD_CONFIG`` file, environment and ``config``."""
    app.config.update(settings(config))
    # Answers keep the field order of the contract (SPEC §4), not the alphabet.
    app.json.sort_keys = bool(app.config["JSON_SORT_KEYS"])


def settings(config: Mapping[str, Any] | None = None) -> Config:
    """Return the settings as the service sees them: defaults, file, environment, ``config``.

    Commands that need no app (``guard db upgrade``, ``guard policy …``) read
    their settings here too, so a value in the ``GUARD_CONFIG`` file counts
    everywhere.
    """
    # Relative paths in settings are the operator's, so relative to the working directory.
    found = Config(os.getcwd(), DEFAULTS)
    path = os.environ.get("GUARD_CONFIG")
    if path:
        _load_file(found, Path(path).absolute())
    found.from_prefixed_env("GUARD")
    if config:
        found.update(config)
    normalise(found)
    return found


def _load_file(found: Config, path: Path) -> None:
    """Read a TOML or JSON settings file (keys without the GUARD_ prefix)."""
    try:
        if path.suffix == ".toml":
            found.from_file(str(path), load=tomllib.load, text=False)
        else:
            found.from_file(str(path), load=json.load)
    except (OSError, ValueError) as exc:
        raise ConfigurationError(f"GUARD_CONFIG: cannot read {path}: {exc}") from None


def normalise(config: dict[str, Any]) -> None:
    """Coerce settings to their types, raising ConfigurationError naming the bad one."""
    for key in _TEXT:
        value = config.get(key)
        if value is not None and not isinstance(value, str):
            config[key] = json.dumps(value) if isinstance(value, bool) else str(value)
        if config.get(key) == "":
            config[key] = None if key != "DATABASE_URL" else DEFAULTS[key]
    admin = config.get("ADMIN_KEY")
    if admin is not None and len(admin) < ADMIN_KEY_MIN_LENGTH:
        raise ConfigurationError(
            f"GUARD_ADMIN_KEY: must be at least {ADMIN_KEY_MIN_LENGTH} characters, got "
            f"{len(admin)}; make one with: python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(32))'"
        )
    for key in _INTEGERS:
        value = config.get(key)
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigurationError(
                f"GUARD_{key}: expected a whole number, got {value!r}"
            ) from None
        if number <= 0:
            raise ConfigurationError(f"GUARD_{key}: must be positive, got {number}")
        config[key] = number
    level = str(config.get("LOG_LEVEL") or "INFO").upper()
    if level not in LOG_LEVELS:
        raise ConfigurationError(f"GUARD_LOG_LEVEL: expected one of {', '.join(LOG_LEVELS)}, "
                                 f"got {config.get('LOG_LEVEL')!r}")
    config["LOG_LEVEL"] = level
    contact_key = str(config.get("SFMC_CONTACT_KEY") or "email").strip().lower()
    if contact_key not in SFMC_CONTACT_KEYS:
        raise ConfigurationError(f"GUARD_SFMC_CONTACT_KEY: expected one of "
                                 f"{', '.join(SFMC_CONTACT_KEYS)}, got "
                                 f"{config.get('SFMC_CONTACT_KEY')!r}")
    config["SFMC_CONTACT_KEY"] = contact_key
    for key in _FLAGS:
        value = config.get(key)
        if isinstance(value, str):
            if value.strip().lower() not in ("true", "false", "1", "0", "yes", "no", "on", "off"):
                raise ConfigurationError(f"GUARD_{key}: expected true or false, got {value!r}")
            value = value.strip().lower() in ("true", "1", "yes", "on")
        config[key] = bool(value)
    window = config["IDEMPOTENCY_HOURS"]
    if config["OUTBOX_RETENTION_DAYS"] * 24 < window:
        raise ConfigurationError(
            f"GUARD_OUTBOX_RETENTION_DAYS: must cover the {window}-hour Idempotency-Key "
            f"window, got {config['OUTBOX_RETENTION_DAYS']} days")
