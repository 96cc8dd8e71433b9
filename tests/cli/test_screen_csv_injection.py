"""guard screen writes no cell a spreadsheet would run as a formula; phone numbers stay usable."""

from __future__ import annotations

import csv
import io

import pytest

from guard.cli import main
from guard.cli.screen import spreadsheet_safe


@pytest.mark.parametrize(("cell", "written"), [
    ("=HYPERLINK(\"http://evil.example\",\"Click\")", "'=HYPERLINK(\"http://evil.example\",\"Click\")"),
    ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
    ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
    ("@SUM(1+1)*cmd|' /C calc'!A0", "'@SUM(1+1)*cmd|' /C calc'!A0"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("+1-800-FLOWERS", "'+1-800-FLOWERS"),
    ("+4917012345", "+4917012345"),
    ("+49 (0)170 123-4567", "+49 (0)170 123-4567"),
    ("-12.5", "-12.5"),
    ("anna@example.com", "anna@example.com"),
    ("a=1", "a=1"),
    ("", ""),
], ids=["formula", "dde-plus", "dde-minus", "at", "tab", "carriage-return", "letters-in-phone",
        "e164", "national-phone", "negative-number", "email", "equals-inside", "empty"])
def test_cells_a_spreadsheet_would_run_get_a_quote(cell, written):
    assert spreadsheet_safe(["x", cell]) == ["x", written]


def test_screen_output_is_safe_to_open_and_keeps_recipients_usable(runner, tmp_path):
    listing = tmp_path / "list.csv"
    with listing.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["to", "name", "=note"])
        writer.writerow(["+4917012345", "=HYPERLINK(\"http://evil.example\")", "@SUM(A1)"])
        writer.writerow(["=cmd|' /C calc'!A0", "Ben", "-2+3+cmd|' /C calc'!A0"])
    result = runner.invoke(main, ["screen", str(listing), "--channel", "sms", "--purpose",
                                  "newsletter", "--sender", "oem"])
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["to", "name", "'=note", "verdict", "rules", "decision_id", "error"]
    # The phone number is judged and written as it came: the list can be screened again.
    assert rows[1][:3] == ["+4917012345", "'=HYPERLINK(\"http://evil.example\")", "'@SUM(A1)"]
    assert rows[1][3] and rows[1][5].startswith("dec_") and rows[1][6] == ""
    # The formula in the recipient column was judged as the text it is, and written quoted.
    assert rows[2][:3] == ["'=cmd|' /C calc'!A0", "Ben", "'-2+3+cmd|' /C calc'!A0"]
    assert rows[2][3] == "" and rows[2][6].startswith("to:")
    formulas = [cell for row in rows for cell in row if cell[:1] in ("=", "+", "-", "@")]
    assert formulas == ["+4917012345"]
