"""The service commands: keys create, import, screen, check, db upgrade."""

from __future__ import annotations

import csv
import io
import json

import pytest

from guard.cli import main
from guard.cli.service import check, event_type_of, row_to_event
from guard.http import keys

from .conftest import person_event


def test_keys_create_prints_a_working_key_once(runner, engine):
    result = runner.invoke(main, ["keys", "create", "--name", "HubSpot", "--scope", "check",
                                  "--scope", "send", "--sender", "oem"])
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    key = keys.authenticate(engine, secret)
    assert key.scopes == {"check", "send"} and key.sender == "oem"


def test_keys_create_refuses_an_unknown_sender(runner):
    result = runner.invoke(main, ["keys", "create", "--name", "x", "--scope", "check",
                                  "--sender", "martians"])
    assert result.exit_code == 2
    assert "--sender" in result.output


def test_import_json_lines_lists_rejections_by_line(runner, tmp_path):
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join([
        json.dumps(person_event("003A", "anna@example.com", name="Anna")),
        "{not json",
        json.dumps({"type": "purchase", "source": {"system": "dms", "id": "S1"},
                    "person": {"email": "anna@example.com"}, "product": "nw-city",
                    "at": "not a date"}),
        "",
        json.dumps({"type": "purchase", "source": {"system": "dms", "id": "S2"},
                    "person": {"email": "anna@example.com"}, "product": "nw-city",
                    "at": "2026-01-10"}),
    ]) + "\n")
    result = runner.invoke(main, ["import", str(path)])
    assert result.exit_code == 1
    assert f"{path}: 2 accepted, 2 rejected." in result.stdout
    assert f"{path}:2: not valid JSON" in result.stdout
    assert f"{path}:3: purchase.at:" in result.stdout


def test_import_csv_takes_the_type_from_the_file_name(runner, tmp_path):
    people = tmp_path / "crm-people.csv"
    people.write_text("source.system,source.id,emails,name,stage,replacement_cycle_years\n"
                      "salesforce,003A,anna@example.com;anna@work.example,Anna Berg,customer,10\n"
                      "salesforce,003B,ben@example.com,Ben,client,\n")
    result = runner.invoke(main, ["import", str(people)])
    assert f"{people}: 1 accepted, 1 rejected." in result.stdout
    assert f"{people}:3: person.stage" in result.stdout
    decision = runner.invoke(main, ["check", "--to", "anna@work.example", "--channel", "email",
                                    "--purpose", "newsletter", "--sender", "oem"])
    assert json.loads(decision.stdout)["person"].startswith("per_")


