"""prerequisite: no collections before an invoice and a payment reminder went out."""

from __future__ import annotations

import pytest

from policies.model import Invoice
from policies.rules.base import ConfigError, Duration
from policies.rules.prerequisite import Prerequisite, Requirement
from tests.policies.helpers import at, attempt, context, person, run, scope, src, touch

RULE = Prerequisite(
    id="collections-need-reminders", scope=scope(purposes=["collections"]),
    requires=[{"purpose": "invoice", "within": "90d"},
              {"purpose": "payment_reminder", "within": "30d"}],
)
SENT = Invoice(number="INV-1", sent_at=at("2026-09-01T08:00:00"),
               source=src("Invoice", "INV-1", "billing"))


def collections():
    return attempt(purpose="collections", sender="billing", channel="mail")


@pytest.mark.parametrize(
    ("ledger", "invoices", "blocked"),
    [
        ((), (), True),
        ((touch("2026-09-01", purpose="invoice"), touch("2026-11-01", purpose="payment_reminder")),
         (), False),
        ((touch("2026-11-01", purpose="payment_reminder"),), (SENT,), False),
        ((touch("2026-11-01", purpose="payment_reminder"),), (), True),
        ((touch("2026-09-01", purpose="invoice"),), (), True),
        ((touch("2026-08-25T10:00:00", purpose="invoice"),
          touch("2026-11-01", purpose="payment_reminder")), (), False),
        ((touch("2026-08-25T09:59:59", purpose="invoice"),
          touch("2026-11-01", purpose="payment_reminder")), (), True),
        ((touch("2026-09-01", purpose="invoice"),
          touch("2026-10-20", purpose="payment_reminder")), (), True),
        ((touch("2026-09-01", purpose="invoice"),
          touch("2026-11-01", purpose="payment_reminder", verdict="block")), (), True),
        ((touch("2026-11-01", purpose="payment_reminder"),),
         (Invoice(number="INV-2", sent_at=None),), True),
    ],
    ids=["nothing-sent", "both-in-ledger", "invoice-from-billing-data", "no-invoice",
         "no-reminder", "invoice-exactly-90-days-ago", "invoice-just-too-old",
         "reminder-too-old", "blocked-reminder-never-went-out", "invoice-never-sent"],
)
def test_truth_table(ledger, invoices, blocked):
    finding = run(RULE, context(collections(), person(invoices=invoices), ledger))
    assert (finding is not None) == blocked
    if blocked:
        assert (finding.rule, finding.kind, finding.effect) == (
            "collections-need-reminders", "prerequisite", "block")


def test_message_names_what_is_missing_and_what_was_sent():
    finding = run(RULE, context(collections(), person(invoices=(SENT,))))
    assert finding.message == (
        "No payment reminder was sent in the last 30 days (an invoice went out on 2026-09-01); "
        "collection notices need an invoice within 90 days and a payment reminder within "
        "30 days first.")
    assert finding.evidence == (src("Invoice", "INV-1", "billing"),)


def test_message_when_nothing_was_sent():
    finding = run(RULE, context(collections(), person()))
    assert finding.message.startswith("No invoice was sent in the last 90 days and no payment "
                                      "reminder in the last 30 days;")


def test_requirements_are_parsed_once():
    assert RULE.requires == (Requirement("invoice", Duration(days=90)),
                             Requirement("payment_reminder", Duration(days=30)))


@pytest.mark.parametrize(
    ("requires", "error"),
    [
        ([], "requires: expected a list"),
        ("invoice", "requires: expected a list"),
        ([{"purpose": "invoice"}], "requires[0]: expected exactly purpose and within"),
        ([{"purpose": "invoice", "within": "soon"}], "requires[0].within: not a duration"),
        ([{"purpose": 3, "within": "3d"}], "requires[0].purpose: expected a purpose name"),
    ],
    ids=["empty", "not-a-list", "missing-within", "bad-duration", "bad-purpose"],
)
def test_bad_requires_names_the_key(requires, error):
    with pytest.raises(ConfigError) as info:
        Prerequisite(id="p", requires=requires)
    assert info.value.key == "requires"
    assert error in info.value.message
