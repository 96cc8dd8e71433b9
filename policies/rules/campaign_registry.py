"""Campaign registry: offers only from registered, running campaigns the person qualifies for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from policies import cel, phrases
from policies.model import Campaign, Finding
from policies.rules.base import Context, Rule


@dataclass(frozen=True, kw_only=True)
class CampaignRegistry(Rule):
    """Block sends outside a registered campaign; tell the owner what an allowed one promised."""

    kind: ClassVar[str] = "campaign_registry"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block",)
    reads_campaigns: ClassVar[bool] = True

    def evaluate(self, ctx: Context) -> Finding | None:
        attempt = ctx.attempt
        offers = phrases.purposes(attempt.purpose)
        if not attempt.campaign:
            return self.finding(ctx, f"This send names no campaign; {offers} must come from "
                                     f"a registered campaign.")
        campaign: Campaign | None = ctx.campaigns.get(attempt.campaign)
        if campaign is None:
            return self.finding(ctx, f"Campaign {attempt.campaign} is not registered; "
                                     f"{offers} must come from a registered campaign.",
                                facts={"campaign": attempt.campaign})
        refusal = self._refusal(campaign, ctx)
        if refusal:
            return self.finding(ctx, refusal, evidence=phrases.sources(campaign),
                                facts={"campaign": campaign.id})
        owner = ctx.profile.owner or (ctx.profile.account.owner if ctx.profile.account else None)
        if campaign.notify_owner and campaign.offer and owner:
            # The owner must know what head office promised before the
            # customer walks in with the letter.
            return self.finding(
                ctx, f"Campaign {campaign.id} promised '{campaign.offer}'; {owner} will be "
                     f"asked to honour it.",
                effect="allow", evidence=phrases.sources(campaign), notify=owner,
                facts={"campaign": campaign.id, "offer": campaign.offer, "owner": owner})
        return None

    @staticmethod
    def _refusal(campaign: Campaign, ctx: Context) -> str | None:
        """Say why this registered campaign may not reach this person now, or None."""
        name = f"Campaign {campaign.id}"
        if campaign.starts is not None and ctx.now < campaign.starts:
            return f"{name} starts on {phrases.day(campaign.starts)}; it may not send before."
        if campaign.ends is not None and ctx.now >= campaign.ends:
            return f"{name} ended on {phrases.day(campaign.ends)}; it may not send any more."
        if campaign.purpose and campaign.purpose != ctx.attempt.purpose:
            return (f"{name} is registered for {phrases.purposes(campaign.purpose)}, not "
                    f"{phrases.purposes(ctx.attempt.purpose)}.")
        if not campaign.eligible_when:
            return None
        try:
            condition = cel.compiled(campaign.eligible_when)
        except ValueError as exc:
            return f"{name} has an eligibility condition that cannot be read ({exc}); " \
                   f"nobody qualifies until it is fixed."
        if not condition.holds(ctx):
            return (f"This person does not meet {name}'s eligibility condition "
                    f"({campaign.eligible_when}).")
        return None
