"""Read events from files: JSON lines, or CSV with one event type per file (SPEC §6).

A CSV file's event type is given, or told by its name (``dms-purchases.csv``).
Dotted columns build nested fields (``person.email``, ``source.id``); cells of
the fields below are converted, and anything that does not convert is left as
text for the event validator to name.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

# The event types of SPEC §6, as ``guard.ingest.events`` parses them; this module stays
# free of that one's imports so that ``guard --help`` lists the types without loading it.
EVENT_TYPES = ("person", "account", "purchase", "contract", "consent", "case", "service",
               "invoice", "touch", "campaign", "erase")
_PLURALS = {"people": "person", "persons": "person", "touches": "touch",
            "erasures": "erase", **{f"{t}s": t for t in EVENT_TYPES}}
_LISTS = ("emails", "phones")
_INTEGERS = ("mileage", "next_due_mileage")
_NUMBERS = ("amount", "replacement_cycle_years")
_BOOLEANS = ("notify_owner", "deleted")


def event_type_of(path: Path) -> str | None:
    """Guess a CSV file's event type from its name: ``dms-purchases.csv`` → ``purchase``."""
    found = {
        _PLURALS.get(token, token)
        for token in re.split(r"[^a-z]+", path.stem.lower())
        if _PLURALS.get(token, token) in EVENT_TYPES
    }
    return found.pop() if len(found) == 1 else None


def _cell(name: str, text: str) -> Any:
    """Convert one CSV cell by its field name; leave what does not convert for the validator."""
    if name in _LISTS:
        return [part.strip() for part in re.split(r"[;,]", text) if part.strip()]
    try:
        if name in _INTEGERS:
            return int(text)
        if name in _NUMBERS:
            return float(text)
    except ValueError:
        return text
    if name in _BOOLEANS and text.lower() in ("true", "false", "yes", "no", "1", "0"):
        return text.lower() in ("true", "yes", "1")
    return text


def row_to_event(row: dict[str | None, Any], event_type: str) -> dict:
    """Turn a CSV row into an event; dotted columns (``person.email``) build nested fields."""
    if row.get(None):
        raise ValueError(f"{len(row[None])} more cells than the header has columns")
    event: dict[str, Any] = {"type": event_type}
    for column, value in row.items():
        if column is None or value is None or not value.strip():
            continue
        parts = column.strip().split(".")
        target = event
        for part in parts[:-1]:
            nested = target.setdefault(part, {})
            if not isinstance(nested, dict):
                raise ValueError(f"column {column!r} clashes with column {part!r}")
            target = nested
        target[parts[-1]] = _cell(parts[-1], value.strip())
    return event


def read_events(path: Path, event_type: str | None = None
                ) -> Iterator[tuple[int, dict | str]]:
    """Return ``(line, event)`` per record, or ``(line, problem)``; ValueError: no CSV type."""
    if path.suffix.lower() != ".csv":
        return _json_lines(path, event_type)
    kind = event_type or event_type_of(path)
    if kind is None:
        raise ValueError(f"cannot tell the event type from the file name {path.name!r}")
    return _csv_rows(path, kind)


def _csv_rows(path: Path, event_type: str) -> Iterator[tuple[int, dict | str]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        line = reader.line_num
        for row in reader:
            try:
                yield line + 1, row_to_event(row, event_type)
            except ValueError as exc:
                yield line + 1, str(exc)
            line = reader.line_num


def _json_lines(path: Path, event_type: str | None) -> Iterator[tuple[int, dict | str]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, text in enumerate(handle, start=1):
            if not text.strip():
                continue
            try:
                event = json.loads(text)
            except ValueError as exc:
                yield number, f"not valid JSON: {exc}"
                continue
            if not isinstance(event, dict):
                yield number, f"expected a JSON object, got {type(event).__name__}"
                continue
            if event_type and "type" not in event:
                event["type"] = event_type
            yield number, event
