"""Twilio Messages and Calls, guarded.

The tool authenticates as with Twilio (HTTP Basic, its guard key as the
password). Allowed: the request goes, byte for byte, to the guard's own Twilio
account and Twilio's answer comes back as is. Blocked or rerouted: 400 with
Twilio's error 21610 and the guard's reason. Deferred: held in the outbox
and answered with a resource whose status says it is waiting (``scheduled``
for messages, ``queued`` for calls) and ``X-Guard-Not-Before``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from email.utils import format_datetime
from typing import Any

from flask import Blueprint, Response, current_app, request
from werkzeug.datastructures import MultiDict

from guard import proxy
from guard.auth import authenticate_request
from guard.errors import GuardError, InvalidField
from guard.forward import REJECTED, SENT, UpstreamRequest
from guard.outbox import Claim, Item, idempotency_key

bp = Blueprint("twilio", __name__)

CHANNELS = {"Messages": "sms", "Calls": "call"}
SID_PREFIX = {"Messages": "SM", "Calls": "CA"}
# While held: a message Twilio would call "scheduled", a call it would call "queued".
WAITING = {"Messages": "scheduled", "Calls": "queued"}
HEADERS = {"X-Guard-Purpose": "purpose", "X-Guard-Sender": "sender",
           "X-Guard-Campaign": "campaign", "X-Guard-Product": "product"}
ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
# Twilio's codes: 21610 "unsubscribed recipient" is what a tool already handles as "do not
# send to this number"; 21211 invalid To; 21604 To missing; 20003 authentication.
BLOCKED, INVALID_TO, MISSING_TO, AUTHENTICATE = 21610, 21211, 21604, 20003


def error_response(status: int, message: str, code: int | None = None) -> Response:
    """Answer in Twilio's error shape."""
    code = code or status
    body = {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}
    response = Response(json.dumps(body), status=status, mimetype="application/json")
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Basic realm="Twilio API"'
    return response


@bp.errorhandler(GuardError)
def _guard_error(exc: GuardError) -> Response:
    if exc.status in (401, 403):
        return error_response(exc.status, exc.detail, AUTHENTICATE)
    if exc.field == "To" and "required" in exc.detail:
        return error_response(exc.status, exc.detail, MISSING_TO)
    if exc.field in ("to", "To"):
        return error_response(exc.status, exc.detail, INVALID_TO)
    return error_response(exc.status, exc.detail)


def upstream_request(resource: str, payload: Mapping, conf: proxy.ProxySettings) -> UpstreamRequest:
    """Build the request to the guard's own Twilio account."""
    sid = conf.twilio_account_sid or ""
    token = base64.b64encode(f"{sid}:{conf.twilio_auth_token or ''}".encode()).decode()
    return UpstreamRequest(
        "POST", f"{conf.twilio_url}/2010-04-01/Accounts/{sid}/{resource}.json",
        {"Authorization": f"Basic {token}",
         "Content-Type": "application/x-www-form-urlencoded"},
        payload["form"].encode(),
    )


def _waiting_resource(resource: str, row_id: str, form: Mapping, account: str,
                      status: str) -> dict:
    sid = SID_PREFIX[resource] + hashlib.sha256(row_id.encode()).hexdigest()[:32]
    account_sid = account if ACCOUNT_SID.match(account) else None
    out = {"sid": sid, "account_sid": account_sid, "to": form.get("To"),
           "from": form.get("From"), "status": status, "direction": "outbound-api",
           "api_version": "2010-04-01",
           "date_created": format_datetime(proxy.outbox().clock(), usegmt=True),
           "uri": f"/2010-04-01/Accounts/{account}/{resource}/{sid}.json"}
    if resource == "Messages":
        out["body"] = form.get("Body")
    return out


def _check_body(form: Mapping, channel: str) -> dict:
    to = form.get("To")
    if not to:
        raise InvalidField("To", "a 'To' phone number is required")
    # A WhatsApp address is still the person's phone number.
    to = to.removeprefix("whatsapp:")
    body = {"channel": channel, "to": to}
    for header, name in HEADERS.items():
        if request.headers.get(header):
            body[name] = request.headers[header]
    return body


def _reason(decision) -> str:
    messages = " ".join(r.message for r in decision.reasons) or "The guard stopped this contact."
    if decision.verdict == "reroute" and decision.reroute:
        target = ", ".join(f"{k} {v}" for k, v in dict(decision.reroute).items())
        return f"Contact Guard rerouted this contact ({target}): {messages}"
    return f"Contact Guard blocked this contact: {messages}"


