"""Loading and validating policy files: every problem, with its line, all at once."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from policies import PolicyError, load_policy, parse_policy
from policies.cel import Condition
from policies.policy import Problem
from tests.policies.standin_kinds import KINDS


def parse(text: str, name: str = "policy.yaml"):
    return parse_policy([(name, textwrap.dedent(text))], kinds=KINDS)


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        parse(text)
    return [str(p) for p in info.value.problems]


GOOD = """\
purposes:
  loyalty_offer: marketing
senders: [oem, sales, billing, "dealer:*"]
ownership:
  prospect: oem
  customer: person.owner
defaults: {timezone: Europe/Berlin, region: DE, unknown_recipient: allow}
rules:
  - id: cap
    kind: cap
    categories: [marketing]
    channels: [email, sms]
    senders: ["dealer:*", oem]
    max: 2
    window: 14d
    per_sender: true
    share: 1
    exempt: transactional
    effect: defer
  - id: watch
    kind: fixed
    mode: monitor
    purposes: [loyalty_offer]
    when: 'person.stage == "customer"'
    message: "Loyal customer: {default}"
"""


def test_good_policy_builds_rules_with_converted_options():
    policy = parse(GOOD)
    cap, watch = policy.rules
    assert (cap.id, cap.kind, cap.max, cap.window, cap.per_sender) == (
        "cap", "cap", 2, timedelta(days=14), True)
    assert cap.share == 1.0 and cap.exempt == ("transactional",) and cap.effect == "defer"
    assert cap.scope.categories == {"marketing"} and cap.scope.senders == ("dealer:*", "oem")
    assert watch.mode == "monitor" and watch.effect == "block"
    assert watch.when == Condition('person.stage == "customer"')
    assert policy.category("loyalty_offer") == "marketing"
    assert policy.category("price_offer") == "marketing"
    assert policy.category("collections") == "billing"
    assert policy.category("nonsense") is None
    assert policy.ownership == {"prospect": "oem", "customer": "person.owner"}
    assert (policy.defaults.timezone, policy.defaults.region,
            policy.defaults.unknown_recipient) == ("Europe/Berlin", "DE", "allow")
    assert policy.channels == ("email", "sms", "call", "mail", "push")


@pytest.mark.parametrize(
    ("sender", "known"),
    [("oem", True), ("dealer:munich", True), ("billing", True), ("service", False),
     ("dealer", False), ("", False)],
    ids=["unit", "pattern", "another-unit", "undeclared", "prefix-only", "empty"],
)
def test_knows_sender_by_name_or_pattern(sender, known):
    assert parse(GOOD).knows_sender(sender) is known


# Each case: a policy text and the exact problems (line: message fragment) it must report.
PROBLEM_CASES = [
    ("unknown-top-level-key", "rules: []\nrulez: []\n", [(2, "unknown key 'rulez'")]),
    ("unknown-rule-key", """\
        rules:
          - id: a
            kind: cap
            maxx: 3
        """, [(4, "rule a: unknown key 'maxx' for kind cap")]),
    ("missing-required-option", """\
        rules:
          - id: a
            kind: needs
        """, [(2, "rule a: condition is required for kind needs")]),
    ("wrong-type-int", """\
        rules:
          - id: a
            kind: cap
            max: lots
        """, [(4, "rule a: max: expected a whole number, got 'lots'")]),
    ("wrong-type-bool", """\
        rules:
          - id: a
            kind: cap
            per_sender: "yes"
        """, [(4, "rule a: per_sender: expected true or false")]),
    ("wrong-type-list", """\
        rules:
          - id: a
            kind: cap
            exempt: {a: 1}
        """, [(4, "rule a: exempt: expected a list of names")]),
    ("structured-option", """\
        rules:
          - id: a
            kind: needs
            condition: x
            requires:
              - purpose: invoice
                within: soon
        """, [(5, "rule a: requires: not a duration: 'soon'")]),
    ("bad-duration", """\
        rules:
          - id: a
            kind: cap

            window: 30 days
        """, [(5, "rule a: window: not a duration: '30 days'")]),
    ("unknown-kind", """\
        rules:
          - id: a
            kind: cooldown
        """, [(3, "rule a: unknown kind 'cooldown'")]),
    ("missing-kind", "rules:\n  - id: a\n", [(2, "rule a: needs a kind")]),
    ("missing-id", "rules:\n  - kind: cap\n", [(2, "every rule needs an id")]),
    ("duplicate-id", """\
        rules:
          - id: a
            kind: cap
          - id: a
            kind: fixed
        """, [(4, "rule a: id already used at policy.yaml:2")]),
    ("unknown-purpose", """\
        rules:
          - id: a
            kind: cap
            purposes: [price_offer, loyalty]
        """, [(4, "rule a: purposes: unknown purpose 'loyalty'")]),
    ("unknown-category", """\
        rules:
          - id: a
            kind: cap
            categories: marketting
        """, [(4, "rule a: categories: unknown category 'marketting'")]),
    ("unknown-channel", """\
        rules:
          - id: a
            kind: cap
            channels: [email, fax]
        """, [(4, "rule a: channels: unknown channel 'fax'")]),
    ("unknown-sender", """\
        senders: [oem, "dealer:*"]
        rules:
          - id: a
            kind: cap
            senders: ["dealer:munich", callcenter]
        """, [(5, "rule a: senders: unknown sender 'callcenter'")]),
    ("effect-not-allowed", """\
        rules:
          - id: a
            kind: cap
            effect: reroute
        """, [(4, "rule a: effect 'reroute' is not possible for kind cap")]),
    ("bad-cel", """\
        rules:
          - id: a
            kind: fixed
            when: 'person.stage =='
        """, [(4, "rule a: when: not valid CEL")]),
    ("cel-unknown-variable", """\
        rules:
          - id: a
            kind: fixed
            when: 'persn.stage == "customer"'
        """, [(4, "rule a: when: unknown variable 'persn'")]),
    ("bad-mode", """\
        rules:
          - id: a
            kind: fixed
            mode: enforcing
        """, [(4, "rule a: mode must be enforce or monitor")]),
    ("bad-purpose-category", "purposes:\n  loyalty: marketting\n",
     [(2, "purposes.loyalty: unknown category 'marketting'")]),
    ("purpose-changes-category", "purposes:\n  invoice: marketing\n",
     [(2, "purposes.invoice: already in category 'billing'")]),
    ("bad-timezone", "defaults:\n  timezone: Europe/Atlantis\n",
     [(2, "defaults.timezone: unknown time zone 'Europe/Atlantis'")]),
    ("bad-region", "defaults:\n  region: XX\n", [(2, "defaults.region: unknown region 'XX'")]),
    ("bad-unknown-recipient", "defaults:\n  unknown_recipient: reroute\n",
     [(2, "defaults.unknown_recipient: expected one of allow, block")]),
    ("unknown-default", "defaults:\n  tz: UTC\n", [(2, "defaults: unknown key 'tz'")]),
    ("unknown-stage", "ownership:\n  lead: oem\n", [(2, "ownership: unknown stage 'lead'")]),
    ("unknown-owner", "senders: [oem]\nownership:\n  customer: dealer\n",
     [(3, "ownership.customer: unknown sender 'dealer'")]),
    ("duplicate-yaml-key", "rules: []\ndefaults: {}\nrules: []\n", [(3, "rules: given twice")]),
    ("not-yaml", "rules: [\n  - id: a\n", [(2, "not valid YAML")]),
    ("not-a-mapping", "- a\n- b\n", [(1, "a policy file is a mapping")]),
    ("rules-not-list", "rules: {id: a}\n", [(1, "rules: expected a list of rules")]),
    ("rule-not-mapping", "rules:\n  - cap\n", [(2, "each rule is a mapping")]),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in PROBLEM_CASES],
                         ids=[c[0] for c in PROBLEM_CASES])
def test_each_problem_is_reported_at_its_line(text, expected):
    found = problems(text)
    assert len(found) == len(expected), found
    for (line, fragment), problem in zip(expected, found, strict=True):
        assert problem.startswith(f"policy.yaml:{line}: "), found
        assert fragment in problem, found


def test_all_problems_are_reported_at_once():
    found = problems("""\
        senders: [oem]
        colour: blue
        rules:
          - id: a
            kind: cap
            max: many
            channels: [fax]
          - id: b
            kind: nope
          - id: c
            kind: fixed
            when: '1 +'
            senders: [dealer]
        """)
    assert [p.split(": ", 1)[0] for p in found] == [
        "policy.yaml:2", "policy.yaml:6", "policy.yaml:7", "policy.yaml:9", "policy.yaml:12",
        "policy.yaml:13"]


def test_problem_prints_as_file_line_message():
    assert str(Problem("p.yaml", 7, "rule a: bad")) == "p.yaml:7: rule a: bad"


def test_folder_merges_files_in_name_order(tmp_path):
    (tmp_path / "20-rules.yaml").write_text(
        "rules:\n  - id: loyal\n    kind: fixed\n    purposes: [loyalty_offer]\n"
        "    senders: [callcenter]\n")
    (tmp_path / "10-base.yml").write_text(
        "senders: [oem]\npurposes: {loyalty_offer: marketing}\n"
        "rules:\n  - id: cap\n    kind: cap\n")
    (tmp_path / "30-more.yaml").write_text("senders: [callcenter]\n")
    (tmp_path / "notes.txt").write_text("not a policy")
    policy = load_policy(tmp_path, kinds=KINDS)
    assert [r.id for r in policy.rules] == ["cap", "loyal"]
    assert policy.senders == ("oem", "callcenter")
    assert policy.category("loyalty_offer") == "marketing"
    assert [p.rsplit("/", 1)[1] for p in policy.files] == [
        "10-base.yml", "20-rules.yaml", "30-more.yaml"]


def test_folder_problems_name_their_file(tmp_path):
    (tmp_path / "a.yaml").write_text("rules:\n  - id: x\n    kind: cap\n")
    (tmp_path / "b.yaml").write_text("rules:\n  - id: x\n    kind: cap\n")
    with pytest.raises(PolicyError) as info:
        load_policy(tmp_path, kinds=KINDS)
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path / 'b.yaml'}:2: rule x: id already used at {tmp_path / 'a.yaml'}:2"]


def test_empty_folder_and_missing_file_are_policy_errors(tmp_path):
    with pytest.raises(PolicyError, match="no \\*.yaml"):
        load_policy(tmp_path, kinds=KINDS)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml", kinds=KINDS)


def test_version_changes_with_content_and_only_with_content(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    first = load_policy(path, kinds=KINDS).version
    assert first.startswith("sha256:") and len(first) == len("sha256:") + 64
    assert load_policy(path, kinds=KINDS).version == first
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "p.yaml").write_text(GOOD)
    assert load_policy(other / "p.yaml", kinds=KINDS).version == first
    path.write_text(GOOD.replace("max: 2", "max: 3"))
    assert load_policy(path, kinds=KINDS).version != first


def test_ledger_window_is_the_longest_ledger_window_and_at_least_30_days():
    assert parse("rules: []").ledger_window == timedelta(days=30)
    policy = parse("""\
        rules:
          - id: a
            kind: cap
            window: 8w
          - id: b
            kind: needs
            condition: x
            requires: [{purpose: invoice, within: 90d}]
        """)
    assert policy.ledger_window == timedelta(days=90)
    assert policy.campaign_needed is False


VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=12) | st.sampled_from(
        ["cap", "fixed", "needs", "consent", "30d", "email", "oem", "dealer:*", "marketing",
         "price_offer", "person.stage == 'x'", "1 +", "block", "defer", "monitor"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "kind", "max", "window", "when", "effect", "mode", "purposes",
                         "channels", "senders", "requires", "within", "condition", "x"])
        | st.text(max_size=6), children, max_size=5),
    max_leaves=20,
)
DOCUMENTS = st.fixed_dictionaries({}, optional={
    "purposes": VALUES, "senders": VALUES, "ownership": VALUES, "defaults": VALUES,
    "rules": st.lists(VALUES, max_size=4), "other": VALUES,
})


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(DOCUMENTS)
def test_any_structure_loads_or_raises_policy_error(document):
    text = yaml.safe_dump(document)
    try:
        parse_policy([("fuzz.yaml", text)], kinds=KINDS)
    except PolicyError as exc:
        assert exc.problems
        assert all(str(p).startswith("fuzz.yaml:") for p in exc.problems)


@settings(max_examples=300)
@given(st.text(max_size=200) | st.binary(max_size=100))
def test_any_text_loads_or_raises_policy_error(text):
    try:
        parse_policy([("fuzz.yaml", text)], kinds=KINDS)
    except PolicyError as exc:
        assert exc.problems


def test_recursive_yaml_alias_is_a_policy_error():
    with pytest.raises(PolicyError):
        parse("rules: &a [*a]\n")


def _real_kind_rules():
    from policies.rules import KINDS as REAL

    option_names = sorted({name for kind in REAL.values() for name in kind.option_fields()})
    option_values = st.none() | st.booleans() | st.integers(-3, 100) | st.sampled_from(
        ["30d", "08:00-21:00", "25:00-26:00", "mon", "x", "true", "oem", "person.owner",
         "price_offer", "email", "1 +", 'person.stage == "customer"']) | st.lists(
        st.sampled_from(["mon", "sat", "invoice", "oem", "x"]) | st.dictionaries(
            st.sampled_from(["purpose", "within", "x"]), st.sampled_from(["30d", "invoice", "?"]),
            max_size=2), max_size=3) | st.dictionaries(
        st.sampled_from(["prospect", "customer", "x"]), st.sampled_from(["oem", "y"]),
        max_size=2)
    return st.lists(st.fixed_dictionaries(
        {"id": st.sampled_from(["a", "b", "c"]), "kind": st.sampled_from(sorted(REAL))},
        optional={"effect": st.sampled_from(["block", "reroute", "defer", "allow"]),
                  **{name: option_values for name in option_names}}), max_size=3)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_real_kinds_with_any_options_load_or_raise_policy_error(data):
    rules = data.draw(_real_kind_rules())
    try:
        parse_policy([("fuzz.yaml", yaml.safe_dump({"rules": rules}))])
    except PolicyError as exc:
        assert exc.problems


@pytest.mark.parametrize(
    ("rule", "line", "fragment"),
    [
        ("kind: consent\n    exempt: [transactional, receipts]", 5,
         "rule x: exempt: unknown purpose 'receipts'"),
        ("kind: relationship_owner\n    always_allowed: [billing, collectors]", 5,
         "rule x: always_allowed: unknown sender 'collectors'"),
        ("kind: relationship_owner\n    owners: {customer: franchise}", 5,
         "rule x: owners: unknown sender 'franchise'"),
        ("kind: prerequisite\n    requires: [{purpose: dunning, within: 30d}]", 5,
         "rule x: requires: unknown purpose 'dunning'"),
        ("kind: custom\n    condition: 'true'\n    message: Sent elsewhere.\n"
         "    effect: reroute\n    reroute_to_owner: nobody", 8,
         "rule x: reroute_to_owner: unknown sender 'nobody'"),
    ],
    ids=["consent-exempt", "always-allowed", "owners", "prerequisite-purpose",
         "custom-owner"],
)
def test_names_inside_real_kind_options_must_be_declared(rule, line, fragment):
    text = f"senders: [oem, billing, \"dealer:*\"]\nrules:\n  - id: x\n    {rule}\n"
    with pytest.raises(PolicyError) as info:
        parse_policy([("policy.yaml", text)])
    assert [str(p) for p in info.value.problems] == [f"policy.yaml:{line}: {fragment}"]
