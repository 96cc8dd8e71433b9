"""SendGrid v3 Mail Send, guarded: ``POST /v3/mail/send``.

Every recipient (to, cc, bcc) of every personalization is checked. Allowed
ones are forwarded in one request, otherwise unchanged; blocked and rerouted
ones are removed; deferred ones wait in the outbox, one row each, and are
checked again when released. The caller sees SendGrid's answer (202, empty
body) plus ``X-Guard-*`` headers; SendGrid's own errors come back as they are.
"""

from __future__ import annotations

import copy
import json
import uuid
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from email_validator import EmailNotValidError, validate_email
from flask import Blueprint, Response, current_app, g, request

from guard.errors import GuardError, InvalidField, TooLarge
from guard.http.auth import authenticate_request
from guard.ingest.identity import normalize_email
from guard.preferences.headers import add_headers
from guard.proxy import delivery, idempotency, twilio
from guard.proxy.idempotency import Answer
from guard.proxy.outbox import Item, idempotency_key
from guard.proxy.providers import SENDGRID, custom_args
from guard.proxy.transport import REJECTED
from guard.services import services

bp = Blueprint("sendgrid", __name__)

FIELDS = ("to", "cc", "bcc")
# The index of the one recipient outside the personalizations: mail_settings.bcc.
ARCHIVE = -1
# custom_args keys that carry the attempt; personalization-level wins over message-level.
GUARD_ARGS = {"guard_purpose": "purpose", "guard_sender": "sender",
              "guard_campaign": "campaign", "guard_product": "product"}


@dataclass(frozen=True)
class Recipient:
    """One address of one personalization, and how the guard decided on it."""

    index: int
    field: str
    address: Mapping[str, Any]
    check: Mapping[str, Any]
    args: Mapping[str, Any]
    decision: Any = None

    @property
    def email(self) -> str:
        return str(self.address.get("email"))


@dataclass
class Plan:
    """What becomes of one Mail Send request."""

    forward: dict | None = None
    allowed: list[Recipient] = field(default_factory=list)
    deferred: list[Recipient] = field(default_factory=list)
    blocked: list[Recipient] = field(default_factory=list)
    rerouted: list[Recipient] = field(default_factory=list)

    @property
    def decision_ids(self) -> list[str]:
        everyone = self.allowed + self.deferred + self.blocked + self.rerouted
        return [r.decision.decision_id for r in everyone if r.decision.decision_id]


