"""Purchase cooldown: no offers right after someone bought."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from policies import phrases
from policies.model import Finding
from policies.rules.base import Context, Duration, Rule


@dataclass(frozen=True, kw_only=True)
class PurchaseCooldown(Rule):
    """Pause in-scope offers for a while after a purchase (of the same product, or any)."""

    kind: ClassVar[str] = "purchase_cooldown"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block",)

    days: Duration = Duration(days=30)
    any_product: bool = False

    def evaluate(self, ctx: Context) -> Finding | None:
        product = ctx.attempt.product
        if not self.any_product and not product:
            return None
        since = ctx.now - self.days
        recent = [
            p for p in ctx.profile.purchases
            # A company's purchase does not make each employee a fresh buyer.
            if not p.via_account
            and since < p.at <= ctx.now
            and (self.any_product or p.product == product)
        ]
        if not recent:
            return None
        purchase = max(recent, key=lambda p: p.at)
        bought = purchase.product or "a product"
        offers = phrases.purposes(ctx.attempt.purpose)
        what = f"{offers} for it" if purchase.product == product else f"{offers} after a purchase"
        until = purchase.at + self.days
        message = (
            f"Bought {bought} on {phrases.day(purchase.at)}, {phrases.ago(purchase.at, ctx.now)}; "
            f"{what} pause for {self.days.text} (until {phrases.day(until)})."
        )
        return self.finding(
            ctx, message, evidence=phrases.sources(purchase),
            facts={"product": bought, "date": phrases.day(purchase.at),
                   "until": phrases.day(until), "window": self.days.text},
        )
