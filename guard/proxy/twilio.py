"""Twilio Messages and Calls, guarded.

The tool authenticates as with Twilio (HTTP Basic, its guard key as the
password). The body must be a form, as Twilio's clients send it, with each
single-valued field once; the guard checks it and, if allowed, sends exactly
those fields to its own Twilio account, and Twilio's answer comes back as is.
A message with ``SendAt`` is judged for when it goes out. Blocked or rerouted: 400 with
Twilio's error 21610 and the guard's reason. Deferred: held in the outbox
and answered with a resource whose status says it is waiting (``scheduled``
for messages, ``queued`` for calls) and ``X-Guard-Not-Before``.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Blueprint, Response, g, request

from guard.errors import GuardError, InvalidField, UnsupportedMedia
from guard.http.auth import authenticate_request
from guard.proxy import delivery, idempotency
from guard.proxy.idempotency import Answer, Claimed
from guard.proxy.outbox import Claim, Item, idempotency_key
from guard.proxy.providers import TWILIO
from guard.services import services

bp = Blueprint("twilio", __name__)

CHANNELS = {"Messages": "sms", "Calls": "call"}
SID_PREFIX = {"Messages": "SM", "Calls": "CA"}
# While held: a message Twilio would call "scheduled", a call it would call "queued".
WAITING = {"Messages": "scheduled", "Calls": "queued"}
HEADERS = {"X-Guard-Purpose": "purpose", "X-Guard-Sender": "sender",
           "X-Guard-Campaign": "campaign", "X-Guard-Product": "product"}
FORM = "application/x-www-form-urlencoded"
# Twilio's list parameters (the official spec's arrays); every other field is taken once.
REPEATABLE = frozenset({"MediaUrl", "PersistentAction", "StatusCallbackEvent",
                        "RecordingStatusCallbackEvent"})
MAX_FIELDS = 1000
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


def _waiting_resource(resource: str, row_id: str, form: Mapping, account: str,
                      status: str) -> dict:
    sid = SID_PREFIX[resource] + hashlib.sha256(row_id.encode()).hexdigest()[:32]
    account_sid = account if ACCOUNT_SID.match(account) else None
    out = {"sid": sid, "account_sid": account_sid, "to": form.get("To"),
           "from": form.get("From"), "status": status, "direction": "outbound-api",
           "api_version": "2010-04-01",
           "date_created": format_datetime(services().outbox.clock(), usegmt=True),
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
    # The key's defaults lie within its allow-lists, so only what the headers name is checked.
    g.api_key.permit(body.get("sender"), body.get("purpose"), sender_field="X-Guard-Sender",
                     purpose_field="X-Guard-Purpose")
    return body


def _reason(decision) -> str:
    messages = " ".join(r.message for r in decision.reasons) or "The guard stopped this contact."
    if decision.verdict == "reroute" and decision.reroute:
        target = ", ".join(f"{k} {v}" for k, v in dict(decision.reroute).items())
        return f"Contact Guard rerouted this contact ({target}): {messages}"
    return f"Contact Guard blocked this contact: {messages}"


def _payload(fields: list[tuple[str, str]], verdict: str) -> dict:
    """Encode the form the provider gets: the fields the guard checked, nothing else."""
    if verdict == "defer":
        # A held message goes when the guard releases it, which is after any SendAt it had;
        # Twilio refuses to schedule for a time that has passed.
        fields = [(k, v) for k, v in fields if k not in ("SendAt", "ScheduleType")]
    return {"form": urlencode(fields)}


def _item(resource: str, payload: Mapping, check: Mapping, key, message_key: str,
          decision) -> Item:
    return Item("twilio", resource, payload,
                idempotency_key(message_key, "twilio", resource, check["to"]),
                recipients=[check["to"]], checks=[dict(check)], defaults=key.defaults,
                decision_ids=[decision.decision_id], key_id=key.id,
                not_before=decision.not_before, needs_check=decision.verdict == "defer")


@dataclass(frozen=True)
class Stored:
    """What one checked send left in the store: its decision, its outbox row, its answer."""

    decision: Any
    held: str | None = None
    claim: Claim | None = None
    answer: Answer | None = None


def check_and_store(resource: str, fields: list[tuple[str, str]], check: Mapping, key,
                    message_key: str, *, claimed: Claimed | None = None,
                    answer: Callable[[Stored], Answer] | None = None) -> Stored:
    """Check one send and, in the same transaction, hold or record it as sending.

    A deferred send is held (``held`` None if its key was held before); an
    allowed one is recorded as sending (``claim`` None if its key was known);
    blocked and rerouted ones store nothing but their decision. ``answer``
    builds the caller's answer in that transaction, stored under ``claimed``.
    An attempt the guard cannot judge raises InvalidField, and nothing is stored.
    """
    box = services().outbox
    stored: dict[str, Stored] = {}

    def keep(conn, outcomes: list) -> None:
        # In the check's transaction, so the row commits with the decision or not at all.
        [decision] = outcomes
        if isinstance(decision, InvalidField):
            raise decision
        item = _item(resource, _payload(fields, decision.verdict), check, key, message_key,
                     decision)
        done = Stored(decision)
        if decision.verdict == "defer":
            done = Stored(decision, held=box.hold_in(conn, item))
        elif decision.verdict == "allow":
            done = Stored(decision, claim=box.start_sending_in(conn, item))
        if answer is not None:
            done = replace(done, answer=answer(done))
            services().answers.remember_in(conn, claimed, done.answer,
                                        decision_ids=[decision.decision_id],
                                        outbox_id=done.claim.id if done.claim else None)
        stored["done"] = done

    services().guard.check_many([check], commit=True, defaults=key.defaults,
                                               then=keep)
    return stored["done"]


def send_or_hold(resource: str, form: Mapping[str, str], check: Mapping, key,
                 *, message_key: str) -> str:
    """Check and send (or hold) a Twilio request the guard makes itself; say what happened."""
    done = check_and_store(resource, list(form.items()), check, key, message_key)
    decision = done.decision
    if decision.verdict == "defer":
        return f"held until {decision.not_before.isoformat()}"
    if decision.verdict != "allow":
        return f"reported: {decision.verdict} on {CHANNELS[resource]} too"
    if done.claim is None:
        return "already sent"
    status, _ = delivery.deliver(done.claim)
    return status


def read_form(raw: bytes) -> list[tuple[str, str]]:
    """Parse a Twilio request body as Twilio does; raise naming what is wrong with it.

    The guard checks and forwards the very same fields, so it takes only the
    form encoding Twilio's clients send, and a field Twilio takes once only once.
    """
    if request.mimetype != FORM:
        raise UnsupportedMedia(f"Content-Type: send {FORM}, as Twilio's API takes it "
                               f"(got {request.mimetype or 'none'!r})", field="Content-Type")
    try:
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True, strict_parsing=True,
                          max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidField("body", f"not a form: {exc}") from None
    seen: set[str] = set()
    for name, _ in pairs:
        if name in seen and name not in REPEATABLE:
            raise InvalidField(name, f"given more than once; Twilio takes one {name}")
        seen.add(name)
    return pairs


def _send_at(form: Mapping[str, str]) -> str | None:
    """Return when a scheduled message goes out (Twilio's SendAt), as the check's time."""
    value = form.get("SendAt")
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidField("SendAt", f"not an ISO 8601 time: {value!r}") from None
    if when.tzinfo is None:
        raise InvalidField("SendAt", f"needs a time zone (e.g. {value}Z): {value!r}")
    return when.isoformat()


def _answer(resource: str, form: Mapping[str, str], account: str, message_key: str,
            check: Mapping, done: Stored) -> Answer:
    """Answer before the provider is called: refused, held, or queued with the guard."""
    decision = done.decision
    headers = {"X-Guard-Decisions": decision.decision_id or ""}
    if decision.verdict in ("block", "reroute"):
        return _error_answer(400, _reason(decision), BLOCKED, headers)
    headers["X-Guard-Verdict"] = decision.verdict
    if decision.verdict == "defer":
        headers["X-Guard-Not-Before"] = decision.not_before.isoformat()
        headers["X-Guard-Outbox"] = done.held or ""
        row = done.held or idempotency_key(message_key, "twilio", resource, check["to"])
        return Answer(201, headers, json.dumps(_waiting_resource(
            resource, row, form, account, WAITING[resource])))
    # What the caller gets if Twilio does not take it now: the outbox owns it and retries.
    headers["X-Guard-Outbox"] = done.claim.id
    return Answer(201, headers, json.dumps(_waiting_resource(
        resource, done.claim.id, form, account, "queued")))


def _error_answer(status: int, message: str, code: int, headers: Mapping[str, str]) -> Answer:
    response = error_response(status, message, code)
    return Answer(status, {**headers}, response.get_data(as_text=True))


def _create(resource: str, account: str) -> Response:
    key = authenticate_request("send")
    answers = services().answers
    raw, claimed, replayed = answers.arrive(key.id)
    if replayed is not None:
        return replayed.response()
    fields = read_form(raw)
    form = dict(fields)
    check = _check_body(form, CHANNELS[resource])
    send_at = _send_at(form)
    if send_at:
        check["at"] = send_at
    # Rows are keyed per request and recipient; a retried request never gets this far.
    message_key = uuid.uuid4().hex
    try:
        done = check_and_store(
            resource, fields, check, key, message_key, claimed=claimed,
            answer=lambda done: _answer(resource, form, account, message_key, check, done))
    except idempotency.AlreadyAnswered:
        return answers.replay(claimed).response()
    final = done.answer
    if done.claim is not None:
        _, outcome = delivery.deliver(done.claim, defer=True)
        final = TWILIO.answer(outcome, done.answer)
        answers.complete(claimed, done.answer, final)
    response = final.response()
    # A delivered send's row is settled once the caller has Twilio's answer.
    response.call_on_close(services().outbox.settle_deferred)
    return response


@bp.post("/2010-04-01/Accounts/<account>/Messages.json")
def create_message(account: str) -> Response:
    """Check and forward a Twilio SMS."""
    return _create("Messages", account)


@bp.post("/2010-04-01/Accounts/<account>/Calls.json")
def create_call(account: str) -> Response:
    """Check and forward a Twilio call."""
    return _create("Calls", account)
