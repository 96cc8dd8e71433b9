"""Marshmallow schemas for every request body and response of the HTTP API (SPEC §4–§6).

Request schemas validate shapes and types; what only the policy or the store
can judge (a known purpose, a parseable recipient) the façade checks and
reports with ``InvalidField``. Response schemas document what the views
return and are checked against real responses in the tests.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from flask import Request
from marshmallow import Schema, fields, validate
from werkzeug.exceptions import UnsupportedMediaType

from guard.errors import InvalidField
from guard.http.keys import SCOPES
from policies.model import CHANNELS, VERDICTS, parse_datetime

_REFERENCE_KEYS = ("salesforce", "hubspot", "person", "system", "id", "email", "phone")


class Recipient(fields.Field):
    """An email address, a phone number, or a CRM reference such as ``{"salesforce": "003…"}``."""

    default_error_messages = {
        "invalid": "Expected an email address, a phone number or a reference such as "
                   '{{"salesforce": "003…"}}.',
        "empty": "Must not be empty.",
        "long": "Longer than 320 characters.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                raise self.make_error("empty")
            if len(value) > 320:
                raise self.make_error("long")
            return value
        if (
            isinstance(value, Mapping)
            and 0 < len(value) <= 2
            and all(k in _REFERENCE_KEYS for k in value)
            and all(isinstance(v, str) and v.strip() and len(v) <= 320 for v in value.values())
        ):
            return dict(value)
        raise self.make_error("invalid")


class Timestamp(fields.String):
    """An ISO 8601 time; a time without offset is taken as UTC."""

    default_error_messages = {"time": "Not a time: {input!r} (write e.g. 2026-11-23T10:00:00Z)."}

    def __init__(self, **kwargs: Any):
        super().__init__(metadata={"format": "date-time"}, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_datetime(text).isoformat()
        except (ValueError, TypeError, OverflowError, AttributeError):
            # AttributeError: an empty text parses to no time at all.
            raise self.make_error("time", input=text) from None


def _name(**kwargs: Any) -> fields.String:
    return fields.String(validate=validate.Length(min=1, max=200), **kwargs)


class AttemptSchema(Schema):
    """What to send, why and from whom (a check without the recipient)."""

    channel = fields.String(required=True, metadata={"enum": list(CHANNELS)})
    purpose = _name(metadata={"description": "Defaults to the API key's purpose."})
    sender = _name(metadata={"description": "Defaults to the API key's sender."})
    campaign = _name(allow_none=True)
    template = _name(allow_none=True)
    product = _name(allow_none=True)
    at = Timestamp(allow_none=True)


class CheckSchema(AttemptSchema):
    """``POST /v1/check``: one attempt for one recipient."""

    to = Recipient(required=True, metadata={
        "description": "Email, phone (E.164 or national), or {\"salesforce\"|\"hubspot\"|"
                       "\"person\": id}.",
        "oneOf": [{"type": "string"}, {"type": "object", "additionalProperties":
                                       {"type": "string"}}],
    })
    commit = fields.Boolean(load_default=True, metadata={
        "description": "Record an allowed attempt in the ledger (false: dry run)."})


class ScreenSchema(Schema):
    """``POST /v1/screen``: one attempt template for many recipients."""

    attempt = fields.Nested(AttemptSchema, required=True)
    recipients = fields.List(Recipient(), required=True)
    commit = fields.Boolean(load_default=False)


class EventsSchema(Schema):
    """``POST /v1/events``: a batch of events (SPEC §6)."""

    events = fields.List(fields.Dict(), required=True, metadata={
        "description": "Events with a type and a source {system, id}; see SPEC §6."})


def _allow_list(what: str, example: str) -> fields.List:
    return fields.List(fields.String(), allow_none=True, validate=validate.Length(max=100),
                       metadata={"description": f"Limit the key to these {what}: names or "
                                                f"patterns such as {example!r}; a request "
                                                "outside them is a 403. Leave out (or null) "
                                                "for no limit."})


class KeyCreateSchema(Schema):
    """``POST /v1/keys``."""

    name = _name(required=True)
    scopes = fields.List(
        fields.String(validate=validate.OneOf(SCOPES)), required=True,
        validate=validate.Length(min=1),
    )
    sender = _name(allow_none=True, metadata={
        "description": "Default sender; must lie within `senders` when both are given."})
    purpose = _name(allow_none=True, metadata={
        "description": "Default purpose; must lie within `purposes` when both are given."})
    senders = _allow_list("senders", "dealer:*")
    purposes = _allow_list("purposes", "service_reminder")


class KeyCreatedSchema(Schema):
    """The new key; ``key`` is shown this once and stored only as a hash."""

    id = fields.String(required=True)
    key = fields.String(required=True)
    name = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True)
    sender = fields.String(allow_none=True)
    purpose = fields.String(allow_none=True)
    senders = fields.List(fields.String(), allow_none=True)
    purposes = fields.List(fields.String(), allow_none=True)


class KeySchema(Schema):
    """A stored key: its settings and whether it was revoked, never its secret or hash."""

    id = fields.String(required=True)
    name = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True)
    sender = fields.String(required=True, allow_none=True)
    purpose = fields.String(required=True, allow_none=True)
    senders = fields.List(fields.String(), required=True, allow_none=True,
                          metadata={"description": "Allow-list; null: no limit."})
    purposes = fields.List(fields.String(), required=True, allow_none=True,
                           metadata={"description": "Allow-list; null: no limit."})
    created_at = fields.String(required=True, metadata={"format": "date-time"})
    revoked_at = fields.String(required=True, allow_none=True,
                               metadata={"format": "date-time"})


class KeyListSchema(Schema):
    keys = fields.List(fields.Nested(KeySchema), required=True)


class EvidenceSchema(Schema):
    system = fields.String(required=True)
    type = fields.String(required=True)
    id = fields.String(required=True)


class ReasonSchema(Schema):
    rule = fields.String(required=True)
    kind = fields.String(required=True)
    effect = fields.String(required=True, validate=validate.OneOf(VERDICTS))
    message = fields.String(required=True)
    evidence = fields.List(fields.Nested(EvidenceSchema), required=True)


class NoticeSchema(Schema):
    owner = fields.String(required=True)
    rule = fields.String(required=True)
    message = fields.String(required=True)


class DecisionSchema(Schema):
    """A decision (SPEC §4)."""

    decision_id = fields.String(required=True, allow_none=True)
    verdict = fields.String(required=True, validate=validate.OneOf(VERDICTS))
    person = fields.String(required=True, allow_none=True)
    reasons = fields.List(fields.Nested(ReasonSchema), required=True)
    reroute = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True,
                          required=True)
    not_before = fields.String(allow_none=True, required=True, metadata={"format": "date-time"})
    monitored = fields.List(fields.Nested(ReasonSchema), required=True)
    policy_version = fields.String(required=True)
    notify = fields.List(fields.Nested(NoticeSchema))


class RecordedDecisionSchema(DecisionSchema):
    """A decision as recorded: the SPEC §4 shape plus the attempt and when it was made."""

    attempt = fields.Dict(required=True)
    at = fields.String(metadata={"format": "date-time"})
    via = fields.String(allow_none=True, metadata={
        "description": "The integration the check came through (hubspot_workflow, "
                       "sfmc_journey, salesforce_flow, or a caller's X-Guard-Via); null for a "
                       "plain API call or the proxy."})

    class Meta:
        unknown = "include"


class RejectionSchema(Schema):
    index = fields.Integer(required=True)
    source = fields.Raw(allow_none=True)
    detail = fields.String(required=True)


class EventsResultSchema(Schema):
    accepted = fields.Integer(required=True)
    rejected = fields.List(fields.Nested(RejectionSchema), required=True)


class ScreenResultSchema(Schema):
    to = fields.Raw(required=True)
    verdict = fields.String(required=True, allow_none=True,
                            validate=validate.OneOf(VERDICTS))
    rules = fields.List(fields.String(), required=True)
    decision_id = fields.String(required=True, allow_none=True)
    error = fields.String(metadata={
        "description": "Why this recipient could not be checked (then verdict is null)."})


class ScreenSummarySchema(Schema):
    allow = fields.Integer(required=True)
    block = fields.Integer(required=True)
    reroute = fields.Integer(required=True)
    defer = fields.Integer(required=True)
    invalid = fields.Integer(required=True, metadata={
        "description": "Recipients that could not be checked (unparseable)."})


class ScreenResponseSchema(Schema):
    results = fields.List(fields.Nested(ScreenResultSchema), required=True)
    summary = fields.Nested(ScreenSummarySchema, required=True)


class FlagsSchema(Schema):
    status = fields.String(required=True)
    flags = fields.List(fields.String(), required=True)
    updated = fields.String(metadata={"format": "date-time"})


class PersonSchema(Schema):
    """A person's merged profile, current flags, recent ledger and owner tasks."""

    id = fields.String(required=True)
    profile = fields.Dict(required=True)
    flags = fields.Nested(FlagsSchema, required=True)
    erased = fields.Boolean()
    ledger = fields.List(fields.Dict(), required=True)
    tasks = fields.List(fields.Dict(), required=True)

    class Meta:
        unknown = "include"


