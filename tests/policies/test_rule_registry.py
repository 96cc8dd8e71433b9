"""The registry of rule kinds: every kind of SPEC §8, loadable from YAML with clear errors."""

from __future__ import annotations

import textwrap
from dataclasses import replace

import pytest

from policies import PolicyError, default_policy_path, load_policy, parse_policy
from policies.rules import KINDS

SPEC_KINDS = {
    "consent", "purchase_cooldown", "already_owned", "replacement_cycle", "existing_customer",
    "relationship_owner", "frequency_cap", "duplicate_content", "contact_window",
    "preferred_channel", "prerequisite", "service_due", "campaign_registry", "open_case",
    "custom",
}


def test_every_kind_of_the_spec_is_registered():
    assert set(KINDS) == SPEC_KINDS


def test_default_policy_loads_with_the_real_kinds():
    policy = load_policy(default_policy_path())
    assert {r.kind for r in policy.rules} == SPEC_KINDS
    assert policy.ledger_window.days == 120


def test_options_of_every_kind_load_from_yaml():
    text = textwrap.dedent("""
        rules:
          - {id: a, kind: consent, exempt: [transactional, survey]}
          - {id: b, kind: purchase_cooldown, days: 14d, any_product: true}
          - {id: c, kind: already_owned, lookback: 365d}
          - {id: d, kind: replacement_cycle, default_years: 6, category: vehicle}
          - {id: e, kind: existing_customer, lookback: 180d, effect: reroute}
          - id: f
            kind: relationship_owner
            owners: {customer: account.owner}
            always_allowed: [billing, "service*"]
          - {id: g, kind: frequency_cap, max: 2, window: 1w, per_sender: true, effect: defer}
          - {id: h, kind: duplicate_content, window: 60d}
          - {id: i, kind: contact_window, hours: "22:00-06:00", days: [sat, sun]}
          - {id: j, kind: preferred_channel}
          - id: k
            kind: prerequisite
            requires: [{purpose: invoice, within: 90d}]
          - {id: l, kind: service_due, lead_days: 14d, lead_miles: 500, miles_per_year: 9000,
             effect: defer}
          - {id: m, kind: campaign_registry}
          - {id: n, kind: open_case, effect: reroute}
          - id: o
            kind: custom
            condition: person.stage == "prospect"
            effect: defer
            defer_for: 2d
            message: Prospects wait two days.
    """)
    policy = parse_policy([("p.yaml", text)])
    rules = {r.id: r for r in policy.rules}
    assert rules["d"].default_years == 6.0
    assert rules["f"].owners == (("customer", "account.owner"),)
    assert rules["i"].hours.text == "22:00-06:00"
    assert rules["i"].days == (5, 6)
    assert rules["k"].requires[0].within.days == 90
    assert rules["o"].condition.source == 'person.stage == "prospect"'


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ("{id: x, kind: contact_window, hours: 8-21}",
         "p.yaml:3: rule x: hours: not hours: '8-21'"),
        ("{id: x, kind: frequency_cap, max: 0}", "p.yaml:3: rule x: max: must be at least 1"),
        ("{id: x, kind: prerequisite, requires: [{purpose: invoice}]}",
         "p.yaml:3: rule x: requires[0]: expected exactly purpose and within"),
        ("{id: x, kind: custom, condition: 'true'}",
         "p.yaml:3: rule x: message: kind custom needs a message"),
        ("{id: x, kind: custom, condition: 'person.', message: m}",
         "p.yaml:3: rule x: condition: not valid CEL"),
        ("{id: x, kind: relationship_owner, owners: {lead: oem}}",
         "p.yaml:3: rule x: owners: unknown stage 'lead'"),
        ("{id: x, kind: frequency_cap, effect: reroute}",
         "p.yaml:3: rule x: effect 'reroute' is not possible for kind frequency_cap"),
        ("{id: x, kind: custom}", "p.yaml:3: rule x: condition is required for kind custom"),
    ],
    ids=["bad-hours", "zero-max", "requirement-without-window", "custom-without-message",
         "custom-bad-cel", "unknown-stage", "impossible-effect", "custom-without-condition"],
)
def test_bad_options_are_reported_with_file_and_line(rule, message):
    with pytest.raises(PolicyError) as info:
        parse_policy([("p.yaml", f"rules:\n\n  - {rule}\n")])
    assert any(str(p).startswith(message) for p in info.value.problems), info.value.problems


def test_loaded_rules_survive_replace_as_simulations_do():
    # `guard policy simulate` and monitor switches rebuild rules with changed
    # fields; options converted at load time must convert again unchanged.
    text = textwrap.dedent("""
        rules:
          - {id: i, kind: contact_window, hours: "22:00-06:00", days: [sat, sun]}
          - {id: f, kind: relationship_owner, owners: {customer: account.owner}}
          - {id: o, kind: custom, condition: "true", message: m}
    """)
    rules = [*load_policy(default_policy_path()).rules, *parse_policy([("p.yaml", text)]).rules]
    for rule in rules:
        again = replace(rule, mode="monitor")
        assert again.mode == "monitor"
        assert {k: getattr(again, k) for k in rule.option_fields()} == {
            k: getattr(rule, k) for k in rule.option_fields()}, rule.id
