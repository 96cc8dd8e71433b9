"""Custom: an admin's own CEL condition with an effect and a message."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from policies.cel import Condition
from policies.model import CHANNELS, Finding
from policies.rules.base import ConfigError, Context, Duration, Rule


@dataclass(frozen=True, kw_only=True)
class Custom(Rule):
    """Apply the configured effect whenever the admin's CEL condition holds."""

    kind: ClassVar[str] = "custom"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block", "reroute", "defer", "allow")

    condition: str
    reroute_to_owner: str | None = None
    reroute_to_channel: str | None = None
    defer_for: Duration | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.condition, Condition):
            try:
                object.__setattr__(self, "condition", Condition(self.condition))
            except ValueError as exc:
                raise ConfigError("condition", f"condition: {exc}") from None
        if not self.message:
            raise ConfigError("message", "message: kind custom needs a message saying "
                                         "why the rule acts")
        if self.reroute_to_channel is not None and self.reroute_to_channel not in CHANNELS:
            raise ConfigError("reroute_to_channel", f"reroute_to_channel: unknown channel "
                                                    f"{self.reroute_to_channel!r}")
        effect = self.effect or self.default_effect
        if effect == "reroute" and not (self.reroute_to_owner or self.reroute_to_channel):
            raise ConfigError("effect", "effect reroute needs reroute_to_owner or "
                                        "reroute_to_channel")
        if effect == "defer" and not self.defer_for:
            raise ConfigError("effect", "effect defer needs defer_for (e.g. 2d)")

    def evaluate(self, ctx: Context) -> Finding | None:
        if not self.condition.holds(ctx):
            return None
        effect = self.effect or self.default_effect
        kwargs: dict = {}
        if effect == "reroute":
            kwargs["reroute"] = {k: v for k, v in (("owner", self.reroute_to_owner),
                                                    ("channel", self.reroute_to_channel)) if v}
            kwargs["notify"] = self.reroute_to_owner
        if effect == "defer":
            kwargs["not_before"] = ctx.now + timedelta(seconds=self.defer_for.total_seconds())
        return self.finding(ctx, f"Condition {self.condition.source} holds.", **kwargs)
