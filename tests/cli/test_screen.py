"""``guard screen``: a list written back with a verdict per row, in one process or several."""

from __future__ import annotations

import csv
import io

from guard.cli import main
from tests.conftest import person


def _otto_opted_out(guard) -> None:
    guard.ingest([
        person("003O", "otto@example.com", timezone="Europe/Berlin", name="Otto"),
        {"type": "consent", "source": {"system": "salesforce", "id": "C-1"},
         "person": {"email": "otto@example.com"}, "channel": "email", "purpose": "*",
         "status": "opt_out", "at": "2026-10-01T00:00:00Z"},
    ])


def test_screen_writes_verdicts_per_row(runner, tmp_path, store):
    _otto_opted_out(store)
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


def test_screen_keeps_ragged_rows_to_the_header(runner, tmp_path, store):
    # Exported lists are ragged: blank lines, rows missing trailing cells, stray cells
    # past the header. Every row keeps the header's columns, then gets its verdict.
    _otto_opted_out(store)
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


def test_screen_in_several_processes_answers_every_row_in_list_order(runner, tmp_path, store):
    _otto_opted_out(store)
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
    assert all(store.decision(r["decision_id"])["verdict"] == r["verdict"]
               for r in two if r["decision_id"])
    assert "40 recipients: 33 allow, 6 block, 1 invalid." in spread.stderr


def test_screen_names_a_bad_attempt_option(runner, tmp_path):
    listing = tmp_path / "list.csv"
    listing.write_text("to\na@example.com\n")
    result = runner.invoke(main, ["screen", str(listing), "--channel", "pigeon", "--purpose",
                                  "newsletter", "--sender", "oem"])
    assert result.exit_code != 0 and "channel" in result.output
