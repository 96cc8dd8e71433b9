"""Sync figures: CRM records synced into the store per second, Salesforce and HubSpot.

Each CRM is the test suite's fake speaking its wire protocol (Salesforce: a
``responses`` fake behind ``simple-salesforce``; HubSpot: a local HTTP server
behind ``hubspot-api-client``), filled with a dealer's book of contacts,
companies, won deals with their products, cases and logged calls. The
figure is every record the connector read, divided by the time
``guard.crm.sync.run_sync`` took to read them and store their events in a fresh
SQLite store. The floor is the connector alone in the same run: the same
sync, paging and mapping every record into events against the same fake,
without storing them. The figure is records/s into the store ÷ records/s of
the connector alone, round by round in turns (a fresh store each round).
"""

from __future__ import annotations

import time
from datetime import timedelta

from bench.figure import Figure, NotMeasured, Spread, Target, ratio_figure, rounds
from bench.loader import store
from bench.population import EPOCH, MODELS, email_of, phone_of

SYSTEMS = ("salesforce", "hubspot")
FIGURES = {f"sync_ratio.{s}": ("×", Target(">=", 0.6)) for s in SYSTEMS}
# A book of business per contact: one company per 20 contacts, a won deal with its
# product for one in four, an open case for one in ten, a logged call for one in two.
COMPANY_EVERY, DEAL_EVERY, CASE_EVERY, CALL_EVERY = 20, 4, 10, 2


def measure(size) -> list[Figure]:
    """Sync each fake CRM into fresh stores and through the connector alone, round by round."""
    from guard.checks.service import Guard
    from policies import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    contacts = book_size(size.sync_records)
    figures = []
    for system in SYSTEMS:
        name = f"sync_ratio.{system}"
        runner = {"salesforce": _salesforce, "hubspot": _hubspot}[system]

        def guard_of(engine):
            return Guard(engine, policy, clock=lambda: EPOCH)
        try:
            records, alone_s, sync_s, params = runner(guard_of, contacts, size.rounds)
        except NotMeasured as exc:
            figures.append(Figure(name, *FIGURES[name], reason=str(exc)))
            continue
        figures.append(ratio_figure(
            name, FIGURES[name], [a / b for a, b in zip(alone_s, sync_s, strict=True)],
            floor="the same sync from the same fake with its events read but not stored "
                  "(paging and mapping), taking turns round by round",
            absolute={"records_per_s": Spread.of([records / t for t in sync_s], "per s", 0),
                      "connector_only_per_s": Spread.of([records / t for t in alone_s],
                                                        "per s", 0)},
            params={"records": records, "contacts": contacts, "rounds": size.rounds,
                    "store": "sqlite", **params},
            note="the fake CRM answers inside both timings; resync_unchanged_per_s is a second "
                 "full sync of the same, unchanged records into a filled store"))
    return figures


def _rounds(guard_of, make, rounds_: int, system: str) -> tuple[int, list, list, float]:
    """Time the connector alone and a sync into a fresh store, in turns; then a re-sync."""
    from guard.crm.sync import run_sync

    counted: list[int] = []

    def into_store() -> float:
        with store("sqlite") as engine:
            guard = guard_of(engine)
            connector = make()
            start = time.perf_counter()
            summary, rejected = run_sync(guard, connector)
            seconds = time.perf_counter() - start
            _check(summary, rejected, system)
            counted.append(sum(summary.counts.values()))
        return seconds

    alone_s, sync_s = rounds([lambda: read_only(make()), into_store], rounds_)
    with store("sqlite") as engine:
        guard = guard_of(engine)
        summary, rejected = run_sync(guard, make())
        _check(summary, rejected, system)
        again = resync(guard, make)
    if len(set(counted)) != 1:
        raise NotMeasured(f"{system} syncs read different numbers of records: {counted}")
    return counted[0], alone_s, sync_s, counted[0] / again


def book_size(records: int) -> int:
    """Return how many contacts make a book of about ``records`` CRM records."""
    # A deal counts once: its line items and contact roles come nested in it.
    per_contact = 1 + 1 / COMPANY_EVERY + 1 / DEAL_EVERY + 1 / CASE_EVERY + 1 / CALL_EVERY
    return max(20, round(records / per_contact))


def read_only(connector) -> float:
    """Return the seconds a whole sync takes when its events are read but not stored."""
    from connectors.base import MemoryBookmarks

    bookmarks = MemoryBookmarks()
    start = time.perf_counter()
    for batch in connector.sync(bookmarks):
        bookmarks.save(batch.stream, batch.bookmark)
    return time.perf_counter() - start


def resync(guard, make) -> float:
    """Return the seconds a second full sync of the unchanged CRM takes (bookmarks cleared).

    What a connector reset, or records edited only in fields the guard does not map,
    cost: every record read again, none of them new.
    """
    import sqlalchemy as sa

    from guard.crm.sync import run_sync
    from guard.store.tables import sync_bookmarks

    connector = make()
    with guard.engine.begin() as conn:
        conn.execute(sa.delete(sync_bookmarks).where(sync_bookmarks.c.connector == connector.name))
    start = time.perf_counter()
    summary, rejected = run_sync(guard, connector)
    seconds = time.perf_counter() - start
    _check(summary, rejected, connector.name)
    return seconds


