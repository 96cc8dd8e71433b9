"""Replay recorded decisions under another policy and say which would come out differently.

Each decision is replayed at its own time with the contacts the ledger held
before it. The profile is the person's profile as it is now: the store keeps
current facts, not their history, so a purchase made after a decision counts
as if it had been known then. The report says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from guard.store.engine import read_only
from guard.store.ledger import ERASED_PREFIX
from guard.store.tables import campaigns, ledger, people
from policies import Attempt, Campaign, Decision, LedgerEntry, Policy, Profile, decide
from policies.model import parse_datetime


@dataclass(frozen=True)
class Replay:
    """One recorded decision and what the other policy decides for the same attempt."""

    decision_id: str
    person: str | None
    at: datetime
    attempt: Attempt
    before: str
    before_rules: tuple[str, ...]
    after: Decision

    @property
    def changed(self) -> bool:
        return (self.before, self.before_rules) != (self.after.verdict, self.after.rules)


def _entry(row) -> LedgerEntry:
    return LedgerEntry(at=parse_datetime(row.at), channel=row.channel, purpose=row.purpose,
                       sender=row.sender, campaign=row.campaign, template=row.template,
                       product=row.product, verdict=row.verdict)


def replay(engine: Engine, policy: Policy, since: datetime) -> Iterator[Replay]:
    """Replay every decision recorded since ``since``, oldest first."""
    with read_only(engine.connect()) as conn:
        registered = {}
        for row in conn.execute(sa.select(campaigns.c.campaign)):
            campaign = Campaign.from_dict(row.campaign)
            registered[campaign.id] = campaign
        decided = conn.execute(
            sa.select(ledger).where(ledger.c.at >= since, ledger.c.decision.is_not(None))
            .order_by(ledger.c.person_id, ledger.c.at)
        ).all()
        profiles: dict[str | None, Profile] = {None: Profile(id=None)}
        history: dict[str | None, list] = {None: []}
        for row in decided:
            if row.person_id not in profiles:
                found = conn.execute(sa.select(people.c.profile)
                                     .where(people.c.id == row.person_id)).scalar_one_or_none()
                profiles[row.person_id] = (Profile.from_dict(found) if found
                                           else Profile(id=row.person_id))
                history[row.person_id] = conn.execute(
                    sa.select(ledger).where(ledger.c.person_id == row.person_id,
                                            ledger.c.committed == sa.true())
                    .order_by(ledger.c.at)
                ).all()
            recorded = row.decision or {}
            if recorded.get("erased"):
                continue  # right to erasure: the attempt and facts to replay it with are gone
            at = parse_datetime(row.at)
            earlier = tuple(_entry(e) for e in history[row.person_id]
                            if parse_datetime(e.at) < at and e.id != row.id
                            and at - parse_datetime(e.at) <= policy.ledger_window)
            attempt = Attempt.from_dict(row.attempt)
            profile = profiles[row.person_id]
            if attempt.to.startswith(ERASED_PREFIX):
                profile = Profile(id=None, erased=True)  # recorded by the keyed hash only
            yield Replay(
                decision_id=recorded.get("decision_id") or row.id,
                person=row.person_id,
                at=at,
                attempt=attempt,
                before=recorded.get("verdict", row.verdict),
                before_rules=tuple(r["rule"] for r in recorded.get("reasons", ())),
                after=decide(attempt, profile, earlier, policy, at, registered),
            )
