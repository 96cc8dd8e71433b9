"""The providers the guard sends through: one class each, found by an outbox row's name.

A provider builds its HTTP request from an outbox payload, with the guard's
own credentials and base URL from the settings, and reads its reply into
what the guard's caller is told. The endpoints (``sendgrid.py``,
``twilio.py``) and the worker reach a provider only through this seam.
"""

from __future__ import annotations

import base64
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import ClassVar

from guard.proxy.idempotency import Answer
from guard.proxy.settings import ProxySettings
from guard.proxy.transport import REJECTED, SENT, Outcome, Reply, UpstreamRequest


class Provider(ABC):
    """One provider: the request a payload becomes, and the answer its reply becomes."""

    name: ClassVar[str]

    @abstractmethod
    def request(self, resource: str, payload: Mapping, conf: ProxySettings) -> UpstreamRequest:
        """Build the request for ``resource`` carrying ``payload``, as the guard's account."""

    @abstractmethod
    def answer(self, outcome: Outcome, ours: Answer) -> Answer:
        """Return what the caller is told once the send ended: the provider's reply, or ``ours``."""

    def without(self, payload: Mapping, erased: Callable[[str], bool]) -> Mapping | None:
        """Return ``payload`` without the erased recipients; None when it cannot be cut apart."""
        return None


def relayed(reply: Reply, headers: Mapping[str, str]) -> Answer:
    """Pass the provider's reply on to the caller as it came, with ``headers`` added."""
    return Answer(reply.status, dict(headers), reply.body.decode("utf-8", "replace"),
                  reply.headers.get("Content-Type", "application/json"))


def custom_args(value: object) -> dict:
    """Return a Mail Send's ``custom_args`` (message or personalization) as a dict."""
    # The official spec types message-level custom_args as a string; real clients send an
    # object. Accept both, and ignore anything that is not an object.
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return dict(value) if isinstance(value, Mapping) else {}


class SendGrid(Provider):
    """SendGrid v3 Mail Send, with the guard's API key."""

    name = "sendgrid"

    def request(self, resource: str, payload: Mapping, conf: ProxySettings) -> UpstreamRequest:
        """Build the Mail Send request (the only resource) with the guard's own key."""
        return UpstreamRequest(
            "POST", f"{conf.sendgrid_url}/v3/mail/send",
            {"Authorization": f"Bearer {conf.sendgrid_api_key or ''}",
             "Content-Type": "application/json"},
            json.dumps(payload, separators=(",", ":")).encode(),
        )

    def answer(self, outcome: Outcome, ours: Answer) -> Answer:
        """Relay SendGrid's refusal; anything else keeps the guard's 202 and its headers."""
        # SendGrid answers an accepted send with an empty 202: the guard's own says what
        # became of each recipient. A refusal is about the message, which the caller fixes.
        if outcome.state != REJECTED:
            return ours
        return relayed(outcome.reply, {})

    def without(self, payload: Mapping, erased: Callable[[str], bool]) -> Mapping | None:
        """Return a Mail Send body without the erased recipients, or None if nobody is left."""
        kept = []
        for personalization in payload.get("personalizations") or ():
            if not isinstance(personalization, Mapping):
                continue
            trimmed = dict(personalization)
            for field_name in ("to", "cc", "bcc"):
                if isinstance(trimmed.get(field_name), list):
                    trimmed[field_name] = [
                        a for a in trimmed[field_name]
                        if not (isinstance(a, Mapping) and erased(str(a.get("email") or "")))]
                    if not trimmed[field_name] and field_name != "to":
                        del trimmed[field_name]
            if trimmed.get("to"):
                kept.append(trimmed)
        return {**payload, "personalizations": kept} if kept else None


class Twilio(Provider):
    """Twilio Messages and Calls, on the guard's account."""

    name = "twilio"

    def request(self, resource: str, payload: Mapping, conf: ProxySettings) -> UpstreamRequest:
        """Build the request creating a message or call (``resource``) on the guard's account."""
        sid = conf.twilio_account_sid or ""
        token = base64.b64encode(f"{sid}:{conf.twilio_auth_token or ''}".encode()).decode()
        return UpstreamRequest(
            "POST", f"{conf.twilio_url}/2010-04-01/Accounts/{sid}/{resource}.json",
            {"Authorization": f"Basic {token}",
             "Content-Type": "application/x-www-form-urlencoded"},
            payload["form"].encode(),
        )

    def answer(self, outcome: Outcome, ours: Answer) -> Answer:
        """Relay Twilio's created resource or refusal; else keep the guard's queued resource."""
        if outcome.state not in (SENT, REJECTED):
            # The outbox owns the send now, and the guard's answer names its row.
            return ours
        return relayed(outcome.reply,
                       {k: v for k, v in ours.headers.items() if k != "X-Guard-Outbox"})


SENDGRID, TWILIO = SendGrid(), Twilio()
PROVIDERS: dict[str, Provider] = {p.name: p for p in (SENDGRID, TWILIO)}


def provider(name: str) -> Provider:
    """Return the provider an outbox row names."""
    try:
        return PROVIDERS[name]
    except KeyError:
        raise ValueError(f"unknown provider {name!r}") from None
