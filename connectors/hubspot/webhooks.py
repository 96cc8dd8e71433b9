"""HubSpot webhook requests: signature v3 validation and payload parsing."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

MAX_AGE_MS = 5 * 60 * 1000  # HubSpot: refuse requests older than five minutes

# HubSpot signs the URI with these characters decoded.
_DECODE = {
    "%3A": ":", "%2F": "/", "%3F": "?", "%40": "@", "%21": "!", "%24": "$",
    "%27": "'", "%28": "(", "%29": ")", "%2A": "*", "%2C": ",", "%3B": ";",
}  # fmt: skip

# Webhook object names and the generic objectTypeId codes -> (API object type, record type).
OBJECTS = {
    "contact": ("contacts", "contact"),
    "company": ("companies", "company"),
    "deal": ("deals", "deal"),
    "ticket": ("tickets", "ticket"),
    "line_item": ("line_items", "line_item"),
}
TYPE_IDS = {"0-1": "contact", "0-2": "company", "0-3": "deal", "0-5": "ticket", "0-8": "line_item"}


def _decode_uri(uri: str) -> str:
    for encoded, char in _DECODE.items():
        uri = uri.replace(encoded, char).replace(encoded.lower(), char)
    return uri


def verify_signature(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    timestamp: str,
    signature: str,
    now: float | None = None,
) -> bool:
    """Check an ``X-HubSpot-Signature-v3`` header; stale or future timestamps fail.

    ``uri`` is the full URL HubSpot called (scheme, host, path and query);
    ``now`` is epoch seconds (default: the current time).
    """
    if not (secret and signature and timestamp):
        return False
    try:
        sent_ms = int(str(timestamp).strip())
    except ValueError:
        return False
    now_ms = int((time.time() if now is None else now) * 1000)
    if abs(now_ms - sent_ms) > MAX_AGE_MS:
        return False
    message = method.upper().encode() + _decode_uri(uri).encode() + body + str(timestamp).encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    return hmac.compare_digest(expected, signature.strip())


def sign(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """Compute the v3 signature HubSpot would send (for tests and local tools)."""
    message = method.upper().encode() + _decode_uri(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


@dataclass
class WebhookWork:
    """What a webhook payload asks for: records to fetch, retractions, merges."""

    fetch: dict[str, set[str]] = field(default_factory=dict)  # webhook object -> ids
    deletions: list[tuple[str, str]] = field(default_factory=list)  # (object, id)
    erasures: list[str] = field(default_factory=list)  # contact ids (GDPR delete)
    merges: dict[str, list[str]] = field(default_factory=dict)  # primary id -> merged ids
    echoes: int = 0


def parse_payload(payload: Iterable[Mapping], outputs: Iterable[str]) -> WebhookWork:
    """Sort a webhook payload (a list of HubSpot events) into work, oldest first."""
    own = set(outputs)
    work = WebhookWork()
    events = sorted(
        (e for e in payload if isinstance(e, Mapping)), key=lambda e: e.get("occurredAt") or 0
    )
    for event in events:
        kind, _, action = str(event.get("subscriptionType") or "").partition(".")
        if kind == "object":
            kind = TYPE_IDS.get(str(event.get("objectTypeId") or ""), "")
        if kind not in OBJECTS or event.get("objectId") is None:
            continue
        object_id = str(event["objectId"])
        if action == "propertyChange" and event.get("propertyName") in own:
            work.echoes += 1
            continue
        if action == "deletion":
            work.deletions.append((kind, object_id))
            work.fetch.get(kind, set()).discard(object_id)
        elif action == "privacyDeletion" and kind == "contact":
            work.erasures.append(object_id)
            work.fetch.get(kind, set()).discard(object_id)
        elif action == "merge":
            primary = str(event.get("primaryObjectId") or event.get("objectId"))
            merged = [str(i) for i in event.get("mergedObjectIds") or () if str(i) != primary]
            work.merges.setdefault(primary, []).extend(merged)
            work.fetch.setdefault(kind, set()).add(primary)
        elif action in ("creation", "propertyChange", "restore", "associationChange"):
            work.fetch.setdefault(kind, set()).add(object_id)
    return work
