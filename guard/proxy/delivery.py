"""Deliver an outbox row: build the provider's request, send it once, record how it ended.

The request path and the worker share this one delivery path: every send the
guard makes is first recorded in the outbox, then forwarded.
"""

from __future__ import annotations

import logging

from flask import Flask

from guard.forward import Outcome, UpstreamRequest
from guard.proxy.outbox import Claim
from guard.proxy.settings import ProxySettings
from guard.services import services

log = logging.getLogger(__name__)


def upstream_request(provider: str, resource: str, payload, conf: ProxySettings) -> UpstreamRequest:
    """Build the request for the provider from an outbox payload and the guard's credentials."""
    from guard.proxy import sendgrid, twilio

    if provider == "sendgrid":
        return sendgrid.upstream_request(payload, conf)
    if provider == "twilio":
        return twilio.upstream_request(resource, payload, conf)
    raise ValueError(f"unknown provider {provider!r}")


def deliver(claim: Claim, *, app: Flask | None = None,
            defer: bool = False) -> tuple[str, Outcome]:
    """Forward a row that is committed as ``sending`` and record how it ended.

    With ``defer``, a delivered send's row is settled later (``Outbox.finish``).
    """
    used = services(app)
    request = upstream_request(claim.provider, claim.resource, claim.payload, used.proxy)
    outcome = used.forwarder.send(request)
    status = used.outbox.finish(claim, outcome, defer=defer)
    if outcome.state != "sent":
        log.warning("outbox %s: %s (%s)", claim.id, status, outcome.error)
    return status, outcome
