"""Contact Guard service: ``create_app`` is the one factory of the Flask app."""

from __future__ import annotations

import gc
import threading
from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, ``GUARD_*`` environment, ``config``, then each area."""
    from guard import crm, proxy, services
    from guard.config import load as load_settings
    from guard.http import api, problems

    app = Flask(__name__)
    load_settings(app, config)
    services.init_app(app)
    problems.init_app(app)
    api.init_app(app)
    proxy.init_app(app)
    crm.init_app(app)
    freeze_start_up_heap()
    return app


_frozen = threading.Event()


def freeze_start_up_heap() -> None:
    """Move the objects start-up built out of the collector's reach, once per process."""
    # The policy, SQLAlchemy, Flask and the modules are some 100,000 objects that live as
    # long as the process, and a full collection that walks them all stalls a worker
    # mid-load (the p99 of /v1/check). Frozen, a full pass walks only what requests left
    # behind. Once per process: one that builds many apps (the tests) pins only the first
    # one's, after collecting its garbage so that none of it is pinned.
    if _frozen.is_set():
        return
    _frozen.set()
    gc.collect()
    gc.freeze()