def _send_at(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidField(where, "send_at must be a unix timestamp")
    try:
        return datetime.fromtimestamp(value, UTC).isoformat()
    except (OverflowError, OSError, ValueError):
        raise InvalidField(where, f"send_at {value} is out of range") from None


def _valid_email(text: str) -> bool:
    """Tell cheaply whether ``text`` surely passes email_validator; False means ask it."""
    # normalize_email strips blanks first; validate_email does not, so those go the long way.
    if text != text.strip():
        return False
    try:
        normalize_email(text)
    except ValueError:
        return False
    return True


def read_recipients(body: Any) -> list[Recipient]:
    """List every recipient of a Mail Send body with its check, raising InvalidField."""
    if not isinstance(body, Mapping):
        raise InvalidField("body", "must be a JSON object")
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        raise InvalidField("personalizations", "must be a non-empty array")
    message_args = custom_args(body.get("custom_args"))
    template = body.get("template_id") if isinstance(body.get("template_id"), str) else None
    message_at = _send_at(body.get("send_at"), "send_at")
    recipients = []
    for i, pers in enumerate(personalizations):
        if not isinstance(pers, Mapping):
            raise InvalidField(f"personalizations.{i}", "must be an object")
        if not pers.get("to"):
            raise InvalidField(f"personalizations.{i}.to", "at least one recipient is required")
        args = {**message_args, **custom_args(pers.get("custom_args"))}
        at = _send_at(pers.get("send_at"), f"personalizations.{i}.send_at") or message_at
        attempt = {"channel": "email", "template": template, "at": at}
        for arg, name in GUARD_ARGS.items():
            if args.get(arg) not in (None, ""):
                attempt[name] = str(args[arg])
        attempt = {k: v for k, v in attempt.items() if v is not None}
        for fld in FIELDS:
            addresses = pers.get(fld) or []
            if not isinstance(addresses, list):
                raise InvalidField(f"personalizations.{i}.{fld}", "must be an array")
            for j, address in enumerate(addresses):
                _require_email(address, f"personalizations.{i}.{fld}.{j}.email")
                check = {**attempt, "to": address["email"]}
                recipients.append(Recipient(i, fld, address, check, args))
    archive = (body.get("mail_settings") or {}).get("bcc") \
        if isinstance(body.get("mail_settings"), Mapping) else None
    if isinstance(archive, Mapping) and archive.get("enable") is not False \
            and archive.get("email") is not None:
        # The BCC mail setting copies every message to one more address: checked like any.
        _require_email(archive, "mail_settings.bcc.email")
        attempt = {"channel": "email", "template": template, "at": message_at,
                   **{name: str(message_args[arg]) for arg, name in GUARD_ARGS.items()
                      if message_args.get(arg) not in (None, "")}}
        check = {**{k: v for k, v in attempt.items() if v is not None}, "to": archive["email"]}
        recipients.append(Recipient(ARCHIVE, "mail_settings.bcc", archive, check, message_args))
    return recipients


def _require_email(address: Any, where: str) -> None:
    """Raise InvalidField naming ``where`` unless ``address`` holds a valid email address."""
    if not isinstance(address, Mapping) or not isinstance(address.get("email"), str):
        raise InvalidField(where, "an email address is required")
    if not _valid_email(address["email"]):
        try:
            validate_email(address["email"], check_deliverability=False)
        except EmailNotValidError as exc:
            raise InvalidField(where, f"{address['email']!r} is not an email "
                                      f"address: {exc}") from None


def validate_attempts(policy, recipients: list[Recipient], defaults: Mapping[str, str]) -> None:
    """Reject an unknown or unpermitted purpose or sender before anyone is checked.

    Nothing is half-stored: a 400 (unknown) or 403 (outside the caller's key's
    allow-lists) comes before the first check.
    """
    seen = set()
    for r in recipients:
        purpose = r.check.get("purpose") or defaults.get("purpose")
        sender = r.check.get("sender") or defaults.get("sender")
        if (purpose, sender) in seen:
            continue
        seen.add((purpose, sender))
        if not purpose:
            raise InvalidField("custom_args.guard_purpose",
                               "no purpose: set it or give the API key a default purpose")
        if purpose not in policy.purposes:
            raise InvalidField("custom_args.guard_purpose",
                               f"unknown purpose {purpose!r} (known: "
                               f"{', '.join(sorted(policy.purposes))})")
        if not sender:
            raise InvalidField("custom_args.guard_sender",
                               "no sender: set it or give the API key a default sender")
        if not policy.knows_sender(sender):
            raise InvalidField("custom_args.guard_sender",
                               f"sender {sender!r} matches none of the policy's senders")
        g.api_key.permit(sender, purpose, sender_field="custom_args.guard_sender",
                         purpose_field="custom_args.guard_purpose")


def _rest_of(pers: Mapping) -> dict:
    return {k: v for k, v in pers.items() if k not in FIELDS}


def rebuild(body: Mapping, keep: list[Recipient]) -> dict | None:
    """Rebuild the body with only ``keep``; None when no one is left.

    A personalization left without ``to`` (SendGrid requires one) gives each
    of its remaining cc / bcc recipients a personalization of their own, so no
    one sees an address they were not meant to see.
    """
    # Everything but the personalizations (rebuilt below) is copied, in the body's key order.
    out = {k: None if k == "personalizations" else copy.deepcopy(v) for k, v in body.items()}
    if not any(r.index == ARCHIVE for r in keep) and isinstance(out.get("mail_settings"), dict):
        out["mail_settings"].pop("bcc", None)
    personalizations = []
    for i, pers in enumerate(body["personalizations"]):
        mine = [r for r in keep if r.index == i]
        if not mine:
            continue
        rest = _rest_of(pers)
        to = [dict(r.address) for r in mine if r.field == "to"]
        if to:
            new = copy.deepcopy(rest)
            new["to"] = to
            for fld in ("cc", "bcc"):
                others = [dict(r.address) for r in mine if r.field == fld]
                if others:
                    new[fld] = others
            personalizations.append(new)
        else:
            for r in mine:
                personalizations.append({**copy.deepcopy(rest), "to": [dict(r.address)]})
    if not personalizations:
        return None
    out["personalizations"] = personalizations
    return out


def split(body: Mapping, recipients: list[Recipient], outcomes: list) -> Plan:
    """Sort checked recipients by verdict; raise the first outcome that is an InvalidField."""
    result = Plan()
    sorted_by = {"allow": result.allowed, "defer": result.deferred, "block": result.blocked,
                 "reroute": result.rerouted}
    for recipient, outcome in zip(recipients, outcomes, strict=True):
        if isinstance(outcome, InvalidField):
            raise outcome
        # The archive copy goes with the mail or not at all: never held, never rerouted.
        verdict = outcome.verdict if recipient.index != ARCHIVE or outcome.verdict == "allow" \
            else "block"
        sorted_by[verdict].append(Recipient(
            recipient.index, recipient.field, recipient.address, recipient.check,
            recipient.args, outcome))
    result.forward = body if _unchanged(body, recipients, result) else \
        rebuild(body, result.allowed)
    return result


def _unchanged(body: Mapping, recipients: list[Recipient], result: Plan) -> bool:
    """Tell whether ``rebuild`` would give back the body as it is (every recipient kept)."""
    if len(result.allowed) != len(recipients):
        return False
    # rebuild leaves out a to / cc / bcc that is present but empty; such a body is rebuilt.
    return all(pers[fld] for pers in body["personalizations"] for fld in FIELDS if fld in pers)


def plan(body: Mapping, check: Callable[[Mapping], Any], *, policy=None,
         defaults: Mapping[str, str] | None = None) -> Plan:
    """Check every recipient with ``check`` and sort them by verdict."""
    recipients = read_recipients(body)
    if policy is not None:
        validate_attempts(policy, recipients, defaults or {})
    return split(body, recipients, [check(r.check) for r in recipients])


def errors_response(status: int, message: str, field_name: str | None = None) -> Response:
    """Answer in SendGrid's error shape."""
    body = {"errors": [{"message": message, "field": field_name, "help": None}]}
    body["errors"][0] = {k: v for k, v in body["errors"][0].items() if v is not None}
    return Response(json.dumps(body), status=status, mimetype="application/json")


@bp.errorhandler(GuardError)
def _guard_error(exc: GuardError) -> Response:
    return errors_response(exc.status, exc.detail, exc.field)


def _read_body(raw: bytes) -> Any:
    if request.headers.get("Content-Encoding", "").lower() == "gzip":
        raw = _gunzip(raw, current_app.config["MAX_CONTENT_LENGTH"])
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidField("body", f"not valid JSON: {exc}") from None


def _gunzip(raw: bytes, limit: int) -> bytes:
    """Decompress a gzip body, refusing one that grows past ``limit`` bytes (a gzip bomb)."""
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(raw, limit + 1)
    except zlib.error:
        raise InvalidField("body", "Content-Encoding is gzip but the body is not") from None
    if len(out) > limit:
        raise TooLarge(f"body: more than {limit} bytes once decompressed "
                       "(GUARD_MAX_CONTENT_LENGTH)", field="body")
    if not inflater.eof:
        raise InvalidField("body", "Content-Encoding is gzip but the body is cut short")
    return out


def _header_text(text: str) -> str:
    """Make ``text`` a header value that cannot fail: Latin-1 only, no line breaks."""
    # Addresses and owners come from callers and CRMs; escaped, an internationalised
    # address or a stray CR/LF shows as text instead of breaking the answer.
    return text.encode("unicode_escape").decode("ascii")


def planned_route(recipient: Recipient) -> str:
    """Say where a rerouted recipient goes, as far as is known before anything is sent."""
    target = dict(recipient.decision.reroute or {})
    channel = target.get("channel")
    if target.get("owner") and not channel:
        return f"owner {target['owner']}"
    if channel == "sms":
        return "sms (not sent yet)"
    return f"{channel or 'elsewhere'} (reported)"


def _reroute(recipient: Recipient, key) -> str:
    """Carry a rerouted recipient on its new channel when the request allows; say what happened."""
    if dict(recipient.decision.reroute or {}).get("channel") == "sms":
        return f"sms ({_send_sms_instead(recipient, key)})"
    return planned_route(recipient)


def _send_sms_instead(recipient: Recipient, key) -> str:
    text = recipient.args.get("guard_sms")
    if not text:
        return "reported: no guard_sms text"
    if not recipient.decision.person:
        return "reported: unknown person"
    conf = services().proxy
    sender = recipient.args.get("guard_sms_from") or conf.twilio_from
    if not sender:
        return "reported: no guard_sms_from or GUARD_TWILIO_FROM"
    guard = services().guard
    phones = guard.person(recipient.decision.person)["profile"].get("phones") or []
    if not phones:
        return "reported: no phone number on file"
    sms_check = {**recipient.check, "channel": "sms", "to": phones[0]}
    sms_check.pop("template", None)
    form = {"To": phones[0], "From": str(sender), "Body": str(text)}
    try:
        return twilio.send_or_hold("Messages", form, sms_check, key,
                                   message_key=recipient.decision.decision_id or uuid.uuid4().hex)
    except GuardError as exc:
        # The email part of the request stands; the SMS could not even be judged.
        return f"reported: {exc.detail}"


def answer(result: Plan, routes: list[str]) -> Answer:
    """Build SendGrid's 202 with the guard's headers; ``routes`` says where each reroute went."""
    headers = {"X-Guard-Decisions": ",".join(result.decision_ids),
               "X-Guard-Blocked": str(len(result.blocked)),
               "X-Guard-Deferred": str(len(result.deferred)),
               "X-Guard-Rerouted": str(len(result.rerouted))}
    if routes:
        headers["X-Guard-Rerouted-To"] = _header_text("; ".join(
            f"{r.email} -> {route}" for r, route in zip(result.rerouted, routes, strict=True)))
    return Answer(202, headers, "", None)


def _sending_item(result: Plan, message_key: str, key) -> Item:
    return Item(
        "sendgrid", "mail", result.forward,
        idempotency_key(message_key, "sendgrid", sorted(
            (r.index, r.field, r.email) for r in result.allowed)),
        recipients=[r.email for r in result.allowed], defaults=key.defaults,
        decision_ids=[r.decision.decision_id for r in result.allowed], key_id=key.id,
    )


def _held_items(body: Mapping, result: Plan, message_key: str, key) -> list[Item]:
    return [Item(
        "sendgrid", "mail", add_headers(
            rebuild(body, [Recipient(r.index, "to", r.address, r.check, r.args, r.decision)]),
            [r], services().guard, services().preferences, key.defaults),
        idempotency_key(message_key, "sendgrid", r.index, r.field, r.email),
        recipients=[r.email], checks=[r.check], defaults=key.defaults,
        decision_ids=[r.decision.decision_id], key_id=key.id,
        not_before=r.decision.not_before, needs_check=True,
    ) for r in result.deferred]


@bp.post("/v3/mail/send")
def mail_send() -> Response:
    """Check, split and forward a SendGrid Mail Send request."""
    key = authenticate_request("send")
    answers = services().answers
    raw, claimed, replayed = answers.arrive(key.id)
    if replayed is not None:
        return replayed.response()
    body = _read_body(raw)
    guard = services().guard
    recipients = read_recipients(body)
    validate_attempts(guard.policy, recipients, key.defaults)
    # Rows are keyed per request and recipient; a retried request never gets this far.
    message_key = uuid.uuid4().hex
    box = services().outbox
    stored: dict[str, Any] = {}

    def keep(conn, outcomes: list) -> None:
        # Runs in the checks' transaction: the outbox rows and the answer commit with the
        # decisions, and a recipient the guard cannot judge (or an answer already stored
        # under the request's Idempotency-Key) rolls back the whole request.
        # It may run again if a batch it shared failed, so it only assigns.
        result = split(body, recipients, outcomes)
        result.forward = add_headers(result.forward, result.allowed, guard,
                                     services().preferences, key.defaults)
        claim = None if result.forward is None else \
            box.start_sending_in(conn, _sending_item(result, message_key, key))
        first = answer(result, [planned_route(r) for r in result.rerouted])
        answers.remember_in(conn, claimed, first, decision_ids=result.decision_ids,
                            outbox_id=claim.id if claim else None)
        stored.update(plan=result, claim=claim, answer=first,
                      held=box.hold_all_in(conn, _held_items(body, result, message_key, key)))

    try:
        guard.check_many([r.check for r in recipients], commit=True, defaults=key.defaults,
                         then=keep)
    except idempotency.AlreadyAnswered:
        return answers.replay(claimed).response()
    result: Plan = stored["plan"]
    first = final = stored["answer"]
    claim = stored["claim"]
    outcome = delivery.deliver(claim, defer=True)[1] if claim is not None else None
    if outcome is not None and outcome.state == REJECTED:
        # SendGrid refused the message itself: the caller fixes and resends it, so
        # nothing of this request is held or rerouted (the resend would double it).
        box.withdraw(stored["held"])
        final = SENDGRID.answer(outcome, first)
    elif any(dict(r.decision.reroute or {}).get("channel") == "sms" for r in result.rerouted):
        final = answer(result, [_reroute(r, key) for r in result.rerouted])
    answers.complete(claimed, first, final)
    response = final.response()
    # The delivered send's row is settled once the caller has its answer.
    response.call_on_close(box.settle_deferred)
    return response
