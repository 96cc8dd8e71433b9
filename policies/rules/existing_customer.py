"""Existing customer: no cold prospecting of people whose company already buys from us."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from policies import phrases
from policies.model import Finding
from policies.rules.base import Context, Duration, Rule


@dataclass(frozen=True, kw_only=True)
class ExistingCustomer(Rule):
    """Stop prospecting a person whose account holds an active contract or bought recently."""

    kind: ClassVar[str] = "existing_customer"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block", "reroute")

    lookback: Duration = Duration(days=365)

    def evaluate(self, ctx: Context) -> Finding | None:
        profile = ctx.profile
        today = ctx.now.date()
        account = profile.account
        holder = account.name if account and account.name else "Their account"
        active = [
            c for c in profile.contracts
            if c.status == "active" and (c.end is None or c.end >= today)
            and (c.start is None or c.start <= today)
        ]
        if active:
            # The contract running longest is the one the relationship hangs on.
            contract = max(active, key=lambda c: (c.end is None, c.end or today))
            owner = contract.owner or (account.owner if account else None)
            fact = (f"{holder} holds an active contract"
                    f"{' for ' + contract.product if contract.product else ''}"
                    f"{' until ' + phrases.day(contract.end) if contract.end else ''}")
            record = contract
        else:
            since = ctx.now - self.lookback
            recent = [p for p in profile.purchases if since < p.at <= ctx.now]
            if not recent:
                return None
            purchase = max(recent, key=lambda p: p.at)
            owner = account.owner if account and account.owner else profile.owner
            who = holder if purchase.via_account else "They"
            fact = (f"{who} bought {purchase.product or 'from us'} on "
                    f"{phrases.day(purchase.at)}, within the last {self.lookback.text}")
            record = purchase
        evidence = phrases.sources(record, account)
        offers = phrases.purposes(ctx.attempt.purpose)
        facts = {"owner": owner or "", "fact": fact}
        if self.effect == "reroute" and owner:
            return self.finding(
                ctx, f"{fact}; {offers} go to the account owner {owner} instead.",
                evidence=evidence, reroute={"owner": owner}, notify=owner, facts=facts)
        owner_note = f" (owner {owner})" if owner else ""
        return self.finding(
            ctx, f"{fact}{owner_note}; they are an existing customer, so no {offers}.",
            evidence=evidence, effect="block", facts=facts)
