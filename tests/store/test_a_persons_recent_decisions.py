"""A person's page and API show their newest decisions, dry runs among them, newest first."""

from __future__ import annotations

from datetime import timedelta

from guard.store import ledger as contact_ledger
from tests.conftest import NOW, accepted, person


def test_dry_runs_and_committed_decisions_interleave_newest_first_up_to_the_limit(
        store, engine):
    accepted(store.ingest([person("003A", "anna@example.com")]))
    made = []
    for minute in range(7):
        decided = store.check({"channel": "email", "to": "anna@example.com",
                               "purpose": "transactional", "sender": "oem",
                               "at": (NOW - timedelta(minutes=minute)).isoformat()},
                              commit=minute % 3 == 0)
        made.append((decided.decision_id, minute % 3 == 0))
    anna = store.resolve("anna@example.com")
    with engine.connect() as conn:
        newest = contact_ledger.for_person(conn, anna, limit=5)
        everything = contact_ledger.for_person(conn, anna, limit=50)
    assert [(r["id"], r["committed"]) for r in newest] == made[:5]
    assert [r["id"] for r in everything] == [d for d, _ in made]
    assert [r["at"] for r in everything] == sorted((r["at"] for r in everything), reverse=True)
