"""Deliver an outbox row: build the provider's request, send it once, record how it ended.

The request path and the worker share this one delivery path: every send the
guard makes is first recorded in the outbox, then forwarded.
"""

from __future__ import annotations

from time import perf_counter

from flask import Flask

from guard.ops import observe
from guard.proxy.outbox import Claim
from guard.proxy.providers import provider
from guard.proxy.transport import Outcome
from guard.services import services


def deliver(claim: Claim, *, app: Flask | None = None,
            defer: bool = False) -> tuple[str, Outcome]:
    """Forward a row that is committed as ``sending`` and record how it ended.

    With ``defer``, a delivered send's row is settled later (``Outbox.finish``).
    """
    used = services(app)
    request = provider(claim.provider).request(claim.resource, claim.payload, used.proxy)
    started = perf_counter()
    outcome = used.forwarder.send(request)
    status = used.outbox.finish(claim, outcome, defer=defer)
    observe.sent(claim, outcome, status, started)  # the send's log line and metrics
    return status, outcome
