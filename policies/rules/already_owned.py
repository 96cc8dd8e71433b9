"""Already owned: no offer for what the person already bought."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from policies import phrases
from policies.model import Finding
from policies.rules.base import Context, Duration, Rule


@dataclass(frozen=True, kw_only=True)
class AlreadyOwned(Rule):
    """Block an offer for a product or event ticket the person already bought."""

    kind: ClassVar[str] = "already_owned"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block",)

    lookback: Duration | None = None

    def evaluate(self, ctx: Context) -> Finding | None:
        product = ctx.attempt.product
        if not product:
            return None
        since = ctx.now - self.lookback if self.lookback is not None else None
        owned = [
            p for p in ctx.profile.purchases
            if p.product == product and p.at <= ctx.now and (since is None or p.at > since)
        ]
        if not owned:
            return None
        purchase = max(owned, key=lambda p: p.at)
        what = (
            f"a product they bought in the last {self.lookback.text}"
            if self.lookback is not None else "what they already have"
        )
        message = (
            f"Already bought {product} on {phrases.day(purchase.at)}; no "
            f"{phrases.purposes(ctx.attempt.purpose)} for {what}."
        )
        return self.finding(
            ctx, message, evidence=phrases.sources(purchase),
            facts={"product": product, "date": phrases.day(purchase.at)},
        )
