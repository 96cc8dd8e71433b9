"""Relationship owner: whoever owns the person's stage carries the contact."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

from policies import phrases
from policies.model import Finding, Profile
from policies.rules.base import ConfigError, Context, Rule

STAGES = ("prospect", "opportunity", "customer")
PERSON_OWNER = "person.owner"
ACCOUNT_OWNER = "account.owner"


@dataclass(frozen=True, kw_only=True)
class RelationshipOwner(Rule):
    """Reroute (or block) another sender's contact to the owner of the person's stage."""

    kind: ClassVar[str] = "relationship_owner"
    default_effect: ClassVar[str] = "reroute"
    allowed_effects: ClassVar[tuple[str, ...]] = ("reroute", "block")

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

    def owner_of(self, profile: Profile, ownership: Mapping[str, str]) -> str | None:
        """Return the sender that owns the person at their current stage, if any."""
        stage = profile.stage
        if not stage:
            return None
        reference = self._owner_of_stage.get(stage) or ownership.get(stage)
        if reference == PERSON_OWNER:
            return profile.owner
        if reference == ACCOUNT_OWNER:
            return profile.account.owner if profile.account else None
        return reference

    def evaluate(self, ctx: Context) -> Finding | None:
        profile = ctx.profile
        owner = self.owner_of(profile, getattr(ctx.policy, "ownership", {}) or {})
        sender = ctx.attempt.sender
        if not owner or sender == owner:
            return None
        if any(fnmatch.fnmatchcase(sender, allowed) for allowed in self.always_allowed):
            return None
        evidence = phrases.sources(profile.field_sources.get("owner"),
                                   profile.field_sources.get("stage"))
        if not evidence and profile.account and owner == profile.account.owner:
            evidence = phrases.sources(profile.account)
        fact = f"As a {profile.stage}, this person's relationship belongs to {owner}"
        offers = phrases.purposes(ctx.attempt.purpose)
        facts = ({"owner": owner, "stage": profile.stage or "", "sender": sender}
                 if self.message else None)
        if self.effect == "block":
            return self.finding(
                ctx, f"{fact}; {sender} may not send them {offers}.",
                evidence=evidence, facts=facts)
        return self.finding(
            ctx, f"{fact}; {offers} from {sender} go to {owner} instead.",
            evidence=evidence, reroute={"owner": owner}, notify=owner, facts=facts)
