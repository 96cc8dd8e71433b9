"""Automation: a guard step inside the CRMs' and marketing clouds' own automation.

    via.py              where a decision came from: the names integrations record
    outcome.py          a decision as the flat fields an automation step branches on
    hubspot_action.py   POST /hooks/hubspot/action: HubSpot's custom workflow action
    hubspot_waits.py    deferred HubSpot actions: checked again when due, callback completed
    sfmc.py             /hooks/sfmc/…: Marketing Cloud Journey Builder's RestDecision activity
    external_service.py the check operation as a Salesforce External Service document

Salesforce Flows and Braze call ``POST /v1/check`` itself (see the README); the
Flow through the External Service that ``guard install salesforce`` deploys.
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the automation endpoints."""
    from guard.automation import hubspot_action, sfmc

    app.register_blueprint(hubspot_action.hooks)
    app.register_blueprint(sfmc.bp)
