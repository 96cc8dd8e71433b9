"""Builders for rule-kind tests: a small policy stand-in, profiles, attempts, contexts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from policies.model import DEFAULT_PURPOSES, Attempt, Evidence, LedgerEntry, Profile
from policies.rules.base import Context, Scope
from tests.conftest import NOW


@dataclass(frozen=True)
class Defaults:
    timezone: str = "Europe/Berlin"
    region: str | None = "DE"
    unknown_recipient: str = "allow"


@dataclass(frozen=True)
class StandInPolicy:
    """The attributes of a Policy that rule kinds read."""

    purposes: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_PURPOSES))
    ownership: Mapping[str, str] = field(default_factory=lambda: {
        "prospect": "oem", "opportunity": "sales", "customer": "person.owner"})
    defaults: Defaults = Defaults()

    def category(self, purpose: str) -> str | None:
        return self.purposes.get(purpose)


POLICY = StandInPolicy()


def at(text: str) -> datetime:
    """Parse an ISO time; a bare date is midnight UTC."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def src(type_: str, id_: str, system: str = "salesforce") -> Evidence:
    return Evidence(system, type_, id_)


def person(**fields) -> Profile:
    fields.setdefault("id", "per_anna")
    fields.setdefault("emails", ("anna@example.com",))
    return Profile(**fields)


def attempt(purpose: str = "price_offer", channel: str = "email", sender: str = "oem",
            when: datetime = NOW, to: str | None = None, **fields) -> Attempt:
    if to is None:
        to = "+491701234567" if channel in ("sms", "call") else "anna@example.com"
    return Attempt(channel=channel, to=to, purpose=purpose, sender=sender, at=when, **fields)


def touch(when: str | datetime, purpose: str = "newsletter", channel: str = "email",
          sender: str = "oem", verdict: str = "allow", ref: str | None = None,
          **fields) -> LedgerEntry:
    when = at(when) if isinstance(when, str) else when
    source = src("Task", ref, "hubspot") if ref else None
    return LedgerEntry(at=when, channel=channel, purpose=purpose, sender=sender,
                       verdict=verdict, source=source, **fields)


def context(att: Attempt | None = None, profile: Profile | None = None, ledger=(),
            policy=POLICY, now: datetime = NOW, campaigns=None) -> Context:
    return Context(attempt=att or attempt(), profile=profile or person(), ledger=tuple(ledger),
                   policy=policy, now=now, campaigns=campaigns or {})


def run(rule, ctx: Context):
    """Evaluate a rule the way decide() does: only when it applies."""
    return rule.evaluate(ctx) if rule.applies(ctx) else None


def scope(**parts) -> Scope:
    return Scope(**{k: (tuple(v) if k == "senders" else frozenset(v)) for k, v in parts.items()})
