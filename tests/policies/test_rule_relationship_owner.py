"""relationship_owner: the recorded owner, else the owner of the person's stage, carries it."""

from __future__ import annotations

import pytest

from policies import default_policy_path, load_policy
from policies.model import Account, Campaign
from policies.rules.base import ConfigError
from policies.rules.relationship_owner import RelationshipOwner
from tests.policies.helpers import attempt, context, person, run, scope, src

OFFERS = scope(purposes=["prospecting", "promotion", "price_offer", "trade_in",
                         "upgrade_offer"])
OWNER_SOURCE = src("Contact", "003OWNER")
STAGE_SOURCE = src("Lead", "00QSTAGE")
DMS_OWNER = src("Customer", "C-7781", "dms")


def who(stage, owner="dealer:munich", account_owner=None, owner_source=OWNER_SOURCE):
    account = Account(id="acc", name="Acme", owner=account_owner,
                      source=src("Account", "001A")) if account_owner else None
    field_sources = {"owner": owner_source} if owner else {}
    if stage:
        field_sources["stage"] = STAGE_SOURCE
    return person(stage=stage, owner=owner, account=account, field_sources=field_sources)


def reroute(sender, profile, purpose="upgrade_offer", rule=None, **fields):
    rule = rule or RelationshipOwner(id="relationship-owner", effect="reroute", scope=OFFERS)
    return run(rule, context(attempt(purpose=purpose, sender=sender, **fields), profile))


@pytest.mark.parametrize(
    ("stage", "recorded", "sender", "owner"),
    [
        ("customer", "dealer:munich", "oem", "dealer:munich"),
        ("customer", "dealer:munich", "dealer:munich", None),
        ("customer", "dealer:munich", "dealer:munich-2", "dealer:munich"),
        ("customer", "dealer:munich", "sales", "dealer:munich"),
        ("customer", None, "oem", None),
        ("prospect", "oem", "oem", None),
        ("prospect", "oem", "sales", "oem"),
        ("prospect", "sales", "sales", None),
        ("prospect", "sales", "oem", "sales"),
        ("prospect", "dealer:munich", "oem", "dealer:munich"),
        ("prospect", None, "sales", "oem"),
        ("opportunity", "sales", "oem", "sales"),
        ("opportunity", "sales:j.smith", "sales", "sales:j.smith"),
        ("opportunity", "oem", "oem", None),
        ("opportunity", "oem", "sales", "oem"),
        ("opportunity", None, "oem", "sales"),
        (None, "dealer:munich", "oem", "dealer:munich"),
        (None, None, "oem", None),
    ],
    ids=["oem-to-dealers-customer", "dealer-itself", "similar-name-is-not-owner",
         "sales-to-dealers-customer", "customer-without-owner", "oem-to-its-lead",
         "sales-to-oems-lead", "lead-handed-to-sales-called-by-sales",
         "oem-to-lead-handed-to-sales", "dealers-own-lead", "unrecorded-prospect-is-oems",
         "oem-to-open-deal", "team-to-a-reps-deal", "no-sale-back-to-oem-stage-unchanged",
         "sales-after-no-sale", "unrecorded-opportunity-is-sales", "owner-without-stage",
         "nothing-known"],
)
def test_the_recorded_owner_comes_first_then_the_stage(stage, recorded, sender, owner):
    finding = reroute(sender, who(stage, owner=recorded))
    if owner is None:
        assert finding is None
    else:
        assert (finding.rule, finding.effect) == ("relationship-owner", "reroute")
        assert finding.reroute == {"owner": owner}
        assert finding.notify == owner


def test_message_says_the_recorded_owner_applied_and_cites_its_record():
    finding = reroute("oem", who("customer", owner_source=DMS_OWNER), purpose="trade_in")
    assert finding.message == (
        "The recorded owner of this customer is dealer:munich, who carries the "
        "relationship; a trade-in offer from oem goes to dealer:munich instead, to send in "
        "its own name or let go.")
    assert finding.evidence == (DMS_OWNER, STAGE_SOURCE)


def test_message_says_the_policys_ownership_applied_when_no_owner_is_recorded():
    finding = reroute("sales", who("prospect", owner=None), purpose="prospecting")
    assert finding.message == (
        "No owner is recorded for this prospect, and this policy gives prospects to oem, "
        "who carries the relationship; a prospecting contact from sales goes to oem "
        "instead, to send in its own name or let go.")
    assert finding.evidence == (STAGE_SOURCE,)


