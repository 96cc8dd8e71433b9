"""Preferred channel: the channel a person asked for wins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from policies import phrases
from policies.model import CHANNELS, Finding
from policies.rules.base import Context, Rule


@dataclass(frozen=True, kw_only=True)
class PreferredChannel(Rule):
    """Reroute an in-scope contact to the person's stated preferred channel."""

    kind: ClassVar[str] = "preferred_channel"
    default_effect: ClassVar[str] = "reroute"
    allowed_effects: ClassVar[tuple[str, ...]] = ("reroute",)

    def evaluate(self, ctx: Context) -> Finding | None:
        preferred = ctx.profile.preferred_channel
        channel = ctx.attempt.channel
        if preferred not in CHANNELS or preferred == channel:
            return None
        message = (
            f"Asked to be contacted by {phrases.channel(preferred)}; "
            f"{phrases.purposes(ctx.attempt.purpose)} go by {phrases.channel(preferred)} "
            f"instead of {phrases.channel(channel)}."
        )
        return self.finding(
            ctx, message,
            evidence=phrases.sources(ctx.profile.field_sources.get("preferred_channel")),
            reroute={"channel": preferred},
            facts={"channel": preferred},
        )
