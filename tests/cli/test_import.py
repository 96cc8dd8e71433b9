"""``guard import``: JSON lines and CSV files into the store, rejections listed by line."""

from __future__ import annotations

import json

from guard.cli import main
from tests.conftest import person


def test_import_json_lines_lists_rejections_by_line(runner, tmp_path):
    path = tmp_path / "feed.jsonl"
    path.write_text("\n".join([
        json.dumps(person("003A", "anna@example.com", timezone="Europe/Berlin", name="Anna")),
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
