"""Relationship owner: whoever owns the person carries the contact."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from policies import phrases
from policies.model import Evidence, Finding, Profile
from policies.rules.base import ConfigError, Context, Rule

STAGES = ("prospect", "opportunity", "customer")
PERSON_OWNER = "person.owner"
ACCOUNT_OWNER = "account.owner"
RECORDED = "recorded"  # the owner named on the person's own records
# How a message names one person, and everyone, at each stage.
_WHO = {"prospect": "this prospect", "opportunity": "this person with an open deal",
        "customer": "this customer"}
_ALL = {"prospect": "prospects", "opportunity": "people with an open deal",
        "customer": "customers"}


@dataclass(frozen=True, kw_only=True)
class RelationshipOwner(Rule):
    """Reroute (or block) another sender's contact to the person's owner."""

    kind: ClassVar[str] = "relationship_owner"
    default_effect: ClassVar[str] = "reroute"
    allowed_effects: ClassVar[tuple[str, ...]] = ("reroute", "block")
    # The owner's task names the registered offer the sender wanted to make.
    reads_campaigns: ClassVar[bool] = True

    owners: Any = None  # stage → owner; replaces the policy's ownership for those stages
    always_allowed: tuple[str, ...] = ()  # senders (or patterns) that may contact anyway

    def __post_init__(self) -> None:
        owners = self.owners
        if owners is None:
            object.__setattr__(self, "owners", ())
            object.__setattr__(self, "_owner_of_stage", {})
            return
        if isinstance(owners, tuple):  # already converted (dataclasses.replace)
            owners = dict(owners)
        if not isinstance(owners, Mapping):
            raise ConfigError("owners", "owners: expected a mapping of stage to owner, "
                                        "e.g. {customer: person.owner}")
        pairs = []
        for stage, owner in owners.items():
            if stage not in STAGES:
                raise ConfigError("owners", f"owners: unknown stage {stage!r} "
                                            f"(expected one of {', '.join(STAGES)})")
            if not isinstance(owner, str) or not owner:
                raise ConfigError("owners", f"owners.{stage}: expected a sender, "
                                            f"{PERSON_OWNER} or {ACCOUNT_OWNER}")
            pairs.append((stage, owner))
        object.__setattr__(self, "owners", tuple(pairs))
        # Looked up per decision; kept beside the fields (not one of them).
        object.__setattr__(self, "_owner_of_stage", dict(pairs))

    def owner_of(self, profile: Profile, ownership: Mapping[str, str]) -> tuple[str, str] | None:
        """Return the person's owner and where it came from (``RECORDED`` or the stage's entry).

        The recorded owner comes first: the CRM or dealer system records each
        hand-over (lead to sales, sale to the dealer, no sale back to head
        office) by changing it. The stage's entry speaks only for people whose
        records name no owner.
        """
        if profile.owner:
            return profile.owner, RECORDED
        stage = profile.stage
        reference = (self._owner_of_stage.get(stage) or ownership.get(stage)) if stage else None
        if not reference or reference == PERSON_OWNER:
            return None
        if reference == ACCOUNT_OWNER:
            owner = profile.account.owner if profile.account else None
            return (owner, ACCOUNT_OWNER) if owner else None
        return reference, reference

    def evaluate(self, ctx: Context) -> Finding | None:
        profile = ctx.profile
        owned = self.owner_of(profile, getattr(ctx.policy, "ownership", {}) or {})
        sender = ctx.attempt.sender
        if owned is None or sender == owned[0]:
            return None
        if any(fnmatch.fnmatchcase(sender, allowed) for allowed in self.always_allowed):
            return None
        owner, basis = owned
        fact, evidence = _why(profile, owner, basis)
        attempt = ctx.attempt
        campaign = ctx.campaigns.get(attempt.campaign) if attempt.campaign else None
        offer = campaign.offer if campaign is not None else None
        facts = ({"owner": owner, "stage": profile.stage or "", "sender": sender,
                  "basis": "recorded owner" if basis == RECORDED else "ownership by stage",
                  "campaign": attempt.campaign or "", "offer": offer or ""}
                 if self.message else None)
        if self.effect == "block":
            return self.finding(
                ctx, f"{fact}; {sender} may not send them {phrases.purposes(attempt.purpose)}.",
                evidence=evidence, facts=facts)
        # The owner's task says what the sender wanted to send, so the owner can send it
        # in its own name or let it go.
        what = phrases.a_purpose(attempt.purpose)
        if attempt.product:
            what += f" for {attempt.product}"
        what += f" from {sender}"
        if attempt.campaign:
            what += f" (campaign {attempt.campaign}" + (f": '{offer}')" if offer else ")")
            if offer:
                evidence += phrases.sources(campaign)
        return self.finding(
            ctx, f"{fact}; {what} goes to {owner} instead, to send in its own name or let go.",
            evidence=evidence, reroute={"owner": owner}, notify=owner, facts=facts)


def _why(profile: Profile, owner: str, basis: str) -> tuple[str, tuple[Evidence, ...]]:
    """Say why the owner owns the person, citing the records that say so."""
    sources = profile.field_sources
    stage = profile.stage
    who = _WHO.get(stage or "", "this person")
    if basis == RECORDED:
        return (f"The recorded owner of {who} is {owner}, who carries the relationship",
                phrases.sources(sources.get("owner"), sources.get("stage")))
    unrecorded = f"No owner is recorded for {who}"
    if basis == ACCOUNT_OWNER:
        account = profile.account
        company = f" {account.name}" if account and account.name else ""
        return (f"{unrecorded}, so {owner}, the owner of their account{company}, carries the "
                f"relationship", phrases.sources(account, sources.get("stage")))
    return (f"{unrecorded}, and this policy gives {_ALL[stage]} to {owner}, who carries the "
            f"relationship", phrases.sources(sources.get("stage")))
