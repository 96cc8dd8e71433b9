"""Read an attempt from a request: the fields every recipient shares, then the recipient."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from guard.errors import InvalidField
from guard.ingest.identity import ID_MAX, SENDER_MAX, Ref, identifier, reference
from policies.model import Attempt, parse_datetime


def read_template(policy, body: Mapping | None, defaults: Mapping | None) -> dict:
    """Merge body over defaults and validate everything but the recipient; raise InvalidField."""
    if body is not None and not isinstance(body, Mapping):
        raise InvalidField("body", "expected an object")
    merged = {k: v for k, v in (defaults or {}).items() if v not in (None, "")}
    merged.update({k: v for k, v in (body or {}).items() if v is not None})
    channel = merged.get("channel")
    if channel in (None, ""):
        raise InvalidField("channel", "required")
    if channel not in policy.channels:
        raise InvalidField("channel", f"unknown channel {channel!r} (known: "
                                      f"{', '.join(policy.channels)})")
    purpose = merged.get("purpose")
    if purpose in (None, ""):
        raise InvalidField("purpose", "required (or a default purpose on the API key)")
    if not isinstance(purpose, str) or policy.category(purpose) is None:
        raise InvalidField("purpose", f"unknown purpose {purpose!r} (known: "
                                      f"{', '.join(sorted(policy.purposes))})")
    sender = merged.get("sender")
    if sender in (None, ""):
        raise InvalidField("sender", "required (or a default sender on the API key)")
    if not isinstance(sender, str) or not policy.knows_sender(sender):
        raise InvalidField("sender", f"unknown sender {sender!r} (known: "
                                     f"{', '.join(policy.senders)})")
    # A pattern such as dealer:* matches any text, a line break included.
    merged["sender"] = _identifier("sender", sender, SENDER_MAX)
    at = merged.get("at")
    if at not in (None, ""):
        try:
            merged["at"] = parse_datetime(at)
        except (TypeError, ValueError):
            raise InvalidField("at", f"not a time: {at!r}") from None
    else:
        merged["at"] = None
    for name in ("campaign", "template", "product"):
        value = merged.get(name)
        merged[name] = _identifier(name, value, ID_MAX) if value not in (None, "") else None
    return merged


def read_attempt(policy, template: Mapping, to: Any, now: datetime) -> tuple[Ref, Attempt]:
    """Return the recipient and the attempt of ``template`` to ``to``; raise InvalidField."""
    if to in (None, ""):
        raise InvalidField("to", "required")
    try:
        target = reference(to, policy.defaults.region)
    except ValueError as exc:
        raise InvalidField("to", str(exc)) from None
    return target, Attempt(
        channel=template["channel"], to=target.value, purpose=template["purpose"],
        sender=template["sender"], at=template["at"] or now, campaign=template["campaign"],
        template=template["template"], product=template["product"])


def _identifier(name: str, value: Any, limit: int) -> str:
    """Return an attempt's identifier field as text, or raise InvalidField naming it."""
    try:
        return identifier(value, limit)
    except ValueError as exc:
        raise InvalidField(name, str(exc)) from None