def test_owners_task_says_which_offer_the_sender_wanted_to_send():
    black_week = Campaign(id="black-week", purpose="price_offer",
                          offer="8% off every nw-kombi in stock",
                          source=src("Campaign", "701BW"))
    rule = RelationshipOwner(id="relationship-owner", effect="reroute", scope=OFFERS)
    ctx = context(attempt(purpose="price_offer", sender="oem", campaign="black-week",
                          product="nw-kombi"), who("customer"),
                  campaigns={"black-week": black_week})
    finding = run(rule, ctx)
    assert finding.message == (
        "The recorded owner of this customer is dealer:munich, who carries the "
        "relationship; a price offer for nw-kombi from oem (campaign black-week: '8% off "
        "every nw-kombi in stock') goes to dealer:munich instead, to send in its own name "
        "or let go.")
    assert finding.evidence == (OWNER_SOURCE, STAGE_SOURCE, src("Campaign", "701BW"))


def test_an_unregistered_campaign_is_named_without_an_offer():
    finding = reroute("oem", who("customer"), purpose="promotion", campaign="spring-blast")
    assert "a promotion from oem (campaign spring-blast) goes to dealer:munich" in \
        finding.message


def test_block_effect_blocks_without_reroute():
    rule = RelationshipOwner(id="ro", scope=OFFERS, effect="block")
    finding = run(rule, context(attempt(purpose="trade_in"), who("customer")))
    assert finding.effect == "block"
    assert finding.reroute is None
    assert finding.message == ("The recorded owner of this customer is dealer:munich, who "
                               "carries the relationship; oem may not send them trade-in "
                               "offers.")


def test_admin_message_can_name_which_ownership_applied():
    rule = RelationshipOwner(id="ro", scope=OFFERS, effect="reroute",
                             message="Owner {owner} by {basis}.")
    recorded = run(rule, context(attempt(purpose="trade_in"), who("customer")))
    by_stage = run(rule, context(attempt(purpose="trade_in", sender="sales"),
                                 who("prospect", owner=None)))
    assert recorded.message == "Owner dealer:munich by recorded owner."
    assert by_stage.message == "Owner oem by ownership by stage."


@pytest.mark.parametrize(
    ("purpose", "rerouted"),
    [("prospecting", True), ("promotion", True), ("price_offer", True), ("trade_in", True),
     ("upgrade_offer", True), ("newsletter", False), ("event_offer", False),
     ("service_reminder", False), ("survey", False), ("invoice", False),
     ("transactional", False), ("safety_recall", False)],
)
def test_default_policy_sends_head_offices_offers_to_the_dealer_and_the_rest_out(
        purpose, rerouted):
    rule = next(r for r in load_policy(default_policy_path()).rules
                if r.id == "relationship-owner")
    finding = run(rule, context(attempt(purpose=purpose, sender="oem"), who("customer")))
    assert (finding is not None and finding.reroute == {"owner": "dealer:munich"}) is rerouted


def test_always_allowed_senders_pass():
    rule = RelationshipOwner(id="ro", effect="reroute", always_allowed=("billing", "service*"))
    profile = who("customer")
    assert run(rule, context(attempt(purpose="invoice", sender="billing"), profile)) is None
    assert run(rule, context(attempt(purpose="survey", sender="service"), profile)) is None
    assert run(rule, context(attempt(purpose="survey", sender="oem"), profile)) is not None


def test_owners_option_overrides_policy_ownership_for_people_without_an_owner():
    rule = RelationshipOwner(id="ro", effect="reroute", owners={"customer": "account.owner"})
    unrecorded = who("customer", owner=None, account_owner="sales:j.smith")
    finding = run(rule, context(attempt(purpose="trade_in", sender="dealer:munich"),
                                unrecorded))
    assert finding.reroute == {"owner": "sales:j.smith"}
    assert finding.message.startswith(
        "No owner is recorded for this customer, so sales:j.smith, the owner of their "
        "account Acme, carries the relationship;")
    assert finding.evidence == (src("Account", "001A"), STAGE_SOURCE)
    # A recorded owner still comes first.
    recorded = who("customer", account_owner="sales:j.smith")
    assert run(rule, context(attempt(purpose="trade_in", sender="dealer:munich"),
                             recorded)) is None
    # Stages the option does not name still follow the policy.
    prospect = run(rule, context(attempt(purpose="trade_in", sender="sales"),
                                 who("prospect", owner=None)))
    assert prospect.reroute == {"owner": "oem"}


def test_account_owner_stage_without_an_account_owner_is_left_alone():
    rule = RelationshipOwner(id="ro", effect="reroute", owners={"customer": "account.owner"})
    assert run(rule, context(attempt(purpose="trade_in"), who("customer", owner=None))) is None


@pytest.mark.parametrize(
    ("owners", "error"),
    [
        (["customer"], "owners: expected a mapping of stage to owner"),
        ({"lead": "oem"}, "owners: unknown stage 'lead'"),
        ({"customer": ""}, "owners.customer: expected a sender"),
    ],
    ids=["not-a-mapping", "unknown-stage", "empty-owner"],
)
def test_bad_owners_option_names_the_key(owners, error):
    with pytest.raises(ConfigError) as info:
        RelationshipOwner(id="ro", owners=owners)
    assert info.value.key == "owners"
    assert error in info.value.message
