"""Frequency cap: at most so many contacts per window, whoever sends them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from policies import phrases
from policies.model import Finding, LedgerEntry
from policies.rules.base import ConfigError, Context, Duration, Rule


@dataclass(frozen=True, kw_only=True)
class FrequencyCap(Rule):
    """Block or defer a contact once the person had ``max`` in-scope contacts in ``window``."""

    kind: ClassVar[str] = "frequency_cap"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block", "defer")

    max: int = 3
    window: Duration = Duration(days=30)
    per_sender: bool = False

    def __post_init__(self) -> None:
        if self.max < 1:
            raise ConfigError("max", "max: must be at least 1")
        if self.window.total_seconds() <= 0:
            raise ConfigError("window", "window: must be longer than 0")

    def counts(self, entry: LedgerEntry, ctx: Context) -> bool:
        """Say whether a past contact counts toward this cap."""
        category = ctx.policy.category(entry.purpose)
        # Required messages (receipts, recalls) are never "too many".
        if category == "required":
            return False
        scope = self.scope
        if (scope.purposes or scope.categories) and not (
            entry.purpose in scope.purposes or category in scope.categories
        ):
            return False
        if scope.channels and entry.channel not in scope.channels:
            return False
        # The cap counts every sender and system, unless it is per sender.
        return not self.per_sender or entry.sender == ctx.attempt.sender

    def evaluate(self, ctx: Context) -> Finding | None:
        contacts = ctx.contacts
        if len(contacts) < self.max:
            return None  # fewer contacts at all than the cap allows: nothing to count
        since = ctx.now - self.window
        counted = sorted(
            (e for e in contacts if since < e.at <= ctx.now and self.counts(e, ctx)),
            key=lambda e: e.at,
        )
        if len(counted) < self.max:
            return None
        # The attempt fits once enough of the oldest contacts have left the window.
        frees_at = counted[len(counted) - self.max].at + self.window
        latest = counted[-1]
        who = f" from {ctx.attempt.sender}" if self.per_sender else ""
        message = (
            f"Already had {len(counted)} such contacts{who} in the last {self.window.text} "
            f"(latest on {phrases.day(latest.at)} by {latest.sender}); at most {self.max} "
            f"per {self.window.text}, so the next one fits from {phrases.day(frees_at)}."
        )
        facts = {"count": len(counted), "max": self.max, "window": self.window.text,
                 "until": phrases.day(frees_at)}
        evidence = phrases.sources(*counted)
        if self.effect == "defer":
            return self.finding(ctx, message, evidence=evidence, not_before=frees_at,
                                facts=facts)
        return self.finding(ctx, message, evidence=evidence, facts=facts)
