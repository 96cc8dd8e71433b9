"""A person's contact hours may name their days too: "mon-fri 09:00-18:00"."""

from __future__ import annotations

import pytest

from policies.rules.contact_window import person_window
from tests.conftest import accepted, person


@pytest.mark.parametrize("text,hours,days", [
    ("09:00-18:00", "09:00-18:00", ()),
    ("mon-fri 09:00-18:00", "09:00-18:00", (0, 1, 2, 3, 4)),
    ("sat,sun", None, (5, 6)),
    ("fri-mon 10:00-12:00", "10:00-12:00", (0, 4, 5, 6)),
], ids=["hours", "weekdays", "days-only", "across-the-weekend"])
def test_contact_hours_are_read_with_their_days(text, hours, days):
    found_hours, found_days = person_window(text)
    assert (found_hours.text if found_hours else None, found_days) == (hours, days)


@pytest.mark.parametrize("text", ["someday 09:00-18:00", "mon-fri 25:00-26:00", "mon-"],
                         ids=["not-a-day", "not-hours", "open-range"])
def test_unreadable_days_are_refused_naming_the_field(store, text):
    result = store.ingest([person("003X", "x@example.com", contact_hours=text)])
    assert result["accepted"] == 0
    assert result["rejected"][0]["detail"].startswith("person.contact_hours")


def test_days_are_stored_as_given(store):
    accepted(store.ingest([person("003X", "x@example.com", contact_hours="Mon-Fri 09:00-18:00")]))
    profile = store.person(store.resolve("x@example.com"))["profile"]
    assert profile["contact_hours"] == "mon-fri 09:00-18:00"
