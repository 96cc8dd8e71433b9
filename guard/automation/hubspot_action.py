"""``POST /hooks/hubspot/action``: the "Contact Guard check" custom workflow action.

HubSpot sends, per enrolled contact (custom-action reference, "Execution"):
``{"callbackId", "origin": {"portalId", …}, "object": {"objectId",
"objectType"}, "inputFields": {…}}``, signed with the app's client secret.
The answer is ``{"outputFields": {…}}``, on which the workflow branches. A
deferred contact is answered ``hs_execution_state: BLOCK`` with an
``hs_expiration_duration`` (ISO 8601); the worker checks it again when its
time comes and completes the callback (``hubspot_waits``). A bad input field
is ``hs_execution_state: FAIL_CONTINUE`` with the reason, shown in the
workflow's history. HubSpot retries an execution with the same
``callbackId``: it gets the stored answer and is decided once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, jsonify, request
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from connectors.hubspot import verify_signature
from connectors.hubspot.workflow_action import ACTION_PATH, INVALID_INPUT, verify_signature_v2
from guard.automation import outcome, via
from guard.crm.settings import CrmSettings
from guard.crm.webhooks import WebhooksNotConfigured, fresh, signed_content
from guard.errors import InvalidField, Unauthorized
from guard.http.openapi import PROBLEMS, problem, register_path
from guard.services import services
from guard.store.engine import read_only
from guard.store.tables import ANSWERED, WAITING, hubspot_actions, ledger
from policies.model import Decision

hooks = Blueprint("hubspot_action", __name__)

V3 = "X-HubSpot-Signature-v3"
TIMESTAMP = "X-HubSpot-Request-Timestamp"
V2 = "X-HubSpot-Signature"
VERSION = "X-HubSpot-Signature-Version"
# The inputs of the action, named as in POST /v1/check.
FIELDS = ("channel", "purpose", "sender", "campaign", "template", "product")
# HubSpot holds a blocked execution until its expiration; the guard asks for the deferral's
# length and this much more, so the worker's completion lands before HubSpot gives up.
GRACE = timedelta(hours=1)
_STORE = {
    name: insert(hubspot_actions).on_conflict_do_nothing(index_elements=["callback_id"])
    for name, insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}


@hooks.post(ACTION_PATH)
def hubspot_action():
    """Decide for the contact a HubSpot workflow enrolled; answer the workflow's outputs."""
    conf = services().crm
    if not conf.webhook_secret:
        raise WebhooksNotConfigured(
            "GUARD_HUBSPOT_WEBHOOK_SECRET: not set; HubSpot workflow actions need the app's "
            "client secret to verify signatures", field="GUARD_HUBSPOT_WEBHOOK_SECRET")
    body = _read_signed(conf)
    callback_id, portal_id, contact_id, inputs = _envelope(body)
    engine = services().engine
    stored = _stored_answer(engine, callback_id)
    if stored is not None:
        return jsonify(stored)
    return jsonify(_decide(callback_id, portal_id, contact_id, inputs))


def _read_signed(conf: CrmSettings) -> bytes:
    """Read the body of a request signed by HubSpot (v3, else v2); raise Unauthorized."""
    v3 = request.headers.get(V3, "").strip()
    v2 = request.headers.get(V2, "").strip()
    stamp = request.headers.get(TIMESTAMP, "")
    # What needs no body is judged before the body is read.
    if v3 and not fresh(stamp):
        raise Unauthorized(f"{TIMESTAMP}: missing or more than 5 minutes away", field=TIMESTAMP)
    if not v3 and not (v2 and request.headers.get(VERSION, "v2").strip().lower() == "v2"):
        raise Unauthorized(f"{V3} or {V2} (v2): no HubSpot signature", field=V3)
    body, uri = signed_content(conf, "a HubSpot action request")
    if v3:
        if not verify_signature(conf.webhook_secret, request.method, uri, body, stamp, v3):
            raise Unauthorized(f"{V3}: signature invalid", field=V3)
    elif not verify_signature_v2(conf.webhook_secret, request.method, uri, body, v2):
        raise Unauthorized(f"{V2}: signature invalid", field=V2)
    return body


