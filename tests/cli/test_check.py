"""``guard check``: one attempt against the store, or against a profile file without one."""

from __future__ import annotations

import json

import pytest

from guard.cli import main
from guard.cli.check import check, run_check
from guard.errors import InvalidField
from policies import parse_policy
from tests.conftest import person
from tests.policies.standin_kinds import KINDS


def test_check_against_the_store_is_a_dry_run_by_default(runner):
    args = ["check", "--to", "x@example.com", "--channel", "email", "--purpose", "newsletter",
            "--sender", "oem", "--at", "2026-11-23T10:00:00Z"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["verdict"] == "allow" and decision["decision_id"].startswith("dec_")


def test_check_names_a_bad_field(runner):
    result = runner.invoke(main, ["check", "--to", "x@example.com", "--channel", "pigeon",
                                  "--purpose", "newsletter", "--sender", "oem"])
    assert result.exit_code == 1 and "channel:" in result.output


@pytest.mark.parametrize("to", ["salesforce:003A", "hubspot:501", "anna@example.com"],
                         ids=["salesforce-id", "hubspot-id", "email"])
def test_check_takes_a_crm_reference_as_recipient(runner, store, to):
    store.ingest([person("003A", "anna@example.com", timezone="Europe/Berlin",
                         crm_ids={"hubspot": "501"})])
    anna = store.resolve("anna@example.com")
    result = runner.invoke(main, ["check", "--to", to, "--channel", "email", "--purpose",
                         "newsletter", "--sender", "oem"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["person"] == anna
    by_id = runner.invoke(main, ["check", "--to", anna, "--channel", "email", "--purpose",
                         "newsletter", "--sender", "oem"])
    assert json.loads(by_id.stdout)["person"] == anna


def test_check_with_a_profile_file_uses_no_store(tmp_path, monkeypatch):
    from click.testing import CliRunner

    monkeypatch.setenv("GUARD_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    profile = tmp_path / "max.json"
    profile.write_text(json.dumps({"id": "per_max", "purchases": [
        {"product": "nw-kombi", "at": "2026-11-21T15:00:00Z",
         "source": {"system": "dms", "type": "SalesOrder", "id": "SO-1"}}]}))
    attempt = {"channel": "email", "to": "max@example.com", "purpose": "price_offer",
               "sender": "oem", "product": "nw-kombi"}
    result = CliRunner().invoke(check, ["--profile", str(profile), "--attempt",
                                        json.dumps(attempt), "--now", "2026-11-23T10:00:00Z"])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.stdout)
    assert decision["verdict"] == "block"
    assert "purchase-cooldown" in [r["rule"] for r in decision["reasons"]]


def test_the_guard_group_has_one_store_backed_check():
    assert main.commands["check"] is check


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


def test_guard_check_with_profile_prints_the_decision(bare_runner, tmp_path):
    profile = tmp_path / "anna.json"
    profile.write_text(json.dumps({"id": "per_anna", "emails": ["anna@example.com"]}))
    policy = tmp_path / "p.yaml"
    policy.write_text("rules: []\n")
    result = bare_runner.invoke(main, [
        "check", "--profile", str(profile), "--policy", str(policy),
        "--attempt", '{"channel": "email", "purpose": "newsletter", "sender": "oem"}',
        "--now", "2026-11-23T10:00:00Z"])
    assert result.exit_code == 0, result.output
    decision = json.loads(result.output)
    assert decision["verdict"] == "allow"
    assert decision["person"] == "per_anna"
    assert decision["policy_version"].startswith("sha256:")
