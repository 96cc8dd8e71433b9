"""replacement_cycle: no trade-in push before the car is as old as the person keeps cars."""

from __future__ import annotations

from datetime import date

import pytest

from policies.model import Purchase
from policies.rules.replacement_cycle import ReplacementCycle
from tests.policies.helpers import at, attempt, context, person, run, scope, src

GOLF = Purchase(product="vw-golf-8", category="vehicle", at=at("2024-03-08T11:00:00"),
                source=src("Asset", "02i000GOLF"))
CHARGER = Purchase(product="wallbox", category="accessory", at=at("2026-01-10T11:00:00"),
                   source=src("Asset", "02i000WALL"))
SAID = src("Contact", "003ANNA")
RULE = ReplacementCycle(id="replacement-cycle", effect="block", default_years=4.0,
                        scope=scope(purposes=["trade_in", "upgrade_offer"]))


def who(years=None, until=None, purchases=(GOLF,)):
    sources = {}
    if years is not None:
        sources["replacement_cycle_years"] = SAID
    if until is not None:
        sources["do_not_market_until"] = src("Contact", "003NOTE")
    return person(purchases=purchases, replacement_cycle_years=years, do_not_market_until=until,
                  field_sources=sources)


@pytest.mark.parametrize(
    ("profile", "now", "blocked"),
    [
        (who(years=10), "2026-11-23T10:00:00", True),
        (who(years=10), "2034-03-07T23:59:00", True),
        (who(years=10), "2034-03-08T00:00:00", False),
        (who(), "2028-03-07T10:00:00", True),
        (who(), "2028-03-08T10:00:00", False),
        (who(years=2.5), "2026-09-07T10:00:00", True),
        (who(years=2.5), "2026-09-08T10:00:00", False),
        (who(years=0), "2028-03-07T10:00:00", True),
        (who(purchases=()), "2026-11-23T10:00:00", False),
        (who(purchases=(), until=date(2027, 1, 1)), "2026-11-23T10:00:00", True),
        (who(purchases=(), until=date(2026, 11, 23)), "2026-11-23T10:00:00", False),
        (who(years=1, until=date(2027, 1, 1)), "2026-11-23T10:00:00", True),
    ],
    ids=[
        "said-10-years", "last-minute-of-cycle", "cycle-ends-on-anniversary",
        "default-4-years", "default-ends", "fractional-years", "fractional-ends",
        "zero-years-uses-default", "no-car-no-hold", "hold-without-car", "hold-ends-today",
        "hold-after-short-cycle",
    ],
)
def test_truth_table(profile, now, blocked):
    ctx = context(attempt(purpose="trade_in", sender="dealer:munich"), profile, now=at(now))
    finding = run(RULE, ctx)
    assert (finding is not None) == blocked
    if blocked:
        assert (finding.rule, finding.kind, finding.effect) == (
            "replacement-cycle", "replacement_cycle", "block")


def test_stated_cycle_message_and_evidence():
    finding = run(RULE, context(attempt(purpose="trade_in"), who(years=10)))
    assert finding.message == ("Said they keep cars ~10 years; bought vw-golf-8 on 2024-03-08, "
                               "so no trade-in offers before 2034-03-08.")
    assert finding.evidence == (SAID, src("Asset", "02i000GOLF"))


def test_default_cycle_message_says_it_is_assumed():
    finding = run(RULE, context(attempt(purpose="upgrade_offer"), who()))
    assert finding.message == ("Bought vw-golf-8 on 2024-03-08; without a stated replacement "
                               "cycle we assume 4 years, so no upgrade offers before "
                               "2028-03-08.")


def test_do_not_market_until_message_and_evidence():
    profile = who(purchases=(), until=date(2027, 1, 15))
    finding = run(RULE, context(attempt(purpose="trade_in"), profile))
    assert finding.message == ("A rep recorded do not market until 2027-01-15; no trade-in "
                               "offers before then.")
    assert finding.evidence == (src("Contact", "003NOTE"),)


def test_category_option_ignores_other_purchases():
    rule = ReplacementCycle(id="rc", category="vehicle")
    profile = who(years=1, purchases=(GOLF, CHARGER))
    # Without the filter the wallbox (2026) would be the "current product".
    assert run(rule, context(attempt(purpose="trade_in"), profile)) is None
    unfiltered = ReplacementCycle(id="rc")
    assert "wallbox" in run(unfiltered, context(attempt(purpose="trade_in"), profile)).message