def test_import_csv_needs_a_type_it_can_tell(runner, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("source.system,source.id\nx,1\n")
    result = runner.invoke(main, ["import", str(path)])
    assert result.exit_code == 2 and "--type" in result.output


@pytest.mark.parametrize(("name", "kind"), [
    ("purchases.csv", "purchase"), ("dms-people-2026.csv", "person"), ("touches.csv", "touch"),
    ("consent.csv", "consent"), ("people-and-purchases.csv", None), ("data.csv", None),
], ids=["plural", "people", "touches", "singular", "two-types", "none"])
def test_event_type_from_file_name(name, kind):
    from pathlib import Path

    assert event_type_of(Path(name)) == kind


def test_csv_rows_nest_dotted_columns_and_convert_known_fields():
    row = {"source.system": "dms", "source.id": "W1", "person.email": "a@b.de",
           "mileage": "24100", "next_due": "2027-01-01", "notes": " ", "amount": "abc"}
    assert row_to_event(row, "service") == {
        "type": "service", "source": {"system": "dms", "id": "W1"},
        "person": {"email": "a@b.de"}, "mileage": 24100, "next_due": "2027-01-01",
        "amount": "abc"}


def _otto_opted_out(guard) -> None:
    guard.ingest([
        person_event("003O", "otto@example.com", name="Otto"),
        {"type": "consent", "source": {"system": "salesforce", "id": "C-1"},
         "person": {"email": "otto@example.com"}, "channel": "email", "purpose": "*",
         "status": "opt_out", "at": "2026-10-01T00:00:00Z"},
    ])


def test_screen_writes_verdicts_per_row(runner, tmp_path, store_guard):
    _otto_opted_out(store_guard)
    listing = tmp_path / "list.csv"
    listing.write_text("email,segment\notto@example.com,a\nnew@example.org,b\nnot-an-address,c\n")
    result = runner.invoke(main, ["screen", str(listing), "--column", "email", "--channel",
                                  "email", "--purpose", "newsletter", "--sender", "oem"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [(r["email"], r["segment"], r["verdict"]) for r in rows] == [
        ("otto@example.com", "a", "block"), ("new@example.org", "b", "allow"),
        ("not-an-address", "c", "")]
    assert rows[0]["rules"] == "consent" and rows[0]["decision_id"].startswith("dec_")
    assert rows[2]["error"].startswith("to:")
    assert "3 recipients" in result.stderr


def test_screen_keeps_ragged_rows_to_the_header(runner, tmp_path, store_guard):
    # Exported lists are ragged: blank lines, rows missing trailing cells, stray cells
    # past the header. Every row keeps the header's columns, then gets its verdict.
    _otto_opted_out(store_guard)
    listing = tmp_path / "list.csv"
    listing.write_text("\ufeffsegment,email,note\n"
                       "a,otto@example.com,x\n\n"
                       "b,new@example.org\n"
                       "c\n"
                       "d,new@example.org,y,stray,cells\n", encoding="utf-8")
    result = runner.invoke(main, ["screen", str(listing), "--column", "email", "--channel",
                                  "email", "--purpose", "newsletter", "--sender", "oem"])
    assert result.exit_code == 0, result.output
    lines = list(csv.reader(io.StringIO(result.stdout)))
    assert lines[0] == ["segment", "email", "note", "verdict", "rules", "decision_id", "error"]
    assert all(len(line) == 7 for line in lines)
    assert [(line[0], line[1], line[2], line[3]) for line in lines[1:]] == [
        ("a", "otto@example.com", "x", "block"), ("b", "new@example.org", "", "allow"),
        ("c", "", "", ""), ("d", "new@example.org", "y", "allow")]
    assert lines[3][6].startswith("to:")  # the row without an address says why
    assert "4 recipients: 2 allow, 1 block, 1 invalid." in result.stderr


def test_screen_in_several_processes_answers_every_row_in_list_order(runner, tmp_path,
                                                                      store_guard):
    _otto_opted_out(store_guard)
    listing = tmp_path / "list.csv"
    addresses = [f"reader{n}@example.org" if n % 7 else "otto@example.com" for n in range(40)]
    addresses[5] = "not-an-address"
    listing.write_text("to,n\n" + "".join(f"{a},{n}\n" for n, a in enumerate(addresses)))
    args = ["screen", str(listing), "--channel", "email", "--purpose", "newsletter",
            "--sender", "oem"]
    alone = runner.invoke(main, args)
    from guard.checks import screening

    screening.CHUNK, chunk = 6, screening.CHUNK  # several chunks per worker
    try:
        spread = runner.invoke(main, [*args, "--workers", "2"])
    finally:
        screening.CHUNK = chunk
    assert alone.exit_code == spread.exit_code == 0, spread.output
    one = list(csv.DictReader(io.StringIO(alone.stdout)))
    two = list(csv.DictReader(io.StringIO(spread.stdout)))
    assert [r["n"] for r in two] == [str(n) for n in range(40)]
    assert [(r["to"], r["verdict"], r["rules"], r["error"]) for r in two] == \
        [(r["to"], r["verdict"], r["rules"], r["error"]) for r in one]
    assert two[0]["verdict"] == "block" and two[1]["verdict"] == "allow"
    assert two[5]["error"].startswith("to:")
    # Every dry-run decision of the spread run was recorded and can be looked up.
    assert all(store_guard.decision(r["decision_id"])["verdict"] == r["verdict"]
               for r in two if r["decision_id"])
    assert "40 recipients: 33 allow, 6 block, 1 invalid." in spread.stderr


def test_screen_names_a_bad_attempt_option(runner, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("to\na@example.com\n")
    result = runner.invoke(main, ["screen", str(listing), "--channel", "pigeon", "--purpose",
                                  "newsletter", "--sender", "oem"])
    assert result.exit_code != 0 and "channel" in result.output


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


def test_db_upgrade_migrates_a_fresh_store(tmp_path):
    from click.testing import CliRunner

    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    result = CliRunner().invoke(main, ["db", "upgrade", "--url", url])
    assert result.exit_code == 0, result.output
    assert "Store at revision" in result.stdout


def test_policy_simulate_lists_decisions_a_changed_policy_would_change(runner, tmp_path,
                                                                      store_guard):
    from policies import default_policy_path

    store_guard.ingest([person_event("003A", "anna@example.com", name="Anna")])
    for purpose in ("newsletter", "transactional"):
        store_guard.check({"channel": "email", "to": "anna@example.com", "purpose": purpose,
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


def test_policy_simulate_under_the_same_policy_changes_nothing(runner, store_guard):
    store_guard.ingest([person_event("003A", "anna@example.com", name="Anna")])
    store_guard.check({"channel": "email", "to": "anna@example.com", "purpose": "newsletter",
                       "sender": "oem"})
    result = runner.invoke(main, ["policy", "simulate", "--since", "3650d"])
    assert result.exit_code == 0, result.output
    assert "Replayed 1 decisions" in result.stdout and "0 would change" in result.stdout


@pytest.mark.parametrize("to", ["salesforce:003A", "hubspot:501", "anna@example.com"],
                         ids=["salesforce-id", "hubspot-id", "email"])
def test_check_takes_a_crm_reference_as_recipient(runner, store_guard, to):
    store_guard.ingest([person_event("003A", "anna@example.com", crm_ids={"hubspot": "501"})])
    anna = store_guard.resolve("anna@example.com")
    result = runner.invoke(main, ["check", "--to", to, "--channel", "email", "--purpose",
                                  "newsletter", "--sender", "oem"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["person"] == anna
    by_id = runner.invoke(main, ["check", "--to", anna, "--channel", "email", "--purpose",
                                 "newsletter", "--sender", "oem"])
    assert json.loads(by_id.stdout)["person"] == anna


def test_a_settings_file_counts_for_every_command(tmp_path, monkeypatch):
    from click.testing import CliRunner

    policy = tmp_path / "ours.yaml"
    policy.write_text("rules:\n  - {id: stop, kind: nonsense}\n")
    (tmp_path / "guard.toml").write_text(
        f'DATABASE_URL = "sqlite:///{tmp_path / "configured.db"}"\nPOLICY = "ours.yaml"\n')
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GUARD_CONFIG", "guard.toml")  # relative to where the command runs
    monkeypatch.delenv("GUARD_DATABASE_URL", raising=False)
    monkeypatch.delenv("GUARD_POLICY", raising=False)

    upgraded = CliRunner().invoke(main, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert (tmp_path / "configured.db").exists() and not (tmp_path / "guard.db").exists()
    checked = CliRunner().invoke(main, ["policy", "check"])
    assert checked.exit_code == 1
    assert "ours.yaml:2" in checked.output and "nonsense" in checked.output
