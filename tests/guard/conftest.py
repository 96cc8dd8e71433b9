"""A Guard on the shared test store whose clock stands still, and event builders."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from guard.checks.service import Guard

# A Monday, 11:00 in Berlin.
NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@pytest.fixture
def store(engine, policy):
    return Guard(engine, policy, clock=lambda: NOW)


def person(sid: str, *emails: str, system: str = "salesforce", **fields) -> dict:
    return {"type": "person", "source": {"system": system, "type": "Contact", "id": sid},
            "emails": list(emails), **fields}


def purchase(sid: str, who, product: str = "audi-a4", at: str = "2026-11-21T10:00:00Z",
             **fields) -> dict:
    return {"type": "purchase", "source": {"system": "dms", "id": sid}, "person": who,
            "product": product, "category": "vehicle", "at": at, **fields}


def accepted(result: dict) -> int:
    assert result["rejected"] == [], result["rejected"]
    return result["accepted"]


# A policy with one cap: three marketing contacts a person per 30 days.
CAP = 3
CAP_POLICY = f"""
rules:
  - id: cap
    kind: frequency_cap
    categories: [marketing]
    max: {CAP}
    window: 30d
"""
