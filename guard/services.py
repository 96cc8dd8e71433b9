"""The services of one app, built once from its settings and reached through ``services()``.

Every area (the HTTP API, the proxy, the CRM hooks, the worker, the CLI) takes
what it needs from the one ``Services`` its app holds, so a request, a
command and a job in one process share the same store, checks and outbox.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from time import monotonic

from flask import Flask, current_app
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from guard.checks.service import Guard
from guard.config import ConfigurationError
from guard.crm import settings as crm_settings
from guard.errors import GuardError
from guard.http import keys
from guard.preferences.settings import PreferenceSettings
from guard.preferences.settings import read_settings as read_preference_settings
from guard.proxy.idempotency import Answers
from guard.proxy.outbox import Outbox
from guard.proxy.settings import ProxySettings, read_settings
from guard.proxy.transport import Forwarder
from guard.store.engine import make_engine
from guard.store.migrate import upgrade

_KEY = "guard"
log = logging.getLogger(__name__)


class PolicyWatch:
    """Follow the policy version published in the store, when GUARD_POLICY names no file.

    Each process reads the store's marker at most every ``every`` seconds (before
    a request, and each worker cycle) and loads the version it names, so every
    replica uses a published policy within seconds. No version published: the
    shipped default (``base``).
    """

    def __init__(self, guard: Guard, base, every: float):
        self.guard = guard
        self.base = base
        self.every = every
        self.marker: str | None = None
        # The stored version that failed to load, if the one in force is not the marker's.
        self.failed: str | None = None
        self._checked = float("-inf")
        self._lock = threading.Lock()

    def refresh(self, *, force: bool = False) -> None:
        """Load the version in force if it changed since the last look."""
        from guard.console import versions
        from policies import PolicyError

        if not force and monotonic() - self._checked < self.every:
            return
        with self._lock:
            self._checked = monotonic()
            marker = None
            try:
                marker = versions.marker(self.guard.engine)
                if marker == self.marker:
                    return
                row = versions.get(self.guard.engine, marker) if marker else None
                self.guard.policy = versions.parse(row.text) if row else self.base
                self.marker, self.failed = marker, None
            except SQLAlchemyError as exc:
                log.warning("stored policy not read (store not ready): %s", exc)
            except PolicyError as exc:
                self.marker = self.failed = marker  # said once, not at every look
                log.error("stored policy version %s has problems; keeping %s: %s", marker,
                          self.guard.policy.version, exc)


@dataclass(frozen=True)
class Services:
    """What one app's requests, commands and jobs use."""

    guard: Guard
    engine: Engine
    proxy: ProxySettings
    forwarder: Forwarder
    outbox: Outbox
    answers: Answers
    crm: crm_settings.CrmSettings
    preferences: PreferenceSettings = field(default_factory=PreferenceSettings)
    # None when GUARD_POLICY names the policy's files: then files are the only source.
    policies: PolicyWatch | None = None


def services(app: Flask | None = None) -> Services:
    """Return the services of ``app`` (default: the current app)."""
    return (app or current_app).extensions[_KEY]


def follow_policy(app: Flask) -> None:
    """Use the policy version published in the store, if it changed (GUARD_POLICY files: no-op)."""
    watch = services(app).policies
    if watch is not None:
        watch.refresh()


def init_app(app: Flask) -> Services:
    """Build the app's services from its settings and keep them on the app."""
    # Settings first: a bad one stops start-up before the store is connected.
    conf = read_settings(app.config)
    crm = crm_settings.read_settings(app.config, os.environ)
    preferences = read_preference_settings(app.config)
    guard = app.config.get("GUARD") or _guard(app)
    clock = getattr(guard, "clock", None)
    outbox = Outbox(guard.engine, clock=clock,
                    lease=timedelta(seconds=conf.outbox_lease_seconds),
                    retry_base=timedelta(seconds=conf.outbox_retry_seconds))
    built = Services(
        guard=guard, engine=guard.engine, proxy=conf,
        forwarder=Forwarder(attempts=conf.forward_attempts, wait_initial=conf.forward_wait,
                            wait_max=conf.forward_wait_max,
                            retry_after_max=conf.forward_retry_after_max),
        outbox=outbox,
        answers=Answers(guard.engine, outbox, clock=clock, wait=conf.idempotency_wait),
        crm=crm,
        preferences=preferences,
        policies=None if app.config.get("POLICY") else PolicyWatch(
            guard, guard.policy, float(app.config.get("POLICY_POLL_SECONDS", 2))),
    )
    app.extensions[_KEY] = built
    if built.policies is not None:
        built.policies.refresh(force=True)
        app.before_request(lambda: built.policies.refresh())
    if app.config.get("ADMIN_KEY"):
        _bootstrap_admin_key(app, guard, own=app.config.get("GUARD") is None)
    return built


def _guard(app: Flask) -> Guard:
    """Load the policy, connect the store (migrating SQLite) and build the checks."""
    policy = load_configured_policy(app.config.get("POLICY"))
    engine = make_engine(app.config["DATABASE_URL"])
    if engine.dialect.name == "sqlite":
        # The embedded default needs no setup; PostgreSQL is migrated by `guard db upgrade`
        # in the release phase, so replicas never race to migrate.
        upgrade(engine)
    guard = Guard(engine, policy, check_lanes=app.config["CHECK_LANES"],
                  erasure_key=app.config.get("ERASURE_SALT"))
    try:
        guard.verify_erasure_key()
    except ConfigurationError:
        engine.dispose()  # a failed start-up leaves no connection open
        raise
    except SQLAlchemyError as exc:
        if engine.dialect.name == "sqlite":
            raise
        # An unmigrated PostgreSQL store: /healthz says so; the key is checked next start.
        app.logger.warning("GUARD_ERASURE_SALT not checked yet (store not ready): %s", exc)
    return guard


def _bootstrap_admin_key(app: Flask, guard: Guard, *, own: bool) -> None:
    """Store GUARD_ADMIN_KEY as the bootstrap admin key (``own``: the engine is ours)."""
    try:
        keys.ensure_admin_key(guard.engine, app.config["ADMIN_KEY"])
    except GuardError as exc:
        if own:
            guard.engine.dispose()  # made here: a failed start-up leaves no connection open
        raise ConfigurationError(exc.detail) from None
    except SQLAlchemyError as exc:
        if guard.engine.dialect.name == "sqlite":
            raise ConfigurationError(f"GUARD_ADMIN_KEY: cannot store it: {exc}") from exc
        # An unmigrated PostgreSQL store: /healthz says so; the key lands on the next start.
        app.logger.warning("GUARD_ADMIN_KEY not stored yet (store not ready): %s", exc)


def load_configured_policy(path: str | None):
    """Load the policy file or folder at ``path`` (else the default); fail listing every problem."""
    from policies import PolicyError, default_policy_path, load_policy

    chosen = path or default_policy_path()
    try:
        return load_policy(chosen)
    except PolicyError as exc:
        lines = "\n".join(f"  {problem}" for problem in exc.problems)
        raise ConfigurationError(f"GUARD_POLICY: {chosen} has problems:\n{lines}") from None
    except OSError as exc:
        raise ConfigurationError(f"GUARD_POLICY: cannot read {chosen}: {exc}") from None

