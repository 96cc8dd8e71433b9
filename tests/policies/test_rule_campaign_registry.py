"""campaign_registry: only registered, running campaigns the person qualifies for; owner told."""

from __future__ import annotations

import pytest

from policies.model import Campaign, Purchase
from policies.rules.campaign_registry import CampaignRegistry
from tests.policies.helpers import at, attempt, context, person, run, scope, src

RULE = CampaignRegistry(id="registered-campaigns",
                        scope=scope(purposes=["price_offer", "promotion"]))
Q4 = Campaign(id="q4-upgrade", purpose="price_offer", offer="0.9% finance on A4",
              eligible_when='person.stage == "customer"', starts=at("2026-10-01T00:00:00"),
              ends=at("2026-12-31T00:00:00"), source=src("Campaign", "701Q4"))
ANNA = person(stage="customer", owner="dealer:munich",
              purchases=(Purchase(product="audi-a3", at=at("2022-05-01T10:00:00")),))


def campaign(**changes):
    values = {f: getattr(Q4, f) for f in Q4.__dataclass_fields__}
    values.update(changes)
    return Campaign(**values)


def send(name="q4-upgrade", campaigns=None, profile=ANNA, now="2026-11-23T10:00:00"):
    registry = {Q4.id: Q4} if campaigns is None else campaigns
    ctx = context(attempt(campaign=name, product="audi-a4"), profile, now=at(now),
                  campaigns=registry)
    return run(RULE, ctx)


@pytest.mark.parametrize(
    ("kwargs", "effect", "words"),
    [
        ({}, "allow", "Campaign q4-upgrade promised '0.9% finance on A4'; dealer:munich will "
                      "be asked to honour it."),
        ({"name": None}, "block", "This send names no campaign"),
        ({"name": "summer-sale"}, "block", "Campaign summer-sale is not registered"),
        ({"now": "2026-09-30T23:59:59"}, "block", "Campaign q4-upgrade starts on 2026-10-01"),
        ({"now": "2026-12-31T00:00:00"}, "block", "Campaign q4-upgrade ended on 2026-12-31"),
        ({"now": "2026-12-30T23:59:59"}, "allow", "promised"),
        ({"profile": person(stage="prospect", owner="dealer:munich")}, "block",
         "does not meet Campaign q4-upgrade's eligibility condition "
         '(person.stage == "customer")'),
        ({"campaigns": {"q4-upgrade": campaign(purpose="newsletter")}}, "block",
         "registered for newsletters, not price offers"),
        ({"campaigns": {"q4-upgrade": campaign(eligible_when="person.stage ==")}}, "block",
         "eligibility condition that cannot be read"),
        ({"campaigns": {"q4-upgrade": campaign(eligible_when="person.nothing.deeper")}},
         "block", "does not meet"),
    ],
    ids=["eligible-running-campaign", "no-campaign", "unregistered", "before-start",
         "at-end", "last-second", "not-eligible", "wrong-purpose", "unreadable-condition",
         "condition-fails-at-run-time"],
)
def test_truth_table(kwargs, effect, words):
    finding = send(**kwargs)
    assert (finding.rule, finding.kind, finding.effect) == (
        "registered-campaigns", "campaign_registry", effect)
    assert words in finding.message


def test_allowed_send_notifies_the_persons_owner_with_evidence():
    finding = send()
    assert finding.notify == "dealer:munich"
    assert finding.evidence == (src("Campaign", "701Q4"),)


@pytest.mark.parametrize(
    ("notify_owner", "told"),
    [({}, "dealer:munich"), ({"notify_owner": True}, "dealer:munich"),
     ({"notify_owner": False}, None)],
    ids=["unsaid-tells-the-owner", "told-to-tell", "opted-out"],
)
def test_the_owner_is_told_unless_the_campaign_opts_out(notify_owner, told):
    registered = Campaign.from_dict({"id": "q4-upgrade", "purpose": "price_offer",
                                     "offer": "0.9% finance on A4", **notify_owner})
    finding = send(campaigns={"q4-upgrade": registered})
    assert (finding.notify if finding else None) == told


@pytest.mark.parametrize(
    ("changes", "profile"),
    [({"notify_owner": False}, ANNA), ({"offer": None}, ANNA),
     ({}, person(stage="customer", owner=None))],
    ids=["no-notify", "nothing-promised", "no-owner"],
)
def test_no_finding_when_nothing_needs_saying(changes, profile):
    assert send(campaigns={"q4-upgrade": campaign(**changes)}, profile=profile) is None


def test_campaign_without_condition_is_open_to_everyone():
    registry = {"q4-upgrade": campaign(eligible_when=None)}
    prospect = person(stage="prospect", owner="dealer:munich")
    assert send(campaigns=registry, profile=prospect).effect == "allow"


def test_condition_reads_purchases_like_the_engine_does():
    registry = {"q4-upgrade": campaign(
        eligible_when='person.purchases.exists(p, p.product == "audi-a3")')}
    assert send(campaigns=registry).effect == "allow"
    other = person(stage="customer", owner="dealer:munich")
    assert send(campaigns=registry, profile=other).effect == "block"
