"""Decide one attempt: run every rule that applies, then combine what they found.

The combining rule is "most restrictive wins" (block > reroute > defer >
allow), like an effector in an access-control engine; the decision always
carries the findings that produced it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from policies.model import (
    VERDICT_RANK,
    Attempt,
    Campaign,
    Decision,
    Finding,
    LedgerEntry,
    Notice,
    Profile,
    new_decision,
)
from policies.rules.base import Context

# For a recipient we know nothing about there is no relationship to protect;
# only the rules that carry the law still apply: opt-outs recorded against a
# bare address, and calling hours (TCPA: 08:00-21:00 recipient time).
STRANGER_KINDS = frozenset({"consent", "contact_window"})


def decide(
    attempt: Attempt,
    profile: Profile,
    ledger: Iterable[LedgerEntry],
    policy,
    now: datetime,
    campaigns: Mapping[str, Campaign] | None = None,
) -> Decision:
    """Decide one attempt against the policy; the same inputs always give the same decision."""
    if profile.erased:
        return _erased(profile, policy)
    category, rules = policy.scoped(attempt)
    ctx = Context(
        attempt,
        profile,
        tuple(ledger),
        policy,
        # A contact scheduled for later is judged as of when it goes out: a cool-down
        # over by then does not stop it, a cap counts the month before it. A past `at`
        # cannot undo what is known now.
        max(now, attempt.at) if attempt.at else now,
        campaigns,
        category,
    )
    reasons: list[Finding] = []
    monitored: list[Finding] = []
    if not profile.known:
        reasons.append(_unknown_recipient(attempt, policy))
        rules = tuple(rule for rule in rules if rule.kind in STRANGER_KINDS)
    for rule in rules:
        when = rule.when
        if when is not None and not when.holds(ctx):
            continue
        finding = rule.evaluate(ctx)
        if finding is None:
            continue
        (reasons if rule.enforcing else monitored).append(finding)
    return combine(reasons, monitored, person=profile.id, policy_version=policy.version)


def combine(
    reasons: Iterable[Finding],
    monitored: Iterable[Finding] = (),
    *,
    person: str | None,
    policy_version: str,
) -> Decision:
    """Combine enforcing findings into one decision: the most restrictive effect wins."""
    reasons = tuple(reasons)
    if not reasons:
        return new_decision("allow", person, reasons, None, None, tuple(monitored),
                             policy_version, None, ())
    verdict = "allow"
    rank = 0
    for finding in reasons:
        finding_rank = VERDICT_RANK[finding.effect]
        if finding_rank > rank:
            verdict, rank = finding.effect, finding_rank
    if verdict != "allow":
        # An allowing finding that tells an owner something ("the dealer will be asked
        # to honour the offer") is about a contact that goes out; once the contact is
        # stopped it would tell the rep of a promise that was never made.
        reasons = tuple(f for f in reasons if f.effect != "allow" or not f.notify)
    reroute = None
    if verdict == "reroute":
        merged: dict[str, str] = {}
        for finding in reasons:
            if finding.effect == "reroute" and finding.reroute:
                for key, value in finding.reroute.items():
                    merged.setdefault(key, value)
        reroute = merged or None
    not_before = None
    if verdict == "defer":
        times = [f.not_before for f in reasons if f.effect == "defer" and f.not_before]
        not_before = max(times, default=None)
    return new_decision(verdict, person, reasons, reroute, not_before, tuple(monitored),
                         policy_version, None, _notices(reasons, verdict))


def _notices(reasons: tuple[Finding, ...], verdict: str) -> tuple[Notice, ...]:
    """Tell each owner what concerns them.

    An owner hears of a contact that was stopped because of them (an open
    complaint they handle), or of what actually happened: the contact was
    rerouted to them, or a campaign's promise went out and they must honour
    it. A reroute or promise that another rule overruled never reached the
    person, so its owner is not bothered with it.
    """
    notices: list[Notice] = []
    seen: set[tuple[str, str]] = set()
    for finding in reasons:
        if not finding.notify or (finding.effect != "block" and finding.effect != verdict):
            continue
        if (finding.notify, finding.rule) in seen:
            continue
        seen.add((finding.notify, finding.rule))
        notices.append(Notice(owner=finding.notify, rule=finding.rule, message=finding.message))
    return tuple(notices)


def _unknown_recipient(attempt: Attempt, policy) -> Finding:
    effect = policy.defaults.unknown_recipient
    outcome = "may be contacted" if effect == "allow" else "are not contacted"
    return Finding(
        rule="unknown-recipient",
        kind="unknown_recipient",
        effect=effect,
        message=f"{attempt.to} matches no known person; under this policy unknown "
                f"recipients {outcome}.",
    )


def _erased(profile: Profile, policy) -> Decision:
    # Right to erasure (GDPR Art. 17): the person asked us to forget them, so
    # nothing goes out to this address, not even transactional messages.
    finding = Finding(
        rule="erased",
        kind="erasure",
        effect="block",
        message="This address belongs to a person who exercised the right to erasure; "
                "no contact of any kind may be made.",
        evidence=tuple(profile.sources),
    )
    return combine([finding], person=profile.id, policy_version=policy.version)
