"""Duplicate content: the same campaign or template reaches a person once per window."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from policies import phrases
from policies.model import Finding
from policies.rules.base import ConfigError, Context, Duration, Rule


@dataclass(frozen=True, kw_only=True)
class DuplicateContent(Rule):
    """Block a campaign or template the person already got within ``window``, from anyone."""

    kind: ClassVar[str] = "duplicate_content"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block",)

    window: Duration = Duration(days=30)

    def __post_init__(self) -> None:
        if self.window.total_seconds() <= 0:
            raise ConfigError("window", "window: must be longer than 0")

    def evaluate(self, ctx: Context) -> Finding | None:
        attempt = ctx.attempt
        if (not attempt.campaign and not attempt.template) or not ctx.contacts:
            return None
        since = ctx.now - self.window
        for label, value, field in (("Campaign", attempt.campaign, "campaign"),
                                    ("Template", attempt.template, "template")):
            if not value:
                continue
            earlier = [e for e in ctx.contacts
                       if getattr(e, field) == value and since < e.at <= ctx.now]
            if not earlier:
                continue
            last = max(earlier, key=lambda e: e.at)
            message = (
                f"{label} {value} already reached this person on {phrases.day(last.at)} "
                f"from {last.sender}; the same {field} goes out once per {self.window.text}, "
                f"whoever sends it."
            )
            return self.finding(
                ctx, message, evidence=phrases.sources(last),
                facts={field: value, "date": phrases.day(last.at), "sender": last.sender,
                       "window": self.window.text},
            )
        return None