def _envelope(body: bytes) -> tuple[str, str | None, str, dict]:
    """Return callbackId, portal id, contact id and input fields; raise InvalidField."""
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, Mapping):
        raise InvalidField("body", "expected a HubSpot workflow action request (a JSON object)")
    callback_id = payload.get("callbackId")
    if not isinstance(callback_id, str) or not 0 < len(callback_id) <= 255:
        raise InvalidField("callbackId", "expected text of 1 to 255 characters")
    target = payload.get("object")
    if not isinstance(target, Mapping) or str(target.get("objectType", "")).upper() != "CONTACT":
        raise InvalidField("object.objectType", "the action runs on contacts (CONTACT)")
    contact_id = target.get("objectId")
    if isinstance(contact_id, bool) or not isinstance(contact_id, int | str) \
            or str(contact_id).strip() == "":
        raise InvalidField("object.objectId", "expected the contact's HubSpot id")
    inputs = payload.get("inputFields") or {}
    if not isinstance(inputs, Mapping):
        raise InvalidField("inputFields", "expected an object")
    portal = (payload.get("origin") or {}).get("portalId") \
        if isinstance(payload.get("origin"), Mapping) else None
    return callback_id, None if portal is None else str(portal), str(contact_id), dict(inputs)


def _stored_answer(engine: sa.Engine, callback_id: str) -> dict | None:
    with read_only(engine.connect()) as conn:
        return conn.execute(sa.select(hubspot_actions.c.answer).where(
            hubspot_actions.c.callback_id == callback_id)).scalar_one_or_none()


def read_inputs(inputs: Mapping[str, Any], contact_id: str) -> tuple[dict, bool]:
    """Return the check body and ``commit`` of an execution's inputs; raise InvalidField."""
    check: dict[str, Any] = {"to": {"hubspot": contact_id}}
    for name in FIELDS:
        value = inputs.get(name)
        if value in (None, ""):
            continue
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise InvalidField(name, f"expected text, got {value!r}")
        check[name] = str(value).strip()
    commit = inputs.get("commit")
    if commit in (None, ""):
        return check, True
    text = str(commit).strip().lower()
    if text not in ("true", "false"):
        raise InvalidField("commit", f"expected true or false, got {commit!r}")
    return check, text == "true"


def failure(exc: InvalidField) -> dict:
    """Answer a bad input field: the workflow goes on, its history says why."""
    return {"outputFields": {"hs_execution_state": "FAIL_CONTINUE", "error": INVALID_INPUT,
                             "reason": exc.detail, "verdict": ""}}


