"""``guard policy check|test|simulate`` as an admin runs them."""

from __future__ import annotations

import textwrap

from guard.cli import main
from tests.conftest import person

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


def test_check_points_at_every_broken_line(bare_runner, tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text(BROKEN)
    result = bare_runner.invoke(main, ["policy", "check", str(path)])
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


def test_check_reports_ok_with_rule_count_and_version(bare_runner, tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("senders: [oem]\nrules: []\n")
    result = bare_runner.invoke(main, ["policy", "check", str(path)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: 0 rules, version sha256:")


def test_check_without_path_uses_guard_policy(bare_runner, tmp_path, monkeypatch):
    path = tmp_path / "p.yaml"
    path.write_text("rulez: []\n")
    monkeypatch.setenv("GUARD_POLICY", str(path))
    result = bare_runner.invoke(main, ["policy", "check"])
    assert result.exit_code == 1
    assert result.output == f"{path}:1: unknown key 'rulez' (expected one of description, " \
                            "purposes, senders, ownership, defaults, rules)\n"


def test_shipped_default_policy_is_valid(bare_runner):
    result = bare_runner.invoke(main, ["policy", "check"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("OK: ")


def test_policy_test_reports_mistakes_in_case_files(bare_runner, tmp_path):
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
    result = bare_runner.invoke(main, ["policy", "test", str(policy)])
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


def test_policy_test_passes_and_fails_per_case(bare_runner, tmp_path):
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
    result = bare_runner.invoke(main, ["policy", "test", str(policy), "--examples", str(cases)])
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


def test_policy_test_without_cases_fails(bare_runner, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("rules: []\n")
    (tmp_path / "examples").mkdir()
    result = bare_runner.invoke(main, ["policy", "test", str(policy)])
    assert result.exit_code == 1
    assert "no *.yaml example case files here" in result.output


def test_policy_simulate_lists_decisions_a_changed_policy_would_change(runner, tmp_path, store):
    from policies import default_policy_path

    store.ingest([person("003A", "anna@example.com", timezone="Europe/Berlin", name="Anna")])
    for purpose in ("newsletter", "transactional"):
        store.check({"channel": "email", "to": "anna@example.com", "purpose": purpose,
                           "sender": "oem"})
    stricter = tmp_path / "stricter.yaml"
    stricter.write_text(default_policy_path().read_text() + (
        "\n  - id: newsletter-pause\n    kind: custom\n    purposes: [newsletter]\n"
        "    condition: 'true'\n    message: Newsletters are paused.\n"))
    result = runner.invoke(main, ["policy", "simulate", "--since", "3650d", "--policy",
                                  str(stricter)])
    assert result.exit_code == 0, result.output
    assert "Replayed 2 decisions" in result.stdout and "1 would change" in result.stdout
    changed = [line for line in result.stdout.splitlines() if " -> " in line]
    assert len(changed) == 1
    assert "newsletter" in changed[0] and "allow" in changed[0]
    assert changed[0].endswith("block (newsletter-pause)")


def test_policy_simulate_under_the_same_policy_changes_nothing(runner, store):
    store.ingest([person("003A", "anna@example.com", timezone="Europe/Berlin", name="Anna")])
    store.check({"channel": "email", "to": "anna@example.com", "purpose": "newsletter",
                       "sender": "oem"})
    result = runner.invoke(main, ["policy", "simulate", "--since", "3650d"])
    assert result.exit_code == 0, result.output
    assert "Replayed 1 decisions" in result.stdout and "0 would change" in result.stdout