class HealthSchema(Schema):
    status = fields.String(required=True, validate=validate.OneOf(("ok", "degraded")))
    store = fields.Dict(required=True)
    policy = fields.Dict(required=True)


class ProblemSchema(Schema):
    """An error (RFC 9457); ``detail`` names the offending field."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    field = fields.String()
    errors = fields.Dict(keys=fields.String(), values=fields.List(fields.String()))


def is_json(request: Request) -> bool:
    """Say whether the request body is JSON (``application/json`` or ``…+json``)."""
    mimetype = request.mimetype or ""
    return mimetype == "application/json" or mimetype.endswith("+json")


def load_body(request: Request, schema: Schema) -> dict:
    """Read a JSON request body and validate it; raise 415, InvalidField or ValidationError."""
    if not is_json(request):
        raise UnsupportedMediaType(
            f"Content-Type: expected application/json, got {request.mimetype or 'nothing'}"
        )
    raw = request.get_data(cache=False)
    try:
        data = _json_loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidField("body", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidField("body", f"expected a JSON object, got {type(data).__name__}")
    if _NUL.search(raw):
        # PostgreSQL text cannot hold NUL, and no address, id or name needs one.
        raise InvalidField(_nul_path(data) or "body", "contains a NUL character (\\u0000)")
    return schema.load(data)


# A JSON \u0000 escape (not an escaped backslash followed by "u0000").
_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def _nul_path(value: Any, path: str = "") -> str | None:
    """Name the first field whose key or text holds a NUL character."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    items = value.items() if isinstance(value, dict) else \
        enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        here = f"{path}.{key}" if path else str(key)
        if isinstance(key, str) and "\x00" in key:
            return here
        found = _nul_path(item, here)
        if found:
            return found
    return None


def _json_loads(raw: bytes) -> Any:
    def _reject_constant(name: str) -> Any:
        raise ValueError(f"{name} is not JSON")

    return json.loads(raw, parse_constant=_reject_constant)