def duration(length: timedelta) -> str:
    """Format a positive length as an ISO 8601 duration in whole minutes (``P2DT3H5M``)."""
    minutes = max(1, -(-int(length.total_seconds()) // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    clock = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return f"P{days}D" + (f"T{clock}" if clock else "") if days else f"PT{clock}"


def answer_for(decision: Decision, now: datetime) -> tuple[dict, datetime | None]:
    """Return the answer to a decision, and when to check again if HubSpot is to wait."""
    if decision.verdict == "defer" and decision.not_before is not None \
            and decision.not_before > now:
        wait = decision.not_before - now + GRACE
        return {"outputFields": {"hs_execution_state": "BLOCK",
                                 "hs_expiration_duration": duration(wait)}}, now + wait
    return {"outputFields": outcome.fields(decision)}, None


def _decide(callback_id: str, portal_id: str | None, contact_id: str, inputs: dict) -> dict:
    """Decide the execution and store its answer in the decision's transaction."""
    guard = services().guard
    now = guard.clock()
    row = {"callback_id": callback_id, "portal_id": portal_id, "created_at": now,
           "updated_at": now, "tries": 0}
    try:
        check, commit = read_inputs(inputs, contact_id)
    except InvalidField as exc:
        return _store_alone(guard.engine, {**row, "state": ANSWERED, "answer": failure(exc)})
    kept: dict[str, Any] = {}

    def store(conn: Connection, outcomes: list) -> None:
        # In the checks' transaction: the answer is stored with its decision or not at all.
        [decided] = outcomes
        if isinstance(decided, InvalidField):
            values = {**row, "state": ANSWERED, "answer": failure(decided)}
        else:
            answer, expires = answer_for(decided, now)
            values = {**row, "answer": answer, "decision_id": decided.decision_id,
                      "state": ANSWERED if expires is None else WAITING}
            if expires is not None:
                # Stored in UTC: SQLite keeps a time without its offset.
                values.update(check={**check, "commit": commit},
                              due_at=decided.not_before.astimezone(UTC),
                              expires_at=expires.astimezone(UTC))
        if conn.execute(_STORE[conn.dialect.name].values(**values)).rowcount:
            kept["answer"] = values["answer"]
        elif not isinstance(decided, InvalidField):
            # A retry of this callbackId got there first: its decision is the one counted.
            conn.execute(sa.delete(ledger).where(ledger.c.id == decided.decision_id))

    guard.check_many([check], commit=commit, then=store, via=via.HUBSPOT_WORKFLOW)
    return kept.get("answer") or _stored_answer(guard.engine, callback_id)


def _store_alone(engine: sa.Engine, values: dict) -> dict:
    """Store an answer no decision goes with; return the one stored first for its callbackId."""
    with engine.begin() as conn:
        stored = conn.execute(_STORE[engine.dialect.name].values(**values)).rowcount
    return values["answer"] if stored else _stored_answer(engine, values["callback_id"])


register_path(ACTION_PATH, {"post": {
    "operationId": "hubspotWorkflowAction",
    "summary": "Decide for a contact a HubSpot workflow enrolled (custom workflow action).",
    "description": "Signed by HubSpot with the app's client secret "
                   "(`GUARD_HUBSPOT_WEBHOOK_SECRET`): signature v3 (`X-HubSpot-Signature-v3`, "
                   "`X-HubSpot-Request-Timestamp`, at most 5 minutes old), else v2 "
                   "(`X-HubSpot-Signature`). The contact is found by its HubSpot id; input "
                   "fields are named as in `/v1/check`. A deferred contact is answered "
                   "`hs_execution_state: BLOCK` and its callback completed by `guard worker` "
                   "once checked again; a bad input is `FAIL_CONTINUE` with the reason. An "
                   "execution retried with the same `callbackId` gets the same answer and is "
                   "decided once.",
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["callbackId", "object"],
        "properties": {
            "callbackId": {"type": "string"},
            "origin": {"type": "object"},
            "object": {"type": "object", "properties": {
                "objectId": {"type": "integer"}, "objectType": {"type": "string"}}},
            "inputFields": {"type": "object", "additionalProperties": {"type": "string"}},
        }}}}},
    "responses": {
        "200": {"description": "`{\"outputFields\": {\"verdict\", \"reason\", \"rules\", "
                               "\"not_before\", \"reroute_owner\", \"reroute_channel\", "
                               "\"decision_id\"}}`, or `hs_execution_state` BLOCK / "
                               "FAIL_CONTINUE.",
                "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"outputFields": {
                        "type": "object", "additionalProperties": {"type": "string"}}}}}}},
        "400": PROBLEMS["400"],
        "401": problem("Signature missing, invalid or stale; nothing was decided."),
        "413": problem("Body over GUARD_HUBSPOT_WEBHOOK_MAX_BYTES."),
        "503": problem("GUARD_HUBSPOT_WEBHOOK_SECRET is not set."),
    },
}})
