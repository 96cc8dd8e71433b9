"""``guard policy check`` and ``guard policy test`` as an admin runs them."""

from __future__ import annotations

import json
import textwrap

import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.cli.policy import run_check
from guard.errors import InvalidField
from policies import parse_policy
from tests.policies.standin_kinds import KINDS

BROKEN = """\
senders: [oem, "dealer:*"]
colour: blue
defaults:
  timezone: Mars/Olympus
rules:
  - id: cooldown
    kind: cooldown_after_purchase
  - id: offers
    kind: custom
    purposes: [loyalty_offer]
    when: 'person.stage =='
  - id: cap
    kind: frequency_cap
    max: many
    windw: 30d
  - id: collections
    kind: prerequisite
    purposes: [collections]
    requires:
      - {purpose: invoice, within: a while}
"""


@pytest.fixture
def runner(monkeypatch):
    monkeypatch.delenv("GUARD_POLICY", raising=False)
    return CliRunner()


def test_check_points_at_every_broken_line(runner, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = runner.invoke(main, ["policy", "check", str(path)])
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert [line.split(": ", 1)[0] for line in lines] == [
        f"{path}:{n}" for n in (2, 4, 7, 8, 10, 11, 14, 15, 19)]
    assert "unknown key 'colour'" in lines[0]
    assert "unknown time zone 'Mars/Olympus'" in lines[1]
    assert "unknown kind 'cooldown_after_purchase'" in lines[2]
    assert "rule offers: condition is required for kind custom" in lines[3]
    assert "unknown purpose 'loyalty_offer'" in lines[4]
    assert "not valid CEL" in lines[5]
    assert "rule cap: max: expected a whole number, got 'many'" in lines[6]
    assert "rule cap: unknown key 'windw' for kind frequency_cap" in lines[7]
    assert "rule collections: requires" in lines[8]


def test_check_reports_ok_with_rule_count_and_version(runner, tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("senders: [oem]\nrules: []\n")
    result = runner.invoke(main, ["policy", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 0 rules, version sha256:")


def test_check_without_path_uses_guard_policy(runner, tmp_path, monkeypatch):
    path = tmp_path / "p.yaml"
    path.write_text("rulez: []\n")
    monkeypatch.setenv("GUARD_POLICY", str(path))
    result = runner.invoke(main, ["policy", "check"])
    assert result.exit_code == 1
    assert result.output == f"{path}:1: unknown key 'rulez' (expected one of description, " \
                            "purposes, senders, ownership, defaults, rules)\n"


def test_shipped_default_policy_is_valid(runner):
    result = runner.invoke(main, ["policy", "check"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: ")


def test_policy_test_reports_mistakes_in_case_files(runner, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("senders: [oem]\nrules: []\n")
    examples = tmp_path / "examples"
    examples.mkdir()
    (examples / "cases.yaml").write_text(textwrap.dedent("""\
        cases:
          - name: typo in the attempt
            now: 2026-11-23T10:00:00Z
            given:
              profile: {purchase: []}
            attempt: {channel: fax, purpose: price_offer, sender: oem}
            expect: {verdict: maybe, rules: []}
        """))
    result = runner.invoke(main, ["policy", "test", str(policy)])
    assert result.exit_code == 1
    cases = examples / "cases.yaml"
    assert result.output.splitlines() == [
        f"{cases}:5: case 'typo in the attempt': given.profile: unknown key 'purchase' "
        "(expected one of " + ", ".join(
            ["id", "emails", "phones", "crm_ids", "name", "stage", "owner", "timezone",
             "preferred_channel", "contact_hours", "replacement_cycle_years",
             "do_not_market_until", "account", "purchases", "contracts", "consents", "cases",
             "services", "invoices", "field_sources", "sources", "erased"]) + ")",
        f"{cases}:6: case 'typo in the attempt': attempt.channel: unknown channel 'fax'",
        f"{cases}:7: case 'typo in the attempt': expect.verdict: expected one of "
        "allow, defer, reroute, block, got 'maybe'",
    ]


def test_policy_test_passes_and_fails_per_case(runner, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("senders: [oem]\nrules: []\ndefaults: {unknown_recipient: block}\n")
    cases = tmp_path / "cases.yaml"
    cases.write_text(textwrap.dedent("""\
        cases:
          - name: a known person is allowed
            now: 2026-11-23T10:00:00Z
            given: {profile: {emails: [anna@example.com]}}
            attempt: {channel: email, purpose: newsletter, sender: oem}
            expect: {verdict: allow, rules: []}
          - name: a stranger is wrongly expected to pass
            now: 2026-11-23T10:00:00Z
            attempt: {channel: email, to: who@example.com, purpose: newsletter, sender: oem}
            expect: {verdict: allow, rules: []}
        """))
    result = runner.invoke(main, ["policy", "test", str(policy), "--examples", str(cases)])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "PASS a known person is allowed (allow: no rule)",
        f"FAIL a stranger is wrongly expected to pass ({cases}:7)",
        "     expected verdict allow, got block",
        "     expected rules [], got [unknown-recipient]",
        "     - unknown-recipient (block): who@example.com matches no known person; "
        "under this policy unknown recipients are not contacted.",
        "1 passed, 1 failed",
    ]


def test_policy_test_without_cases_fails(runner, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("rules: []\n")
    (tmp_path / "examples").mkdir()
    result = runner.invoke(main, ["policy", "test", str(policy)])
    assert result.exit_code == 1
    assert "no *.yaml example case files here" in result.output


POLICY = parse_policy([("p.yaml", "senders: [oem]\nrules:\n  - {id: stop, kind: fixed}\n")],
                      kinds=KINDS)


def test_run_check_decides_from_plain_data():
    decision = run_check(
        {"id": "per_anna", "emails": ["anna@example.com"]},
        {"channel": "email", "purpose": "newsletter", "sender": "oem"},
        POLICY, None,
        [{"at": "2026-11-20T10:00:00Z", "channel": "email", "purpose": "newsletter",
          "sender": "oem"}],
    )
    assert (decision.verdict, decision.rules, decision.person) == ("block", ("stop",), "per_anna")


@pytest.mark.parametrize(
    ("attempt", "field"),
    [
        ({"purpose": "newsletter", "sender": "oem"}, "channel"),
        ({"channel": "fax", "purpose": "newsletter", "sender": "oem"}, "channel"),
        ({"channel": "email", "purpose": "gossip", "sender": "oem"}, "purpose"),
        ({"channel": "email", "purpose": "newsletter", "sender": "dealer:x"}, "sender"),
        ({"channel": "email", "purpose": "newsletter", "sender": "oem", "at": "soon"}, "at"),
        ({"channel": "email", "purpose": "newsletter", "sender": "oem", "product": 7},
         "product"),
    ],
    ids=["missing-channel", "unknown-channel", "unknown-purpose", "unknown-sender",
         "bad-time", "product-not-text"],
)
def test_run_check_names_the_bad_field(attempt, field):
    with pytest.raises(InvalidField) as info:
        run_check({"id": "per_anna", "emails": ["a@example.com"]}, attempt, POLICY)
    assert info.value.field == field


def test_run_check_names_bad_ledger_entries():
    with pytest.raises(InvalidField) as info:
        run_check({"id": "p", "emails": ["a@example.com"]},
                  {"channel": "email", "purpose": "newsletter", "sender": "oem"},
                  POLICY, None, [{"at": "yesterday", "channel": "email"}])
    assert info.value.field == "ledger[0]"


def test_guard_check_with_profile_prints_the_decision(runner, tmp_path):
    profile = tmp_path / "anna.json"
    profile.write_text(json.dumps({"id": "per_anna", "emails": ["anna@example.com"]}))
    policy = tmp_path / "p.yaml"
    policy.write_text("rules: []\n")
    result = runner.invoke(main, [
        "check", "--profile", str(profile), "--policy", str(policy),
        "--attempt", '{"channel": "email", "purpose": "newsletter", "sender": "oem"}',
        "--now", "2026-11-23T10:00:00Z"])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert decision["verdict"] == "allow"
    assert decision["person"] == "per_anna"
    assert decision["policy_version"].startswith("sha256:")
