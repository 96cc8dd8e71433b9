"""Event files: CSV (one type per file, told by its name) and JSON lines, read by line."""

from __future__ import annotations

import pytest

from guard.ingest.files import EVENT_TYPES, event_type_of, read_events, row_to_event


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


def test_every_event_type_can_be_read_from_a_file():
    from guard.ingest.events import TYPES

    assert EVENT_TYPES == TYPES


def test_records_are_numbered_by_their_line_in_the_file(tmp_path):
    rows = tmp_path / "dms-purchases.csv"
    rows.write_text("source.id,product\nS1,nw-city\nS2,nw-city,stray\n")
    first, bad = read_events(rows)
    assert first[1] == {"type": "purchase", "source": {"id": "S1"}, "product": "nw-city"}
    assert bad == (3, "1 more cells than the header has columns")
    lines = tmp_path / "feed.jsonl"
    lines.write_text('{"source": {"id": "P1"}}\n\n[1]\n{"type": "erase"}\n')
    assert list(read_events(lines, "person")) == [
        (1, {"source": {"id": "P1"}, "type": "person"}),
        (3, "expected a JSON object, got list"),
        (4, {"type": "erase"})]


def test_a_csv_file_whose_name_tells_no_type_needs_one(tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("source.id\n1\n")
    with pytest.raises(ValueError, match="cannot tell the event type from the file name"):
        read_events(path)
    assert [event for _, event in read_events(path, "touch")] == [
        {"type": "touch", "source": {"id": "1"}}]
