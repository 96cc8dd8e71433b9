"""Bulk storing: a batch rebuilds people in chunks and writes its new rows together.

The bulk paths must store exactly what the one-at-a-time paths store: the
same profile, flags and identities as building each person with their own
queries, and nothing at all for a refused event.
"""

from __future__ import annotations

import secrets
from datetime import UTC

import pytest
import sqlalchemy as sa

from guard.checks.flags import flags_for, hash_flags, lapses_at
from guard.checks.service import Guard
from guard.demo.sample import generate
from guard.ingest import profiles
from guard.store.engine import make_engine
from guard.store.migrate import upgrade
from guard.store.tables import identities, people
from tests.conftest import NOW, POSTGRES_URL, accepted, person, postgres_schema_url, purchase
from tests.snapshots import store_snapshot

ACME = {"system": "salesforce", "type": "Account", "id": "001ACME"}
GHOST = {"system": "salesforce", "type": "Account", "id": "001GHOST"}


def book() -> list[list[dict]]:
    """Batches touching every part of a profile: accounts, merges, bare consents, erasure."""
    first = [
        {"type": "account", "source": ACME, "name": "Acme", "owner": "J. Smith"},
        person("003A", "anna@example.com", account=ACME, phones=["+491701234567"],
               name="Anna", stage="customer"),
        person("003B", "ben@example.com", account=ACME, name="Ben"),
        {"type": "person", "source": {"system": "dms", "id": "C-1"}, "phones": ["+491709999999"],
         "name": "Anna S."},
        {"type": "contract", "source": {"system": "salesforce", "id": "800A"}, "account": ACME,
         "status": "active", "end": "2028-05-31", "owner": "J. Smith"},
        purchase("P1", {"email": "ben@example.com"}, account=ACME),
        purchase("P2", {"phone": "+491709999999"}, product="vw-golf"),
        person("003C", "carl@example.com", name="Carl"),
    ]
    # Consents for addresses nobody has yet: kept bare, found by address once people come.
    bare = [
        {"type": "consent", "source": {"system": "crm", "id": "bare-1"},
         "email": "anna@example.com", "channel": "email", "purpose": "*",
         "status": "opt_out", "at": "2026-01-05T09:00:00Z"},
        {"type": "consent", "source": {"system": "crm", "id": "bare-2"},
         "phone": "+491709999999", "channel": "sms", "purpose": "*",
         "status": "opt_out", "at": "2026-01-06T09:00:00Z"},
        {"type": "consent", "source": {"system": "crm", "id": "bare-3"},
         "email": "nobody@example.com", "channel": "email", "purpose": "*",
         "status": "opt_out", "at": "2026-01-06T09:00:00Z"},
        {"type": "consent", "source": {"system": "crm", "id": "bare-4"},
         "email": "ben@example.com", "channel": "email", "purpose": "*",
         "status": "opt_in", "at": "2026-01-07T09:00:00Z"},
    ]
    second = [
        # Anna's CRM record now states the DMS phone too: the two people merge.
        person("003A", "anna@example.com", account=ACME, phones=["+491709999999"],
               name="Anna Schulz", stage="customer"),
        {"type": "erase", "source": {"system": "privacy", "id": "E1"},
         "person": {"email": "carl@example.com"}},
    ]
    return [bare, first, second]


@pytest.fixture
def guard_factory(db_url, policy, tmp_path):
    """Make fresh, empty stores on the test's database (SQLite files or PostgreSQL schemas)."""
    engines, schemas = [], []

    def make() -> Guard:
        if db_url.startswith("sqlite"):
            url = f"sqlite:///{tmp_path / f'store{len(engines)}.db'}"
        else:
            schemas.append(f"t_{secrets.token_hex(6)}")
            with admin.begin() as conn:
                conn.execute(sa.text(f'create schema "{schemas[-1]}"'))
            url = postgres_schema_url(schemas[-1])
        engine = make_engine(url)
        upgrade(engine)
        engines.append(engine)
        return Guard(engine, policy, clock=lambda: NOW)

    admin = sa.create_engine(POSTGRES_URL) if not db_url.startswith("sqlite") else None
    yield make
    for engine in engines:
        engine.dispose()
    if admin is not None:
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f'drop schema "{schema}" cascade'))
        admin.dispose()


def people_rows(engine) -> dict:
    with engine.connect() as conn:
        return {row.id: (row.profile, row.flags, row.flags_hash, row.flags_lapse_at, row.erased)
                for row in conn.execute(sa.select(people))}