def _check(summary, rejected: list, system: str) -> None:
    if summary.stopped:
        raise NotMeasured(f"{system} sync stopped early: {summary.stopped}")
    if rejected:
        raise NotMeasured(f"the store rejected {len(rejected)} {system} events, e.g. "
                          f"{rejected[0]['detail']}")


def _salesforce(guard_of, contacts: int, rounds_: int) -> tuple[int, list, list, dict]:
    import responses
    from tenacity import wait_none

    from tests.connectors.salesforce.conftest import make_connector
    from tests.crm.conftest import installed_org

    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        org = installed_org(mock, now=EPOCH - timedelta(hours=1))
        _fill_salesforce(org, contacts)
        org.advance(minutes=5)
        records, alone_s, sync_s, again = _rounds(
            guard_of, lambda: make_connector(org, retry_wait=wait_none()), rounds_,
            "Salesforce")
    return records, alone_s, sync_s, {"resync_unchanged_per_s": round(again),
                                      "page_size": org.page_size,
                                      "fake": "responses (in-process), simple-salesforce client"}


def _fill_salesforce(org, contacts: int) -> None:
    user = "005Fk000000MUNICAAA"
    products = [org.insert("Product2", Name=m, ProductCode=m, Family="car") for m in MODELS]
    accounts: list[str] = []
    for i in range(contacts):
        if i % COMPANY_EVERY == 0:
            accounts.append(org.insert("Account", Name=f"Company {i}", OwnerId=user,
                                       Website=f"https://company{i}.example"))
        contact = org.insert("Contact", Name=f"Person {i}", Email=email_of(i), Phone=phone_of(i),
                             AccountId=accounts[-1], OwnerId=user,
                             HasOptedOutOfEmail=i % 17 == 0, DoNotCall=False)
        if i % DEAL_EVERY == 0:
            deal = org.insert("Opportunity", Name=f"Deal {i}", IsWon=True, IsClosed=True,
                              CloseDate="2026-06-01", AccountId=accounts[-1], Amount=40000,
                              StageName="Closed Won", OwnerId=user)
            org.insert("OpportunityLineItem", OpportunityId=deal,
                       Product2Id=products[i % len(products)], TotalPrice=40000, Quantity=1)
            org.insert("OpportunityContactRole", OpportunityId=deal, ContactId=contact,
                       IsPrimary=True)
        if i % CASE_EVERY == 0:
            org.insert("Case", ContactId=contact, IsClosed=False, OwnerId=user,
                       Subject="Rattling door", Status="New")
        if i % CALL_EVERY == 0:
            org.insert("Task", WhoId=contact, Subject="Service call", TaskSubtype="Call",
                       IsClosed=True, Status="Completed",
                       CompletedDateTime="2026-11-20T15:00:00.000+0000")


def _hubspot(guard_of, contacts: int, rounds_: int) -> tuple[int, list, list, dict]:
    from connectors.hubspot import parse_mapping
    from tests.connectors.hubspot.conftest import OWNERS, make_connector
    from tests.connectors.hubspot.fake import FakeHubSpot

    fake = FakeHubSpot()
    fake.start()
    try:
        _fill_hubspot(fake, contacts)
        records, alone_s, sync_s, again = _rounds(
            guard_of, lambda: make_connector(fake, parse_mapping(OWNERS)), rounds_, "HubSpot")
    finally:
        fake.stop()
    return records, alone_s, sync_s, {"resync_unchanged_per_s": round(again),
                                      "fake": "local HTTP server, hubspot-api-client"}


def _fill_hubspot(fake, contacts: int) -> None:
    products = [fake.add("products", {"name": m, "hs_sku": m}) for m in MODELS]
    company = None
    for i in range(contacts):
        if i % COMPANY_EVERY == 0:
            company = fake.add("companies", {"name": f"Company {i}", "hubspot_owner_id": "77",
                                             "domain": f"company{i}.example"})
        contact = fake.add("contacts", {
            "email": email_of(i), "phone": phone_of(i), "firstname": "Person",
            "lastname": str(i), "lifecyclestage": "customer", "hubspot_owner_id": "77",
            "associatedcompanyid": company})
        if i % DEAL_EVERY == 0:
            deal = fake.add("deals", {"dealname": f"Deal {i}", "dealstage": "closedwon",
                                      "closedate": "2026-06-01T10:00:00Z",
                                      "deal_currency_code": "EUR", "amount": "40000"})
            item = fake.add("line_items", {"name": "car", "quantity": "1", "amount": "40000",
                                           "hs_product_id": products[i % len(products)]})
            fake.associate("deals", deal, "line_items", item)
            fake.associate("deals", deal, "contacts", contact)
            fake.associate("deals", deal, "companies", company)
        if i % CASE_EVERY == 0:
            ticket = fake.add("tickets", {"subject": "Rattling door", "hs_pipeline_stage": "1",
                                          "hubspot_owner_id": "77"})
            fake.associate("tickets", ticket, "contacts", contact)
        if i % CALL_EVERY == 0:
            call = fake.add("calls", {"hs_call_direction": "OUTBOUND", "hubspot_owner_id": "77",
                                      "hs_timestamp": "2026-11-19T08:00:00Z"})
            fake.associate("calls", call, "contacts", contact)
