"""Provider-compatible endpoints: SendGrid and Twilio traffic, checked before it leaves.

Each provider module turns a provider request into guard checks, keeps what
is allowed, holds what is deferred, and hands the rest of the work to the
outbox: every send the guard makes is first recorded there, then forwarded
(``deliver``), so the worker and the request path share one delivery path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, current_app

from guard.config import ConfigurationError
from guard.forward import Forwarder, Outcome, UpstreamRequest
from guard.outbox import Claim, Outbox
from guard.proxy.idempotency import Answers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProxySettings:
    """Provider credentials and delivery tuning, read once from ``app.config``."""

    sendgrid_url: str = "https://api.sendgrid.com"
    sendgrid_api_key: str | None = None
    twilio_url: str = "https://api.twilio.com"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    forward_attempts: int = 3
    forward_wait: float = 0.5
    forward_wait_max: float = 8.0
    forward_retry_after_max: float = 30.0
    outbox_lease_seconds: float = 300.0
    outbox_retry_seconds: float = 30.0
    idempotency_wait: float = 30.0


_NUMBERS = {
    "FORWARD_ATTEMPTS": int,
    "FORWARD_WAIT": float,
    "FORWARD_WAIT_MAX": float,
    "FORWARD_RETRY_AFTER_MAX": float,
    "OUTBOX_LEASE_SECONDS": float,
    "OUTBOX_RETRY_SECONDS": float,
    "IDEMPOTENCY_WAIT": float,
}
_TEXTS = ("SENDGRID_URL", "SENDGRID_API_KEY", "TWILIO_URL", "TWILIO_ACCOUNT_SID",
          "TWILIO_AUTH_TOKEN", "TWILIO_FROM")


def read_settings(config) -> ProxySettings:
    """Build ProxySettings from a Flask config, raising ConfigurationError naming the setting."""
    values = {}
    for key in _TEXTS:
        value = config.get(key)
        if value not in (None, ""):
            # from_prefixed_env parses JSON-looking values; a token of digits is still text.
            values[key.lower()] = str(value).rstrip("/") if key.endswith("_URL") else str(value)
    for key, kind in _NUMBERS.items():
        value = config.get(key)
        if value in (None, ""):
            continue
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"GUARD_{key}: expected a number, got {value!r}") from None
        if number < 0 or (key == "FORWARD_ATTEMPTS" and number < 1):
            raise ConfigurationError(f"GUARD_{key}: must be positive, got {value!r}")
        values[key.lower()] = number
    return ProxySettings(**values)


def settings() -> ProxySettings:
    return current_app.extensions["guard.proxy"]


def outbox() -> Outbox:
    return current_app.extensions["guard.outbox"]


def forwarder() -> Forwarder:
    return current_app.extensions["guard.forwarder"]


def answers() -> Answers:
    return current_app.extensions["guard.answers"]


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
    app = app or current_app
    conf = app.extensions["guard.proxy"]
    request = upstream_request(claim.provider, claim.resource, claim.payload, conf)
    outcome = app.extensions["guard.forwarder"].send(request)
    status = app.extensions["guard.outbox"].finish(claim, outcome, defer=defer)
    if outcome.state != "sent":
        log.warning("outbox %s: %s (%s)", claim.id, status, outcome.error)
    return status, outcome


def init_app(app: Flask) -> None:
    """Register the SendGrid and Twilio endpoints and the outbox they deliver through."""
    from guard.proxy import sendgrid, twilio

    conf = read_settings(app.config)
    app.extensions["guard.proxy"] = conf
    app.extensions["guard.forwarder"] = Forwarder(
        attempts=conf.forward_attempts, wait_initial=conf.forward_wait,
        wait_max=conf.forward_wait_max, retry_after_max=conf.forward_retry_after_max,
    )
    app.extensions["guard.outbox"] = Outbox(
        app.extensions["guard.engine"],
        clock=getattr(app.extensions.get("guard"), "clock", None),
        lease=timedelta(seconds=conf.outbox_lease_seconds),
        retry_base=timedelta(seconds=conf.outbox_retry_seconds),
    )
    app.extensions["guard.answers"] = Answers(
        app.extensions["guard.engine"], app.extensions["guard.outbox"],
        clock=getattr(app.extensions.get("guard"), "clock", None),
        wait=conf.idempotency_wait,
    )
    warn = app.config.get("WARN_MISSING_PROVIDERS", True)
    if warn and not conf.sendgrid_api_key:
        log.warning("GUARD_SENDGRID_API_KEY is not set: SendGrid will refuse forwarded mail")
    if warn and not (conf.twilio_account_sid and conf.twilio_auth_token):
        log.warning("GUARD_TWILIO_ACCOUNT_SID / _AUTH_TOKEN are not set: Twilio will refuse "
                    "forwarded messages")
    app.register_blueprint(sendgrid.bp)
    app.register_blueprint(twilio.bp)


def _describe() -> None:
    """Add the provider endpoints to the guard's OpenAPI document."""
    from guard.openapi import register_path

    sendgrid_error = {"description": "SendGrid's error shape.",
                      "content": {"application/json": {"schema": {
                          "$ref": "#/components/schemas/SendGridErrors"}}}}
    twilio_error = {"description": "Twilio's error shape; 21610 when the guard blocks.",
                    "content": {"application/json": {"schema": {
                        "$ref": "#/components/schemas/TwilioError"}}}}
    guard_headers = {
        "X-Guard-Decisions": {"description": "Decision ids, comma-separated.",
                              "schema": {"type": "string"}},
        "X-Guard-Blocked": {"description": "Recipients removed as blocked.",
                            "schema": {"type": "integer"}},
        "X-Guard-Deferred": {"description": "Recipients held in the outbox.",
                             "schema": {"type": "integer"}},
        "X-Guard-Rerouted": {"description": "Recipients removed as rerouted.",
                             "schema": {"type": "integer"}},
    }
    retry_key = {"name": "Idempotency-Key", "in": "header", "schema": {
        "type": "string", "minLength": 1, "maxLength": 255},
        "description": "A retry with the same key and body gets the first answer and sends "
                       "nothing again; the same key with another body is a 409. Kept "
                       "`GUARD_IDEMPOTENCY_HOURS` (24) per API key."}
    register_path("/v3/mail/send", {"post": {
        "operationId": "sendgridMailSend",
        "summary": "SendGrid v3 Mail Send, guarded.",
        "description": "Each recipient is checked; blocked and rerouted ones are removed, "
                       "deferred ones held, the rest forwarded to SendGrid. Purpose, sender, "
                       "campaign and product come from `custom_args` (`guard_purpose`, "
                       "`guard_sender`, `guard_campaign`, `guard_product`) or the key's "
                       "defaults. Scope: `send`.",
        "security": [{"bearer": []}],
        "parameters": [retry_key],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "$ref": "#/components/schemas/SendGridMail"}}}},
        "responses": {
            "202": {"description": "Accepted (what was allowed is forwarded).",
                    "headers": guard_headers},
            "400": sendgrid_error, "401": sendgrid_error, "403": sendgrid_error,
            "409": sendgrid_error, "413": sendgrid_error,
        },
    }}, components={
        "SendGridErrors": {"type": "object", "properties": {"errors": {"type": "array", "items": {
            "type": "object", "properties": {"message": {"type": "string"},
                                             "field": {"type": "string", "nullable": True},
                                             "help": {"type": "object", "nullable": True}}}}}},
        "SendGridMail": {"type": "object", "required": ["personalizations", "from"],
                         "description": "SendGrid's Mail Send body (see SendGrid's v3 spec).",
                         "properties": {
                             "personalizations": {"type": "array", "minItems": 1, "items": {
                                 "type": "object", "required": ["to"], "properties": {
                                     "to": {"type": "array", "minItems": 1, "items": {
                                         "$ref": "#/components/schemas/SendGridAddress"}},
                                     "cc": {"type": "array", "items": {
                                         "$ref": "#/components/schemas/SendGridAddress"}},
                                     "bcc": {"type": "array", "items": {
                                         "$ref": "#/components/schemas/SendGridAddress"}},
                                     "custom_args": {"type": "object"}}}},
                             "from": {"$ref": "#/components/schemas/SendGridAddress"},
                             "subject": {"type": "string"},
                             "custom_args": {"type": "object"},
                             "template_id": {"type": "string"}}},
        "SendGridAddress": {"type": "object", "required": ["email"], "properties": {
            "email": {"type": "string", "format": "email"}, "name": {"type": "string"}}},
        "TwilioError": {"type": "object", "properties": {
            "code": {"type": "integer"}, "message": {"type": "string"},
            "more_info": {"type": "string"}, "status": {"type": "integer"}}},
        "TwilioResource": {"type": "object", "properties": {
            "sid": {"type": "string"}, "status": {"type": "string"},
            "to": {"type": "string", "nullable": True},
            "from": {"type": "string", "nullable": True}}},
    })
    for resource, what in (("Messages", "an SMS"), ("Calls", "a call")):
        register_path(f"/2010-04-01/Accounts/{{AccountSid}}/{resource}.json", {"post": {
            "operationId": f"twilioCreate{resource[:-1]}",
            "summary": f"Twilio: create {what}, guarded.",
            "description": "HTTP Basic with the guard API key as password. Purpose and sender "
                           "from `X-Guard-Purpose` / `X-Guard-Sender` or the key's defaults. "
                           "Allowed: Twilio's answer as is. Deferred: 201 with status "
                           "`scheduled` (messages) / `queued` (calls) and `X-Guard-Not-Before`. "
                           "Blocked or rerouted: 400, code 21610. Scope: `send`.",
            "security": [{"basic": []}],
            "parameters": [
                {"name": "AccountSid", "in": "path", "required": True,
                 "schema": {"type": "string"}},
                {"name": "X-Guard-Purpose", "in": "header", "schema": {"type": "string"}},
                {"name": "X-Guard-Sender", "in": "header", "schema": {"type": "string"}},
                retry_key,
            ],
            "requestBody": {"required": True, "content": {
                "application/x-www-form-urlencoded": {"schema": {
                    "type": "object", "required": ["To"],
                    "properties": {"To": {"type": "string"}, "From": {"type": "string"},
                                   "Body": {"type": "string"}, "Url": {"type": "string"},
                                   "SendAt": {"type": "string", "format": "date-time"}}}}}},
            "responses": {
                "201": {"description": "Created by Twilio, or held by the guard.",
                        "content": {"application/json": {"schema": {
                            "$ref": "#/components/schemas/TwilioResource"}}}},
                "400": twilio_error, "401": twilio_error, "403": twilio_error,
                "409": twilio_error, "415": twilio_error,
            },
        }})


_describe()
