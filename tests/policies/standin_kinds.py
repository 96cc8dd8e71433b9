"""Small rule kinds for engine tests, so they do not depend on the real kinds' logic."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from policies.model import parse_datetime
from policies.rules.base import ConfigError, Context, Duration, Rule


@dataclass(frozen=True, kw_only=True)
class Fixed(Rule):
    """Find the configured effect every time it applies."""

    kind: ClassVar[str] = "fixed"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block", "reroute", "defer", "allow")

    owner: str | None = None
    channel: str | None = None
    not_before: str | None = None
    notify: str | None = None

    def evaluate(self, ctx: Context):
        reroute = {k: v for k, v in (("owner", self.owner), ("channel", self.channel)) if v}
        return self.finding(
            ctx,
            f"Rule {self.id} says {self.effect}.",
            reroute=reroute or None,
            not_before=parse_datetime(self.not_before),
            notify=self.notify,
        )


@dataclass(frozen=True, kw_only=True)
class OptOut(Fixed):
    """Block when the profile carries an opt-out for the attempt's channel (a consent stand-in)."""

    kind: ClassVar[str] = "consent"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block",)

    def evaluate(self, ctx: Context):
        for consent in ctx.profile.consents:
            if consent.status == "opt_out" and consent.channel in ("*", ctx.attempt.channel):
                return self.finding(ctx, f"Opted out of {consent.channel}.")
        return None


@dataclass(frozen=True, kw_only=True)
class Cap(Rule):
    """Count contacts in a window (options of every simple type)."""

    kind: ClassVar[str] = "cap"
    reads_ledger: ClassVar[bool] = True
    allowed_effects: ClassVar[tuple[str, ...]] = ("block", "defer")

    max: int = 3
    window: Duration = Duration(days=30)
    per_sender: bool = False
    share: float = 1.0
    label: str = "contacts"
    exempt: tuple[str, ...] = ()
    lookback: Duration | None = None

    def evaluate(self, ctx: Context):
        since = ctx.now - self.window
        if sum(1 for e in ctx.contacts if e.at > since) >= self.max:
            return self.finding(ctx, f"{self.max} {self.label} in {self.window.text}.")
        return None


@dataclass(frozen=True, kw_only=True)
class Needs(Rule):
    """A kind with a required option and a structured one checked in ``__post_init__``."""

    kind: ClassVar[str] = "needs"
    reads_ledger: ClassVar[bool] = True

    condition: str
    requires: Any = ()

    def __post_init__(self):
        if not isinstance(self.requires, (list, tuple)):
            raise ConfigError("requires", "requires: expected a list of {purpose, within}")
        converted = []
        for item in self.requires:
            if not isinstance(item, dict) or "within" not in item:
                raise ConfigError("requires", "requires: each item needs purpose and within")
            try:
                converted.append((item.get("purpose"), Duration.parse(item["within"])))
            except ValueError as exc:
                raise ConfigError("requires", f"requires: {exc}") from None
        object.__setattr__(self, "requires", tuple(converted))

    def evaluate(self, ctx: Context):
        return None


KINDS = {k.kind: k for k in (Fixed, OptOut, Cap, Needs)}
