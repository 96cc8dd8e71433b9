"""open_case: no marketing while a case is open; the case owner is told."""

from __future__ import annotations

import pytest

from policies.model import Case
from policies.rules.open_case import OpenCase
from tests.policies.helpers import at, attempt, context, person, run, scope, src

MARKETING = scope(categories=["marketing", "sales"])
BRAKES = Case(status="open", owner="service:lena", subject="Brake noise after service",
              at=at("2026-11-01T08:00:00"), source=src("Case", "500BRAKE"))


def case(**changes):
    values = {f: getattr(BRAKES, f) for f in BRAKES.__dataclass_fields__}
    values.update(changes)
    return Case(**values)


@pytest.mark.parametrize(
    ("cases", "purpose", "found"),
    [
        ((BRAKES,), "promotion", True),
        ((case(status="closed"),), "promotion", False),
        ((case(status="Closed"),), "promotion", False),
        ((case(status="resolved"),), "promotion", False),
        ((case(status="Escalated"),), "promotion", True),
        ((case(status="closed"), BRAKES), "trade_in", True),
        ((BRAKES,), "service_reminder", False),
        ((BRAKES,), "safety_recall", False),
        ((), "promotion", False),
    ],
    ids=["open-case", "closed", "closed-capitalised", "resolved", "unknown-status-is-open",
         "one-of-several-open", "service-out-of-scope", "recall-exempt", "no-cases"],
)
def test_truth_table(cases, purpose, found):
    finding = run(OpenCase(id="open-complaint", scope=MARKETING),
                  context(attempt(purpose=purpose), person(cases=cases)))
    assert (finding is not None) == found
    if found:
        assert (finding.rule, finding.kind, finding.effect) == (
            "open-complaint", "open_case", "block")
        assert finding.notify == "service:lena"


def test_block_message_names_case_date_and_owner():
    finding = run(OpenCase(id="oc"), context(attempt(purpose="promotion"), person(cases=(BRAKES,))))
    assert finding.message == ("Has an open case ('Brake noise after service') since 2026-11-01, "
                               "handled by service:lena; no promotions until it is closed.")
    assert finding.evidence == (src("Case", "500BRAKE"),)


def test_reroute_goes_to_the_case_owner():
    finding = run(OpenCase(id="oc", effect="reroute"),
                  context(attempt(purpose="promotion"), person(cases=(BRAKES,))))
    assert finding.effect == "reroute"
    assert finding.reroute == {"owner": "service:lena"}
    assert finding.notify == "service:lena"


def test_reroute_without_a_case_owner_blocks():
    finding = run(OpenCase(id="oc", effect="reroute"),
                  context(attempt(purpose="promotion"), person(cases=(case(owner=None),))))
    assert finding.effect == "block"
    assert finding.notify is None