def test_a_bulk_rebuild_builds_what_one_person_at_a_time_builds(store, engine, policy):
    for batch in [generate(seed=3, people=120).events, *book()]:
        store.ingest(batch)
    stored = people_rows(engine)
    assert len(stored) > 100 and any(row[4] for row in stored.values())
    with engine.connect() as conn:
        held = {}
        for person_id, kind, value in conn.execute(
                sa.select(identities.c.person_id, identities.c.kind, identities.c.value)):
            held.setdefault(person_id, set()).add((kind, value))
        for person_id, (profile, flags, flags_hash, lapse, erased) in stored.items():
            if erased:
                assert person_id not in held
                continue
            # build_profile reads one person with their own queries: the slow path.
            alone = profiles.build_profile(conn, person_id)
            assert profile == alone.to_dict()
            status, lines = flags_for(alone, policy, NOW)
            assert (flags["status"], flags["flags"]) == (status, lines)
            assert flags_hash == hash_flags({"status": status, "flags": lines})
            assert _utc(lapse) == _utc(lapses_at(alone, policy, NOW))
            assert held.get(person_id, set()) == profiles.stated_identities(conn, person_id)


def _utc(moment):
    # SQLite hands back naive UTC datetimes.
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def test_chunked_and_single_rebuilds_write_the_same_rows(store, engine, policy, monkeypatch):
    for batch in [generate(seed=5, people=80).events, *book()]:
        store.ingest(batch)
    everyone = sorted(people_rows(engine))
    chunks = []
    real_chunk = profiles._rebuild_chunk
    monkeypatch.setattr(profiles, "_rebuild_chunk",
                        lambda conn, ids, *rest: chunks.append(len(ids)) or real_chunk(
                            conn, ids, *rest))
    runs = []
    for chunk, one_by_one in ((profiles.REBUILD_CHUNK, False), (7, False), (1, True)):
        monkeypatch.setattr(profiles, "REBUILD_CHUNK", chunk)
        chunks.clear()
        with engine.begin() as conn:
            conn.execute(sa.update(people).values(flags_hash=None))
            if one_by_one:
                for person_id in everyone:
                    profiles.rebuild(conn, [person_id], policy, NOW)
            else:
                profiles.rebuild(conn, everyone, policy, NOW)
        assert max(chunks) == min(chunk, len(everyone))
        runs.append(people_rows(engine))
    assert runs[0] == runs[1] == runs[2]




def test_refused_events_among_valid_ones_leave_no_trace(guard_factory):
    valid = [
        person("003A", "anna@example.com", account=ACME, name="Anna"),
        purchase("P1", {"email": "anna@example.com"}),
        {"type": "touch", "source": {"system": "crm", "id": "T1"}, "person": "anna@example.com",
         "channel": "email", "purpose": "newsletter", "sender": "oem", "at": "2026-11-20"},
    ]
    refused = [
        purchase("P9", {"email": "nobody@example.com"}, account=GHOST),
        {"type": "touch", "source": {"system": "crm", "id": "T9"}, "person": "nobody@example.com",
         "channel": "email", "purpose": "newsletter", "sender": "oem", "at": "2026-11-20"},
        {"type": "case", "source": {"system": "crm", "id": "K9"}, "person": {"hubspot": "404"},
         "status": "open"},
        {"type": "erase", "source": {"system": "privacy", "id": "E9"},
         "person": {"email": "nobody@example.com"}},
        person("003E", "erased@example.com"),  # erased below, before this batch
        {"type": "consent", "source": {"system": "crm", "id": "bare-9"},
         "email": "erased@example.com", "channel": "email", "purpose": "*", "status": "opt_in"},
    ]
    results = []
    for events in (valid, [refused[0], valid[0], refused[1], valid[1], *refused[2:], valid[2]]):
        other = guard_factory()
        accepted(other.ingest([person("003E", "erased@example.com")]))
        accepted(other.ingest([{"type": "erase", "source": {"system": "privacy", "id": "E1"},
                                "person": {"email": "erased@example.com"}}]))
        result = other.ingest(events)
        assert result["accepted"] == len(valid)
        results.append(store_snapshot(other.engine))
    assert results[0] == results[1]
    assert len(results[0]["ledger"]) == 1


def test_a_source_repeated_within_a_batch_is_stored_as_in_separate_batches(guard_factory):
    touch = {"type": "touch", "source": {"system": "crm", "id": "T1"}, "person": "anna@example.com",
             "channel": "email", "purpose": "newsletter", "sender": "oem", "at": "2026-11-20"}
    events = [
        person("003A", "anna@example.com", name="Anna"),
        purchase("P1", {"email": "anna@example.com"}),
        touch,
        person("003A", "anna@example.com", name="Anna Schulz", phones=["+491701234567"]),
        purchase("P1", {"phone": "+491701234567"}, product="vw-golf"),
        {**touch, "channel": "sms", "at": "2026-11-21"},
        purchase("P2", {"email": "anna@example.com"}),
        {"type": "purchase", "source": {"system": "dms", "id": "P2"}, "deleted": True},
    ]
    together, apart = guard_factory(), guard_factory()
    assert accepted(together.ingest(events)) == len(events)
    for event in events:
        accepted(apart.ingest([event]))
    assert store_snapshot(together.engine) == store_snapshot(apart.engine)
    view = together.person(together.resolve("anna@example.com"))
    assert view["profile"]["name"] == "Anna Schulz"
    assert [p["product"] for p in view["profile"]["purchases"]] == ["vw-golf"]
    assert [e["channel"] for e in view["ledger"]] == ["sms"]
