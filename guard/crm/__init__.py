"""Run the CRM connectors against the store: sync in, flags and owner tasks out, webhooks.

The connectors know their CRM and the event format; this package knows the
store. Data flows one way (CRM → events → store → flags → CRM), and each step
is safe to repeat: bookmarks are saved only after their batch is stored,
flags are written only when their hash changed, tasks carry a dedupe key the
CRM side checks before creating.

    settings.py   which CRMs are configured, the sync interval, the webhook secret
    sync.py       connectors from the environment, a sync into the store, its bookmarks
    writeback.py  flags, erasure notices and owner tasks out to the CRM
    webhooks.py   POST /hooks/hubspot, and the worker's step that turns deliveries into events
    jobs.py       one worker job per configured CRM
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the HubSpot webhook endpoint."""
    from guard.crm import webhooks

    app.register_blueprint(webhooks.hooks)
