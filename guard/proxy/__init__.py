"""Provider-compatible endpoints: SendGrid and Twilio traffic, checked before it leaves.

Each provider module turns a provider request into guard checks, keeps what
is allowed, holds what is deferred, and hands the rest of the work to the
outbox: every send the guard makes is first recorded there, then forwarded
(``delivery.deliver``), so the worker and the request path share one path.

    settings.py     provider credentials and delivery tuning
    sendgrid.py     POST /v3/mail/send
    twilio.py       Messages.json and Calls.json
    idempotency.py  answers kept for retries under an Idempotency-Key
    outbox.py       every send, from first try to delivery, exactly once
    delivery.py     forward one outbox row and record how it ended
    providers.py    one class per provider: its request from a row, its reply to the caller
    transport.py    the one upstream transport, and what is retried
    erasure.py      what the right to erasure takes out of the outbox
    describe.py     the endpoints in the OpenAPI document
"""

from __future__ import annotations

import logging

from flask import Flask

log = logging.getLogger(__name__)


def init_app(app: Flask) -> None:
    """Register the SendGrid and Twilio endpoints and the outbox they deliver through."""
    from guard.proxy import describe, sendgrid, twilio
    from guard.services import services

    describe.describe()
    conf = services(app).proxy
    warn = app.config.get("WARN_MISSING_PROVIDERS", True)
    if warn and not conf.sendgrid_api_key:
        log.warning("GUARD_SENDGRID_API_KEY is not set: SendGrid will refuse forwarded mail")
    if warn and not (conf.twilio_account_sid and conf.twilio_auth_token):
        log.warning("GUARD_TWILIO_ACCOUNT_SID / _AUTH_TOKEN are not set: Twilio will refuse "
                    "forwarded messages")
    app.register_blueprint(sendgrid.bp)
    app.register_blueprint(twilio.bp)
