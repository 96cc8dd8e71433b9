"""existing_customer: no prospecting of people whose account already buys from us."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from policies.model import Account, Contract, Purchase
from policies.rules.base import Duration
from policies.rules.existing_customer import ExistingCustomer
from tests.policies.helpers import at, attempt, context, person, run, scope, src

ACME = Account(id="acc_1", name="Acme", owner="sales:j.smith", source=src("Account", "001ACME"))
LEASE = Contract(status="active", start=date(2024, 4, 1), end=date(2027, 3, 31),
                 owner="sales:j.smith", product="fleet-lease", source=src("Contract", "800LEASE"))


def contract(**changes):
    return replace(LEASE, **changes)


def rule(effect="block"):
    return ExistingCustomer(id="existing-customer", effect=effect, lookback=Duration(days=365),
                            scope=scope(purposes=["prospecting"]))


@pytest.mark.parametrize(
    ("contracts", "purchases", "blocked"),
    [
        ((LEASE,), (), True),
        ((contract(status="ended"),), (), False),
        ((contract(end=date(2026, 11, 23)),), (), True),
        ((contract(end=date(2026, 11, 22)),), (), False),
        ((contract(end=None),), (), True),
        ((contract(start=date(2027, 1, 1)),), (), False),
        ((), (Purchase(product="x", at=at("2026-01-10T00:00:00"), via_account=True),), True),
        ((), (Purchase(product="x", at=at("2025-11-23T10:00:00")),), False),
        ((), (Purchase(product="x", at=at("2025-11-23T10:00:01")),), True),
        ((), (), False),
    ],
    ids=["active-contract", "ended-contract", "ends-today-still-active", "ended-yesterday",
         "open-ended", "not-started-yet", "account-bought-recently", "bought-exactly-a-year-ago",
         "bought-just-inside-a-year", "no-relationship"],
)
def test_truth_table(contracts, purchases, blocked):
    profile = person(account=ACME, contracts=contracts, purchases=purchases)
    finding = run(rule(), context(attempt(purpose="prospecting", sender="oem"), profile))
    assert (finding is not None) == blocked
    if blocked:
        assert (finding.rule, finding.effect) == ("existing-customer", "block")


def test_block_message_names_contract_date_and_owner():
    profile = person(account=ACME, contracts=(LEASE,))
    finding = run(rule(), context(attempt(purpose="prospecting"), profile))
    assert finding.message == ("Acme holds an active contract for fleet-lease until 2027-03-31 "
                               "(owner sales:j.smith); they are an existing customer, so no "
                               "prospecting contacts.")
    assert finding.evidence == (src("Contract", "800LEASE"), src("Account", "001ACME"))
    assert finding.reroute is None


def test_reroute_goes_to_contract_owner_and_notifies_them():
    profile = person(account=ACME, contracts=(contract(owner="sales:k.lee"),))
    finding = run(rule("reroute"), context(attempt(purpose="prospecting"), profile))
    assert finding.effect == "reroute"
    assert finding.reroute == {"owner": "sales:k.lee"}
    assert finding.notify == "sales:k.lee"
    assert finding.message.endswith("prospecting contacts go to the account owner sales:k.lee "
                                    "instead.")


def test_reroute_falls_back_to_account_owner():
    profile = person(account=ACME, contracts=(contract(owner=None),))
    finding = run(rule("reroute"), context(attempt(purpose="prospecting"), profile))
    assert finding.reroute == {"owner": "sales:j.smith"}


def test_reroute_without_any_owner_blocks():
    profile = person(account=Account(id="acc_2", name="Beta"), contracts=(contract(owner=None),))
    finding = run(rule("reroute"), context(attempt(purpose="prospecting"), profile))
    assert finding.effect == "block"
    assert finding.reroute is None
