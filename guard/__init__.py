"""Contact Guard service: ``create_app`` is the one factory of the Flask app."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app: defaults, ``GUARD_*`` environment, ``config``, then each area."""
    from guard import automation, collector, console, crm, ops, preferences, proxy, services
    from guard.config import load as load_settings
    from guard.http import api, problems

    app = Flask(__name__)
    load_settings(app, config)
    services.init_app(app)
    ops.init_app(app)  # first after services: its request log sees every request
    problems.init_app(app)
    api.init_app(app)
    proxy.init_app(app)
    crm.init_app(app)
    preferences.init_app(app)
    automation.init_app(app)
    console.init_app(app)
    collector.freeze_start_up_heap()
    return app
