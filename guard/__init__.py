"""Contact Guard service: ``create_app`` is the one factory of the Flask app."""

from __future__ import annotations

import gc
import importlib
import threading
from collections.abc import Mapping
from typing import Any

from flask import Flask

# Each area's module has ``init_app(app)``; they run in this order. Areas that
# add endpoints (the SendGrid/Twilio proxy: "proxy") append their module here.
AREAS = ("problems", "api", "proxy", "crm")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, ``GUARD_*`` environment, ``config``, then each area."""
    from guard.config import load as load_settings

    app = Flask(__name__)
    load_settings(app, config)
    _init_store(app)
    for name in AREAS:
        importlib.import_module(f"guard.{name}").init_app(app)
    freeze_start_up_heap()
    return app


_frozen = threading.Event()


def freeze_start_up_heap() -> None:
    """Move the objects start-up built out of the collector's reach, once per process."""
    # The policy, SQLAlchemy, Flask and the modules are some 100,000 objects that live as
    # long as the process, and every full collection walked them all: under gunicorn that
    # stalled a worker for 110-220 ms mid-load (one per worker in 30 s at 200 checks/s),
    # the p99 of /v1/check. Frozen, a full pass walks only what requests left behind.
    # Once per process: one that builds many apps (the tests) pins only the first one's,
    # after collecting its garbage (~0.2 s) so that none of it is pinned.
    if _frozen.is_set():
        return
    _frozen.set()
    gc.collect()
    gc.freeze()


def _init_store(app: Flask) -> None:
    """Load the policy, connect the store (migrating SQLite) and build the Guard façade."""
    from sqlalchemy.exc import SQLAlchemyError

    from guard import keys
    from guard.config import ConfigurationError
    from guard.db import make_engine, upgrade
    from guard.errors import GuardError
    from guard.service import Guard

    guard = app.config.get("GUARD")
    if guard is None:
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
    app.extensions["guard"] = guard
    app.extensions["guard.engine"] = guard.engine
    if app.config.get("ADMIN_KEY"):
        try:
            keys.ensure_admin_key(guard.engine, app.config["ADMIN_KEY"])
        except GuardError as exc:
            if app.config.get("GUARD") is None:
                guard.engine.dispose()  # made here: a failed start-up leaves no connection open
            raise ConfigurationError(exc.detail) from None
        except SQLAlchemyError as exc:
            if guard.engine.dialect.name == "sqlite":
                raise ConfigurationError(f"GUARD_ADMIN_KEY: cannot store it: {exc}") from exc
            # An unmigrated PostgreSQL store: /healthz says so; the key lands on the next start.
            app.logger.warning("GUARD_ADMIN_KEY not stored yet (store not ready): %s", exc)


def load_configured_policy(path: str | None):
    """Load the policy file or folder at ``path`` (else the default); fail listing every problem."""
    from guard.config import ConfigurationError
    from policies import PolicyError, default_policy_path, load_policy

    chosen = path or default_policy_path()
    try:
        return load_policy(chosen)
    except PolicyError as exc:
        lines = "\n".join(f"  {problem}" for problem in exc.problems)
        raise ConfigurationError(f"GUARD_POLICY: {chosen} has problems:\n{lines}") from None
    except OSError as exc:
        raise ConfigurationError(f"GUARD_POLICY: cannot read {chosen}: {exc}") from None
