"""HubSpot webhooks: ``POST /hooks/hubspot`` stores each signed delivery once, the worker
makes events of it.

The endpoint only verifies and stores, so HubSpot (which gives up on slow
endpoints) is answered at once and a crash cannot lose a change.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, request
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from connectors.base import Connector
from connectors.hubspot.webhooks import MAX_AGE_MS
from guard.crm.settings import CrmSettings
from guard.crm.sync import connector_errors
from guard.errors import GuardError, InvalidField, TooLarge, Unauthorized
from guard.http.openapi import PROBLEMS, problem, register_path
from guard.services import services
from guard.store.engine import read_only
from guard.store.tables import hook_inbox
from guard.store.util import utc_now

log = logging.getLogger(__name__)
# A webhook delivery that keeps failing is set aside after this many tries; the
# scheduled sync reads the same changes anyway.
INBOX_MAX_ATTEMPTS = 10

hooks = Blueprint("hooks", __name__)


class WebhooksNotConfigured(GuardError):
    """The webhook endpoint has no secret to check signatures with."""

    status = 503
    title = "Service Unavailable"


_SIGNATURE = "X-HubSpot-Signature-v3"
_TIMESTAMP = "X-HubSpot-Request-Timestamp"
# A delivery once stored is known by its signature's hash: a replay is acknowledged and
# dropped (the unique index decides, also between replicas).
_STORE_DELIVERY = {
    name: insert(hook_inbox).on_conflict_do_nothing(index_elements=["signature"])
    for name, insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}


@hooks.post("/hooks/hubspot")
def hubspot_hook():
    """Verify a HubSpot webhook delivery (signature v3), store it once, acknowledge at once."""
    from connectors.hubspot import verify_signature

    conf = services().crm
    if not conf.webhook_secret:
        raise WebhooksNotConfigured(
            "GUARD_HUBSPOT_WEBHOOK_SECRET: not set; HubSpot webhooks need the app's client "
            "secret to verify signatures", field="GUARD_HUBSPOT_WEBHOOK_SECRET")
    # What needs no body is checked before the body is read: an unsigned, stale or
    # oversized request costs no more than its headers.
    signature = request.headers.get(_SIGNATURE, "").strip()
    stamp = request.headers.get(_TIMESTAMP, "")
    if not signature or not fresh(stamp):
        raise Unauthorized(f"{_SIGNATURE}: signature missing, or {_TIMESTAMP} missing or "
                           "more than 5 minutes away", field=_SIGNATURE)
    body, uri = signed_content(conf, "a HubSpot delivery")
    if not verify_signature(conf.webhook_secret, request.method, uri, body, stamp, signature):
        raise Unauthorized(f"{_SIGNATURE}: signature invalid or request older than "
                           "5 minutes", field=_SIGNATURE)
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, list):
        raise InvalidField("body", "expected a JSON array of HubSpot webhook events")
    engine = services().engine
    with engine.begin() as conn:
        conn.execute(_STORE_DELIVERY[engine.dialect.name].values(
            system="hubspot", payload=payload, received_at=utc_now(), attempts=0,
            signature=hashlib.sha256(f"v3:{signature}".encode()).hexdigest()))
    return "", 204


def fresh(stamp: str) -> bool:
    """Say whether HubSpot's millisecond timestamp header is within five minutes of now."""
    try:
        sent = int(stamp.strip())
    except ValueError:
        return False
    return abs(time.time() * 1000 - sent) <= MAX_AGE_MS


def signed_content(conf: CrmSettings, what: str) -> tuple[bytes, str]:
    """Read a HubSpot request's body, within its size limit, and the URL HubSpot signed."""
    limit = conf.webhook_max_bytes
    too_large = TooLarge(f"body: {what} is at most {limit} bytes "
                         "(GUARD_HUBSPOT_WEBHOOK_MAX_BYTES)", field="body")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise too_large
    # HubSpot signs the URL it called; behind a proxy that is the public one.
    uri = conf.public_url + request.full_path.rstrip("?") if conf.public_url else request.url
    return body, uri


register_path("/hooks/hubspot", {"post": {
    "operationId": "hubspotWebhook",
    "summary": "Receive HubSpot webhook deliveries (contact changes, deletions, merges).",
    "description": "Signed with HubSpot's signature v3 (`X-HubSpot-Signature-v3`, "
                   "`X-HubSpot-Request-Timestamp`; older than 5 minutes is refused, before "
                   "the body is read, as is a body over `GUARD_HUBSPOT_WEBHOOK_MAX_BYTES`). "
                   "The body is stored at once and turned into events by `guard worker`; a "
                   "delivery replayed with the same signature is acknowledged and dropped.",
    "parameters": [
        {"name": "X-HubSpot-Signature-v3", "in": "header", "required": True,
         "schema": {"type": "string"}},
        {"name": "X-HubSpot-Request-Timestamp", "in": "header", "required": True,
         "schema": {"type": "string"}},
    ],
    "requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "array", "items": {"type": "object"}}}}},
    "responses": {
        "204": {"description": "Stored; processed within one worker cycle."},
        "400": PROBLEMS["400"],
        "401": problem("Signature missing, invalid or stale."),
        "413": problem("Body over GUARD_HUBSPOT_WEBHOOK_MAX_BYTES."),
        "503": problem("GUARD_HUBSPOT_WEBHOOK_SECRET is not set."),
    },
}})


def process_inbox(guard, connector: Connector, limit: int = 100) -> int:
    """Turn stored webhook deliveries into events; return how many were processed.

    A delivery whose fetch fails stays in the inbox for the next cycle (until
    INBOX_MAX_ATTEMPTS); events the store rejects are noted on the row.
    """
    with read_only(guard.engine.connect()) as conn:
        rows = conn.execute(
            sa.select(hook_inbox.c.id, hook_inbox.c.payload, hook_inbox.c.attempts)
            .where(hook_inbox.c.system == connector.name, hook_inbox.c.processed_at.is_(None))
            .order_by(hook_inbox.c.id).limit(limit)
        ).all()
    done = 0
    for row_id, payload, attempts in rows:
        attempts = (attempts or 0) + 1
        try:
            result = guard.ingest(connector.webhook_events(payload))
        except connector_errors() as exc:
            retriable = getattr(exc, "retriable", True) and attempts < INBOX_MAX_ATTEMPTS
            log.warning("%s webhook delivery %s (try %d) failed: %s", connector.name, row_id,
                        attempts, exc)
            values: dict[str, Any] = {"error": str(exc)[:2000], "attempts": attempts}
            if not retriable:
                values["processed_at"] = utc_now()
            with guard.engine.begin() as conn:
                conn.execute(hook_inbox.update().where(hook_inbox.c.id == row_id)
                             .values(**values))
            continue
        problems = "; ".join(f"{(r.get('source') or {}).get('id')}: {r['detail']}"
                             for r in result["rejected"])
        if problems:
            log.warning("%s webhook delivery %s: rejected %s", connector.name, row_id, problems)
        with guard.engine.begin() as conn:
            conn.execute(hook_inbox.update().where(hook_inbox.c.id == row_id).values(
                processed_at=utc_now(), attempts=attempts,
                error=f"rejected: {problems}"[:2000] if problems else None))
        done += 1
    return done
