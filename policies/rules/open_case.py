"""Open case: no marketing while a complaint is open; the case owner hears of it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar

from policies import phrases
from policies.model import Finding
from policies.rules.base import Context, Rule

# Anything not explicitly finished counts as open: a CRM status we do not know
# ("Escalated", "Waiting on customer") must not let marketing through.
CLOSED = frozenset({"closed", "resolved", "cancelled", "canceled"})
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class OpenCase(Rule):
    """Block (or reroute to the case owner) contacts while the person has an open case."""

    kind: ClassVar[str] = "open_case"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block", "reroute")

    def evaluate(self, ctx: Context) -> Finding | None:
        open_cases = [c for c in ctx.profile.cases if (c.status or "").lower() not in CLOSED]
        if not open_cases:
            return None
        case = max(open_cases, key=lambda c: c.at or _EPOCH)
        subject = f" ('{case.subject}')" if case.subject else ""
        since = f" since {phrases.day(case.at)}" if case.at else ""
        handled = f", handled by {case.owner}" if case.owner else ""
        fact = f"Has an open case{subject}{since}{handled}"
        offers = phrases.purposes(ctx.attempt.purpose)
        facts = {"owner": case.owner or "", "subject": case.subject or "",
                 "date": phrases.day(case.at) if case.at else ""}
        if self.effect == "reroute" and case.owner:
            return self.finding(
                ctx, f"{fact}; {offers} go to {case.owner} until it is closed.",
                evidence=phrases.sources(case), reroute={"owner": case.owner},
                notify=case.owner, facts=facts)
        return self.finding(
            ctx, f"{fact}; no {offers} until it is closed.", effect="block",
            evidence=phrases.sources(case), notify=case.owner, facts=facts)
