"""purchase_cooldown: no offers for a while after a purchase."""

from __future__ import annotations

import pytest

from policies.model import Purchase
from policies.rules.base import Duration
from policies.rules.purchase_cooldown import PurchaseCooldown
from tests.policies.helpers import NOW, at, attempt, context, person, run, scope, src

OFFERS = scope(purposes=["price_offer", "promotion"])


def bought(product="audi-a4", when="2026-11-21T09:00:00", via_account=False):
    return Purchase(product=product, at=at(when), via_account=via_account,
                    source=src("Opportunity", "006Ws000001"))


def rule(**options):
    return PurchaseCooldown(id="purchase-cooldown", effect="block", scope=OFFERS,
                            days=Duration(days=30), **options)


@pytest.mark.parametrize(
    ("purchases", "product", "options", "purpose", "blocked"),
    [
        ((bought(),), "audi-a4", {}, "price_offer", True),
        ((bought(),), "audi-q5", {}, "price_offer", False),
        ((bought(),), "audi-q5", {"any_product": True}, "price_offer", True),
        ((bought(),), None, {}, "price_offer", False),
        ((bought(),), None, {"any_product": True}, "price_offer", True),
        ((bought(),), "audi-a4", {}, "service_reminder", False),
        ((bought(when="2026-10-24T10:00:00"),), "audi-a4", {}, "price_offer", False),
        ((bought(when="2026-10-24T10:00:01"),), "audi-a4", {}, "price_offer", True),
        ((bought(when="2026-11-24T10:00:00"),), "audi-a4", {}, "price_offer", False),
        ((bought(via_account=True),), "audi-a4", {}, "price_offer", False),
        ((), "audi-a4", {"any_product": True}, "price_offer", False),
    ],
    ids=[
        "same-product", "other-product", "any-product", "no-product-on-attempt",
        "any-product-without-product", "out-of-scope", "exactly-30-days-ago-ends",
        "one-second-inside-window", "future-purchase-ignored", "company-purchase",
        "no-purchases",
    ],
)
def test_truth_table(purchases, product, options, purpose, blocked):
    ctx = context(attempt(purpose=purpose, product=product), person(purchases=purchases))
    finding = run(rule(**options), ctx)
    assert (finding is not None) == blocked
    if blocked:
        assert (finding.rule, finding.kind, finding.effect) == (
            "purchase-cooldown", "purchase_cooldown", "block")


def test_message_names_product_date_age_and_window():
    ctx = context(attempt(product="audi-a4"), person(purchases=(bought(),)))
    finding = run(rule(), ctx)
    assert finding.message == ("Bought audi-a4 on 2026-11-21, 2 days ago; price offers for it "
                               "pause for 30 days (until 2026-12-21).")
    assert finding.evidence == (src("Opportunity", "006Ws000001"),)


def test_any_product_names_the_latest_purchase():
    older = bought(product="audi-a3", when="2026-11-01T10:00:00")
    ctx = context(attempt(purpose="promotion", product="audi-q5"),
                  person(purchases=(older, bought())))
    finding = run(rule(any_product=True), ctx)
    assert finding.message.startswith("Bought audi-a4 on 2026-11-21, 2 days ago; promotions "
                                      "after a purchase pause for 30 days")
    assert NOW.date().isoformat() not in finding.message


def test_admin_message_can_use_the_rule_text_and_facts():
    custom = PurchaseCooldown(id="pc", scope=OFFERS, message="{default} Ask {product}'s dealer.")
    ctx = context(attempt(product="audi-a4"), person(purchases=(bought(),)))
    assert run(custom, ctx).message.endswith("(until 2026-12-21). Ask audi-a4's dealer.")