def _item(resource: str, payload: Mapping, check: Mapping, key, message_key: str,
          decision) -> Item:
    return Item("twilio", resource, payload,
                idempotency_key(message_key, "twilio", resource, check["to"]),
                recipients=[check["to"]], checks=[dict(check)], defaults=key.defaults,
                decision_ids=[decision.decision_id], key_id=key.id,
                not_before=decision.not_before, needs_check=decision.verdict == "defer")


def check_and_store(resource: str, payload: Mapping, check: Mapping, key,
                    message_key: str) -> tuple[Any, str | None, Claim | None]:
    """Check one send and, in the same transaction, hold or record it as sending.

    Return (decision, held row id, claim to deliver): a deferred send is held
    (its id None if its key was held before); an allowed one is recorded as
    sending (its claim None if its key was known); blocked and rerouted ones
    store nothing but their decision. An attempt the guard cannot judge
    raises InvalidField, and nothing is stored.
    """
    box = proxy.outbox()
    stored: dict[str, Any] = {}

    def keep(conn, outcomes: list) -> None:
        # In the check's transaction, so the row commits with the decision or not at all.
        [decision] = outcomes
        if isinstance(decision, InvalidField):
            raise decision
        item = _item(resource, payload, check, key, message_key, decision)
        stored.update(decision=decision, held=None, claim=None)
        if decision.verdict == "defer":
            stored["held"] = box.hold_in(conn, item)
        elif decision.verdict == "allow":
            stored["claim"] = box.start_sending_in(conn, item)

    current_app.extensions["guard"].check_many([check], commit=True, defaults=key.defaults,
                                               then=keep)
    return stored["decision"], stored["held"], stored["claim"]


def send_or_hold(resource: str, form: Mapping[str, str], check: Mapping, key,
                 *, message_key: str) -> str:
    """Check and send (or hold) a Twilio request the guard makes itself; say what happened."""
    from urllib.parse import urlencode

    decision, _, claim = check_and_store(resource, {"form": urlencode(form)}, check, key,
                                         message_key)
    if decision.verdict == "defer":
        return f"held until {decision.not_before.isoformat()}"
    if decision.verdict != "allow":
        return f"reported: {decision.verdict} on {CHANNELS[resource]} too"
    if claim is None:
        return "already sent"
    status, _ = proxy.deliver(claim)
    return status


def _create(resource: str, account: str) -> Response:
    key = authenticate_request("send")
    # Read the raw body first: it is forwarded byte for byte, and werkzeug then parses the
    # form from the cached bytes.
    raw = request.get_data(as_text=True)
    form = MultiDict(request.form)
    check = _check_body(form, CHANNELS[resource])
    message_key = request.headers.get("Idempotency-Key") or uuid.uuid4().hex
    decision, row_id, claim = check_and_store(resource, {"form": raw}, check, key, message_key)
    if decision.verdict in ("block", "reroute"):
        response = error_response(400, _reason(decision), BLOCKED)
        response.headers["X-Guard-Decisions"] = decision.decision_id or ""
        return response
    headers = {"X-Guard-Decisions": decision.decision_id or "",
               "X-Guard-Verdict": decision.verdict}
    if decision.verdict == "defer":
        headers["X-Guard-Not-Before"] = decision.not_before.isoformat()
        headers["X-Guard-Outbox"] = row_id or ""
        key_of_row = idempotency_key(message_key, "twilio", resource, check["to"])
        body = _waiting_resource(resource, row_id or key_of_row, form, account,
                                 WAITING[resource])
        return Response(json.dumps(body), status=201, mimetype="application/json",
                        headers=headers)
    if claim is None:
        return error_response(409, "this request was already accepted (Idempotency-Key)")
    status, outcome = proxy.deliver(claim, defer=True)
    if outcome.state in (SENT, REJECTED):
        reply = outcome.reply
        response = Response(reply.body, status=reply.status, headers=headers,
                            content_type=reply.headers.get("Content-Type", "application/json"))
        # A delivered send's row is settled once the caller has Twilio's answer.
        response.call_on_close(proxy.outbox().settle_deferred)
        return response
    # Twilio did not take it yet; the outbox owns it now and the worker will retry.
    headers["X-Guard-Outbox"] = claim.id
    body = _waiting_resource(resource, claim.id, form, account,
                             "queued")
    return Response(json.dumps(body), status=201, mimetype="application/json", headers=headers)


@bp.post("/2010-04-01/Accounts/<account>/Messages.json")
def create_message(account: str) -> Response:
    """Check and forward a Twilio SMS."""
    return _create("Messages", account)


@bp.post("/2010-04-01/Accounts/<account>/Calls.json")
def create_call(account: str) -> Response:
    """Check and forward a Twilio call."""
    return _create("Calls", account)
