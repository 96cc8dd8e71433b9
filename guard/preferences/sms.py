"""Twilio's incoming-message webhook: STOP and START become SMS consent.

Twilio handles the keywords itself (it stops sending and answers the
customer); this endpoint makes every other sender of the company hear of it.
``OptOutType`` (STOP, START, HELP) comes with Advanced Opt-Out; without it the
message body is read against Twilio's default keywords. Requests are signed
by Twilio with the account's auth token (``X-Twilio-Signature``: HMAC-SHA1
over the URL Twilio called and the sorted form parameters); an unsigned or
wrongly signed request changes nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import sqlalchemy as sa
from flask import Blueprint, Response, request
from sqlalchemy.exc import IntegrityError

from guard.errors import Forbidden, InvalidField
from guard.http.openapi import problem, register_path
from guard.preferences.recording import SYSTEM, Refused, ingest
from guard.services import services
from guard.store.tables import unsubscribes

bp = Blueprint("preferences_sms", __name__)

PATH = "/hooks/twilio/messages"
# Twilio's default opt-out and opt-in keywords (the whole body, any case).
STOP_WORDS = ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT")
START_WORDS = ("START", "YES", "UNSTOP")
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'


def signature(auth_token: str, url: str, params) -> str:
    """Return Twilio's X-Twilio-Signature for a POST of ``params`` to ``url``."""
    text = url + "".join(f"{key}{value}" for key, value in sorted(params))
    mac = hmac.new(auth_token.encode(), text.encode(), hashlib.sha1).digest()
    return base64.b64encode(mac).decode()


def _signed_url() -> str:
    # Twilio signs the URL it was given; behind a proxy that is the public one.
    public = services().preferences.public_url
    if public:
        return public + request.full_path.rstrip("?")
    return request.url


def _verify() -> None:
    token = services().preferences.twilio_auth_token
    if not token:
        raise Forbidden("GUARD_TWILIO_AUTH_TOKEN is not set: no Twilio request can be verified")
    given = request.headers.get("X-Twilio-Signature", "")
    params = list(request.form.items(multi=True))
    expected = signature(token, _signed_url(), params)
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise Forbidden("X-Twilio-Signature does not match this request", field="signature")
    account = services().proxy.twilio_account_sid
    if account and request.form.get("AccountSid") != account:
        raise Forbidden("AccountSid: not this guard's Twilio account", field="AccountSid")


def _keyword() -> str | None:
    kind = (request.form.get("OptOutType") or "").strip().upper()
    if kind in ("STOP", "START", "HELP"):
        return kind
    body = (request.form.get("Body") or "").strip().upper()
    if body in STOP_WORDS:
        return "STOP"
    if body in START_WORDS:
        return "START"
    return None


@bp.post(PATH)
def incoming_message() -> Response:
    """Record STOP as an SMS opt-out of everything and START as an opt-in; answer empty TwiML."""
    _verify()
    keyword = _keyword()
    if keyword in ("STOP", "START"):
        sender = request.form.get("From") or ""
        message = request.form.get("MessageSid") or ""
        if not sender:
            raise InvalidField("From", "required")
        if not message:
            raise InvalidField("MessageSid", "required")
        guard = services().guard
        now = guard.clock()
        event = {"type": "consent",
                 "source": {"system": SYSTEM, "type": "twilio", "id": message},
                 "phone": sender, "channel": "sms", "purpose": "*",
                 "status": "opt_out" if keyword == "STOP" else "opt_in",
                 "at": now.isoformat()}
        receipt = hashlib.sha256(f"twilio:{message}".encode()).hexdigest()
        try:
            with guard.engine.begin() as conn:
                # Twilio may deliver one message twice: the second changes nothing.
                seen = conn.execute(sa.select(unsubscribes.c.token_hash)
                                    .where(unsubscribes.c.token_hash == receipt)).first()
                if seen is None:
                    ingest(conn, guard, [event], now)
                    conn.execute(sa.insert(unsubscribes).values(token_hash=receipt,
                                                                recorded_at=now))
        except IntegrityError:
            pass
        except Refused as exc:
            raise InvalidField("From", str(exc)) from None
    return Response(EMPTY_TWIML, mimetype="text/xml")


register_path(PATH, {"post": {
    "summary": "Twilio incoming-message webhook: STOP and START become SMS consent",
    "tags": ["preferences"],
    "description": "Signed by Twilio (X-Twilio-Signature, the account's auth token). STOP "
                   "(OptOutType, or a body of only an opt-out keyword) records an SMS opt-out "
                   "of everything for the From number; START an opt-in; anything else changes "
                   "nothing. Answers empty TwiML.",
    "parameters": [{"name": "X-Twilio-Signature", "in": "header", "required": True,
                    "schema": {"type": "string"}}],
    "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
        "schema": {"type": "object", "required": ["MessageSid", "AccountSid", "From"],
                   "properties": {name: {"type": "string"} for name in (
                       "MessageSid", "AccountSid", "From", "To", "Body", "OptOutType")}}}}},
    "responses": {"200": {"description": "Empty TwiML.",
                          "content": {"text/xml": {"schema": {"type": "string"}}}},
                  "400": problem("From or MessageSid is missing."),
                  "403": problem("Not signed by this guard's Twilio account.")},
}})
