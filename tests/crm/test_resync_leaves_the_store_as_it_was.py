"""What the sync's shortcuts must not change: the same records give the same store.

A sync re-reads records (look-back windows, a resumed crash, a lost
bookmark) and rebuilds people whose records it stored; the store it leaves
must not depend on how often or in which pieces the records arrived, and an
identity a CRM record no longer states must stop naming the person.
"""

from __future__ import annotations

import gc

import pytest
import sqlalchemy as sa

from connectors.hubspot import parse_mapping
from guard.checks.service import Guard
from guard.collector import paused as collector_paused
from guard.crm.sync import StoreBookmarks, run_sync
from guard.store.engine import make_engine
from guard.store.migrate import upgrade
from guard.store.tables import sync_bookmarks
from tests.connectors.hubspot.conftest import OWNERS, seed_portal
from tests.connectors.hubspot.conftest import make_connector as make_hubspot
from tests.connectors.salesforce.conftest import make_connector as make_salesforce
from tests.connectors.salesforce.org import REP_USER, build_dealer_org
from tests.snapshots import store_snapshot


def _forget_bookmarks(engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.delete(sync_bookmarks))


def _sync(guard, connector) -> None:
    summary, rejected = run_sync(guard, connector)
    assert (summary.stopped, rejected) == (None, [])


def _dealer_org(org) -> dict[str, str]:
    ids = build_dealer_org(org)
    ids["carl"] = org.insert("Contact", Name="Carl Ode", Email="carl@acme.example",
                             AccountId=ids["acme"], OwnerId=REP_USER, HasOptedOutOfEmail=False,
                             DoNotCall=False)
    org.advance(minutes=5)
    return ids


@pytest.fixture
def reference(tmp_path, policy, clock):
    """A second, empty SQLite store on the same clock, for a sync that runs undisturbed."""
    engine = make_engine(f"sqlite:///{tmp_path / 'reference.db'}")
    upgrade(engine)
    yield Guard(engine, policy, clock=clock)
    engine.dispose()


def test_salesforce_records_synced_again_leave_the_store_as_it_was(org, guard, engine):
    _dealer_org(org)
    _sync(guard, make_salesforce(org))
    first = store_snapshot(engine)

    _forget_bookmarks(engine)  # everything is read and stored a second time
    _sync(guard, make_salesforce(org))
    second = store_snapshot(engine)
    _forget_bookmarks(engine)
    _sync(guard, make_salesforce(org))

    assert store_snapshot(engine) == first
    assert store_snapshot(engine) == second
    assert len(second["profiles"]) == 4 and second["records"] and second["ledger"]


def test_hubspot_records_synced_again_leave_the_store_as_it_was(portal_server, guard, engine):
    seed_portal(portal_server)
    _sync(guard, make_hubspot(portal_server, parse_mapping(OWNERS)))
    first = store_snapshot(engine)

    _forget_bookmarks(engine)
    _sync(guard, make_hubspot(portal_server, parse_mapping(OWNERS)))
    second = store_snapshot(engine)
    _forget_bookmarks(engine)
    _sync(guard, make_hubspot(portal_server, parse_mapping(OWNERS)))

    assert store_snapshot(engine) == first
    assert store_snapshot(engine) == second
    assert second["profiles"] and second["records"] and second["ledger"]


@pytest.mark.parametrize("stored", [False, True], ids=["before-storing", "after-storing"])
def test_a_sync_resumed_after_a_crash_stores_what_an_undisturbed_one_stores(
        org, guard, engine, reference, stored):
    _dealer_org(org)
    _sync(reference, make_salesforce(org))
    real_ingest, calls = guard.ingest, []

    def ingest_then_crash(events):
        calls.append(len(events))
        if len(calls) == 4:
            if stored:
                real_ingest(events)  # committed, but its bookmark is never saved
            raise RuntimeError("the store went away")
        return real_ingest(events)

    guard.ingest = ingest_then_crash
    with pytest.raises(RuntimeError):
        run_sync(guard, make_salesforce(org))
    guard.ingest = real_ingest
    assert StoreBookmarks(engine, "salesforce").all(), "finished batches were committed"

    _sync(guard, make_salesforce(org))

    assert store_snapshot(engine) == store_snapshot(reference.engine, )


def test_an_address_a_contact_no_longer_states_stops_naming_the_person(org, guard, clock):
    ids = _dealer_org(org)
    _sync(guard, make_salesforce(org))
    anna = guard.resolve({"salesforce": ids["anna"]})
    assert guard.resolve("anna@example.com") == anna

    org.update(ids["anna"], Email="anna.berg@example.com")
    # A deal on her account in the same sync rebuilds every colleague, too.
    org.insert("Opportunity", Name="Fleet", IsWon=True, IsClosed=True, CloseDate="2026-06-01",
               AccountId=ids["acme"], Amount=90000, StageName="Closed Won", OwnerId=REP_USER)
    org.advance(minutes=5)
    clock.advance(minutes=5)
    _sync(guard, make_salesforce(org))

    assert guard.resolve("anna.berg@example.com") == anna
    assert guard.resolve("anna@example.com") is None
    assert guard.resolve("ben@acme.example") == guard.resolve({"salesforce": ids["ben"]})


def test_the_collector_runs_again_after_a_batch_that_failed(guard):
    assert gc.isenabled()
    result = guard.ingest([{"type": "person", "source": {"system": "crm", "id": "1"},
                            "emails": ["ada@example.com"]}])
    assert result["accepted"] == 1 and gc.isenabled()

    with pytest.raises(RuntimeError), collector_paused():
        assert not gc.isenabled()
        raise RuntimeError("a bug mid-batch")
    assert gc.isenabled()


def test_a_collector_paused_by_the_caller_stays_paused():
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()
