"""The shipped default policy passes its shipped story examples, and a wrong one fails."""

from __future__ import annotations

import shutil

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.cli import main
from policies import PolicyError, default_policy_path, load_policy
from policies.casebook import load_cases, run_cases

EXAMPLES = default_policy_path().parent / "examples"


@pytest.fixture(scope="module")
def policy():
    return load_policy(default_policy_path())


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.delenv("GUARD_POLICY", raising=False)
    return CliRunner()


def test_guard_policy_test_passes_the_shipped_examples(runner):
    result = runner.invoke(main, ["policy", "test"])
    assert result.exit_code == 0, result.output
    assert "0 failed" in result.output.splitlines()[-1]


def outcomes(policy):
    return run_cases(policy, load_cases(EXAMPLES, policy))


@pytest.mark.parametrize(
    "rule",
    ["consent", "open-complaint", "purchase-cooldown", "already-owned", "replacement-cycle",
     "existing-customer", "relationship-owner", "registered-campaigns", "frequency-cap",
     "duplicate-content", "call-hours", "preferred-channel", "collections-need-reminders",
     "service-due", "unknown-recipient", "erased"],
)
def test_every_default_rule_is_shown_firing_by_an_example(policy, rule):
    fired = [o for o in outcomes(policy) if rule in o.decision.rules and o.passed]
    assert fired, f"no passing example shows {rule} firing"


def test_story_messages_name_fact_date_and_window_with_evidence(policy):
    by_name = {o.case.name: o.decision for o in outcomes(policy)}
    sale = by_name["Two days after buying an A4, head office offers him the same car cheaper"]
    cooldown = next(r for r in sale.reasons if r.rule == "purchase-cooldown")
    assert "audi-a4" in cooldown.message and "2026-11-21" in cooldown.message
    assert "30 days" in cooldown.message
    assert [e.to_dict() for e in cooldown.evidence] == [
        {"system": "salesforce", "type": "Opportunity", "id": "006Ws000001"}]


def test_a_wrong_expectation_fails_with_exit_1(runner, tmp_path):
    shutil.copy(default_policy_path(), tmp_path / "policy.yaml")
    examples = tmp_path / "examples"
    examples.mkdir()
    text = (EXAMPLES / "stories.yaml").read_text()
    wrong = text.replace("expect: {verdict: block, rules: [duplicate-content]}",
                         "expect: {verdict: allow, rules: []}")
    assert wrong != text
    (examples / "stories.yaml").write_text(wrong)
    result = runner.invoke(main, ["policy", "test", str(tmp_path / "policy.yaml")])
    assert result.exit_code == 1
    assert "FAIL The same template from a second dealership in one week" in result.output
    assert "expected verdict allow, got block" in result.output
    assert "1 failed" in result.output.splitlines()[-1]


FIELD = st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(
    ["email", "price_offer", "oem", "2026-11-23T10:00:00Z", "2026-13-45", "block", "allow"])
RECORD = st.dictionaries(st.sampled_from(["at", "product", "status", "channel", "purpose",
                                          "sender", "id", "x", "next_due", "source"]),
                         FIELD | st.lists(FIELD, max_size=2), max_size=4)
CASE = st.fixed_dictionaries({}, optional={
    "name": FIELD,
    "now": FIELD,
    "given": st.fixed_dictionaries({}, optional={
        "profile": st.dictionaries(
            st.sampled_from(["id", "emails", "purchases", "consents", "account", "stage",
                             "do_not_market_until", "erased", "nonsense"]),
            FIELD | st.lists(RECORD | FIELD, max_size=2) | RECORD, max_size=4),
        "ledger": st.lists(RECORD | FIELD, max_size=2) | FIELD,
        "campaigns": st.lists(RECORD | FIELD, max_size=2) | FIELD,
    }) | FIELD,
    "attempt": st.dictionaries(st.sampled_from(["channel", "purpose", "sender", "to", "at",
                                                "product", "x"]), FIELD, max_size=5) | FIELD,
    "expect": st.dictionaries(st.sampled_from(["verdict", "rules", "reroute", "not_before",
                                               "notify", "y"]),
                              FIELD | st.lists(FIELD, max_size=2), max_size=4) | FIELD,
})


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(CASE, max_size=3) | FIELD)
def test_any_case_file_runs_or_raises_policy_error(policy, tmp_path_factory, cases):
    path = tmp_path_factory.mktemp("cases") / "cases.yaml"
    path.write_text(yaml.safe_dump({"cases": cases}))
    try:
        loaded = load_cases(path, policy)
    except PolicyError as exc:
        assert all(str(p).startswith(f"{path}:") for p in exc.problems)
        return
    for outcome in run_cases(policy, loaded):
        assert outcome.decision.verdict in ("allow", "defer", "reroute", "block")


def test_a_campaign_whose_id_is_not_text_is_a_problem_with_its_line(policy, tmp_path):
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump({"cases": [{
        "name": "list id", "given": {"campaigns": [{"id": ["a", "b"], "purpose": "promotion"}]},
        "attempt": {"channel": "email", "purpose": "promotion", "sender": "oem"},
        "expect": {"verdict": "allow"}}]}))
    with pytest.raises(PolicyError) as raised:
        load_cases(path, policy)
    assert any("given.campaigns: id must be text" in str(p) and str(p).startswith(f"{path}:")
               for p in raised.value.problems)
