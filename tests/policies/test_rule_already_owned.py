"""already_owned: no offer for what the person already bought."""

from __future__ import annotations

import pytest

from policies.model import Purchase
from policies.rules.already_owned import AlreadyOwned
from policies.rules.base import Duration
from tests.policies.helpers import NOW, at, attempt, context, person, run, scope, src

TICKET = Purchase(product="event:dune-3-premiere", at=at("2026-10-02T18:30:00"),
                  source=src("Order", "T-7781", "ticketing"))
AGE = int((NOW - TICKET.at).total_seconds())


@pytest.mark.parametrize(
    ("product", "lookback", "blocked"),
    [
        ("event:dune-3-premiere", None, True),
        ("event:other-film", None, False),
        (None, None, False),
        ("event:dune-3-premiere", Duration(days=60), True),
        ("event:dune-3-premiere", Duration(days=30), False),
        ("event:dune-3-premiere", Duration(seconds=AGE), False),
        ("event:dune-3-premiere", Duration(seconds=AGE + 1), True),
    ],
    ids=["same-event", "other-event", "no-product", "within-lookback", "outside-lookback",
         "exactly-at-lookback-edge", "just-inside-lookback"],
)
def test_truth_table(product, lookback, blocked):
    rule = AlreadyOwned(id="already-owned", effect="block", lookback=lookback,
                        scope=scope(purposes=["event_offer"]))
    ctx = context(attempt(purpose="event_offer", product=product), person(purchases=(TICKET,)))
    finding = run(rule, ctx)
    assert (finding is not None) == blocked
    if blocked:
        assert (finding.rule, finding.effect) == ("already-owned", "block")
        assert finding.evidence == (src("Order", "T-7781", "ticketing"),)


def test_message_names_the_purchase_and_its_date():
    rule = AlreadyOwned(id="already-owned", scope=scope(purposes=["event_offer"]))
    ctx = context(attempt(purpose="event_offer", product="event:dune-3-premiere"),
                  person(purchases=(TICKET,)))
    assert run(rule, ctx).message == ("Already bought event:dune-3-premiere on 2026-10-02; no "
                                      "event offers for what they already have.")


def test_message_names_the_lookback_window():
    rule = AlreadyOwned(id="owned", lookback=Duration(days=90))
    ctx = context(attempt(product="event:dune-3-premiere"), person(purchases=(TICKET,)))
    assert "a product they bought in the last 90 days" in run(rule, ctx).message
