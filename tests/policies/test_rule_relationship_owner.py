"""relationship_owner: the owner of the person's stage carries the contact."""

from __future__ import annotations

import pytest

from policies.model import Account
from policies.rules.base import ConfigError
from policies.rules.relationship_owner import RelationshipOwner
from tests.policies.helpers import attempt, context, person, run, scope, src

SALES = scope(categories=["sales"])
OWNER_SOURCE = src("Contact", "003OWNER")


def who(stage, owner="dealer:munich", account_owner=None):
    account = Account(id="acc", owner=account_owner, source=src("Account", "001A")) \
        if account_owner else None
    return person(stage=stage, owner=owner, account=account,
                  field_sources={"owner": OWNER_SOURCE})


@pytest.mark.parametrize(
    ("stage", "sender", "owner"),
    [
        ("customer", "oem", "dealer:munich"),
        ("customer", "dealer:munich", None),
        ("customer", "dealer:munich-2", "dealer:munich"),
        ("customer", "dealer:augsburg", "dealer:munich"),
        ("prospect", "oem", None),
        ("prospect", "dealer:munich", "oem"),
        ("opportunity", "oem", "sales"),
        ("opportunity", "sales", None),
        (None, "oem", None),
    ],
    ids=["oem-to-customer", "owner-itself", "similar-name-is-not-owner", "other-dealer",
         "prospect-owned-by-oem", "dealer-to-prospect", "oem-to-opportunity", "sales-itself",
         "no-stage"],
)
def test_reroute_truth_table(stage, sender, owner):
    rule = RelationshipOwner(id="relationship-owner", effect="reroute", scope=SALES)
    finding = run(rule, context(attempt(purpose="upgrade_offer", sender=sender), who(stage)))
    if owner is None:
        assert finding is None
    else:
        assert (finding.rule, finding.effect) == ("relationship-owner", "reroute")
        assert finding.reroute == {"owner": owner}
        assert finding.notify == owner


def test_customer_without_an_owner_is_left_alone():
    rule = RelationshipOwner(id="ro", scope=SALES, effect="reroute")
    assert run(rule, context(attempt(purpose="trade_in"), who("customer", owner=None))) is None


def test_message_names_stage_owner_and_sender_with_evidence():
    rule = RelationshipOwner(id="ro", scope=SALES, effect="reroute")
    finding = run(rule, context(attempt(purpose="trade_in", sender="oem"), who("customer")))
    assert finding.message == ("As a customer, this person's relationship belongs to "
                               "dealer:munich; trade-in offers from oem go to dealer:munich "
                               "instead.")
    assert finding.evidence == (OWNER_SOURCE,)


def test_block_effect_blocks_without_reroute():
    rule = RelationshipOwner(id="ro", scope=SALES, effect="block")
    finding = run(rule, context(attempt(purpose="trade_in"), who("customer")))
    assert finding.effect == "block"
    assert finding.reroute is None
    assert "oem may not send them trade-in offers" in finding.message


def test_always_allowed_senders_pass():
    rule = RelationshipOwner(id="ro", effect="reroute", always_allowed=("billing", "service*"))
    profile = who("customer")
    assert run(rule, context(attempt(purpose="invoice", sender="billing"), profile)) is None
    assert run(rule, context(attempt(purpose="survey", sender="service"), profile)) is None
    assert run(rule, context(attempt(purpose="survey", sender="oem"), profile)) is not None


def test_owners_option_overrides_policy_ownership():
    rule = RelationshipOwner(id="ro", effect="reroute", owners={"customer": "account.owner"})
    profile = who("customer", account_owner="sales:j.smith")
    finding = run(rule, context(attempt(purpose="trade_in", sender="dealer:munich"), profile))
    assert finding.reroute == {"owner": "sales:j.smith"}
    # Stages the option does not name still follow the policy.
    prospect = run(rule, context(attempt(purpose="trade_in", sender="sales"), who("prospect")))
    assert prospect.reroute == {"owner": "oem"}


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
