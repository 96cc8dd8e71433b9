"""Sync in: first and incremental runs, deletes, crashes, Bulk, faults and the API quota."""

from __future__ import annotations

from datetime import timedelta

import pytest

from connectors.base import MemoryBookmarks
from connectors.salesforce import MappingError, SalesforceConnector, SalesforceUnavailable
from tests.connectors.salesforce.conftest import ENVIRON, make_connector
from tests.connectors.salesforce.org import DEALER_USER, Store, build_dealer_org, run


@pytest.fixture
def ids(fake):
    built = build_dealer_org(fake)
    fake.advance(minutes=5)
    return built


def test_first_sync_turns_the_org_into_events(fake, ids, connector):
    store, bookmarks = run(connector)

    anna = store.get("person", "Contact", ids["anna"])
    assert anna == {
        "type": "person",
        "source": {"system": "salesforce", "type": "Contact", "id": ids["anna"]},
        "name": "Anna Berg",
        "emails": ["anna@example.com"],
        "phones": ["+4989123456"],
        "owner": f"salesforce-user:{DEALER_USER}",
        "crm_ids": {"salesforce": ids["anna"]},
        "replacement_cycle_years": 10,
        "preferred_channel": "call",
        "contact_hours": "09:00-18:00",
        "do_not_market_until": "2027-06-30",
        "stage": "customer",
        "account": {"system": "salesforce", "type": "Account", "id": ids["acme"]},
    }
    assert store.get("person", "Lead", ids["lead"])["stage"] == "prospect"
    assert store.get("account", "Account", ids["acme"])["domain"] == "acme.example"

    consent = {(event["person"]["salesforce"], event["channel"]): event["status"]
               for event in store.of("consent")}
    assert consent[(ids["anna"], "call")] == "opt_out"
    assert consent[(ids["anna"], "email")] == "opt_in"
    assert consent[(ids["ben"], "email")] == "opt_out"

    [purchase] = store.of("purchase")
    assert purchase["source"] == {"system": "salesforce", "type": "OpportunityLineItem",
                                  "id": ids["won_item"]}
    assert (purchase["person"], purchase["product"], purchase["category"], purchase["at"]) == (
        {"salesforce": ids["anna"]}, "audi-a4", "car", "2026-11-21")

    [contract] = store.of("contract")
    assert (contract["status"], contract["end"]) == ("active", "2027-03-31")
    [case] = store.of("case")
    assert (case["person"], case["status"]) == ({"salesforce": ids["ben"]}, "open")

    touches = {event["source"]["id"]: event for event in store.of("touch")}
    assert set(touches) == {ids["call"], ids["member"]}, "guard tasks and unsent members skipped"
    assert touches[ids["call"]]["channel"] == "call"
    assert touches[ids["member"]]["campaign"] == "q4-upgrade"

    assert bookmarks.get("Contact") == {"cursor": "2026-11-23T09:05:00Z"}
    assert connector.summary.counts["Contact"] == 2
    assert connector.summary.stopped is None


def test_first_sync_pages_through_next_records_url(fake, connector):
    for number in range(7):
        fake.insert("Contact", Name=f"C{number}", Email=f"c{number}@example.com")
    fake.advance(minutes=1)

    batches = [batch for batch in connector.sync(MemoryBookmarks()) if batch.stream == "Contact"]

    assert [len(batch.events) for batch in batches] == [9, 9, 3]  # person + 2 consents each
    assert batches[0].bookmark["id"] < batches[1].bookmark["id"]
    assert batches[-1].bookmark == {"cursor": "2026-11-23T09:01:00Z"}
    assert all(endpoint == "query" for endpoint, _ in fake.queries), "no deletes to read yet"


def test_incremental_sync_reads_only_changed_records(fake, ids, connector):
    _, bookmarks = run(connector)
    fake.advance(minutes=30)
    fake.update(ids["ben"], Email="ben.ode@acme.example")
    fake.advance(minutes=1)
    fake.queries.clear()

    store, _ = run(connector, bookmarks)

    assert connector.summary.counts["Contact"] == 1
    assert sum(connector.summary.counts.values()) == 1
    assert store.get("person", "Contact", ids["ben"])["emails"] == ["ben.ode@acme.example"]
    contact_query = next(text for endpoint, text in fake.queries
                         if endpoint == "queryAll" and "FROM Contact" in text)
    assert "SystemModstamp >= 2026-11-23T09:05:00Z" in contact_query


def test_look_back_catches_records_committed_late(fake, ids):
    connector = make_connector(fake, lookback=timedelta(minutes=10))
    _, bookmarks = run(connector)
    # A long transaction stamped before the last run began but committed after it.
    fake.advance(minutes=2)
    fake.update(ids["lead"], Name="Lea Neumann")
    fake.touch_stamp(ids["lead"], fake.now - timedelta(minutes=4))
    fake.advance(minutes=1)

    store, _ = run(connector, bookmarks)

    assert store.get("person", "Lead", ids["lead"])["name"] == "Lea Neumann"


def test_deleted_and_converted_records_retract_their_events(fake, ids, connector):
    store, bookmarks = run(connector)
    fake.advance(minutes=10)
    fake.delete(ids["case"])
    fake.delete(ids["contract"])
    fake.purge(ids["contract"])  # emptied from the recycle bin: only getDeleted knows it
    fake.update(ids["won"], IsWon=False, IsClosed=False)  # reopened deal
    fake.update(ids["lead"], IsConverted=True)
    fake.advance(minutes=1)

    run(connector, bookmarks, store)

    assert store.of("case") == []
    assert store.of("contract") == []
    assert store.of("purchase") == []
    assert store.get("person", "Lead", ids["lead"]) is None
    assert connector.summary.deleted["Case"] == 1
    assert connector.summary.deleted["Contract"] == 1


def test_deleted_line_item_takes_back_its_purchase(fake, ids, connector):
    store, bookmarks = run(connector)
    fake.advance(minutes=10)
    fake.delete(ids["won_item"])
    fake.advance(minutes=1)

    run(connector, bookmarks, store)

    assert store.get("purchase", "OpportunityLineItem", ids["won_item"]) is None


def test_crash_mid_sync_loses_and_duplicates_nothing(fake):
    people = [fake.insert("Contact", Name=f"P{number}", Email=f"p{number}@example.com")
              for number in range(8)]
    fake.advance(minutes=1)
    clean, _ = run(make_connector(fake))

    store, bookmarks = Store(), MemoryBookmarks()
    sync = make_connector(fake).sync(bookmarks)
    for batch in sync:
        store.store(batch)
        if batch.stream == "Contact":
            # The process dies after storing the first page and before saving its bookmark.
            break
        bookmarks.save(batch.stream, batch.bookmark)
    fake.advance(minutes=1)
    fake.update(people[7], Name="P7 changed")
    resumed = make_connector(fake)
    fake.advance(minutes=1)
    run(resumed, bookmarks, store)

    assert set(store.events) == set(clean.events)
    assert store.get("person", "Contact", people[7])["name"] == "P7 changed"
    assert resumed.summary.counts["Contact"] == 8, "the unsaved page is read again, once"


def test_resume_from_a_saved_page_bookmark_skips_what_was_stored(fake):
    for number in range(8):
        fake.insert("Contact", Name=f"P{number}", Email=f"p{number}@example.com")
        fake.advance(seconds=1)
    fake.advance(minutes=1)
    store, bookmarks = Store(), MemoryBookmarks()
    for batch in make_connector(fake).sync(bookmarks):
        store.store(batch)
        bookmarks.save(batch.stream, batch.bookmark)
        if batch.stream == "Contact":
            break  # crash right after the first page's bookmark was saved
    resumed = make_connector(fake)

    run(resumed, bookmarks, store)

    # The first page's three are not read again, but for the last: its second is.
    assert resumed.summary.counts["Contact"] == 6
    assert len(store.of("person")) == 8


def test_a_page_bookmark_in_a_busy_second_reads_that_second_again_and_loses_nothing(fake):
    # SOQL literals have whole seconds, stamps have milliseconds: the records of the
    # second the page ended in are read again, never skipped.
    people = [fake.insert("Contact", Name=f"P{number}", Email=f"p{number}@example.com")
              for number in range(8)]
    assert len({fake.record(p)["SystemModstamp"] for p in people}) == 8
    fake.advance(minutes=1)
    store, bookmarks = Store(), MemoryBookmarks()
    for batch in make_connector(fake).sync(bookmarks):
        store.store(batch)
        bookmarks.save(batch.stream, batch.bookmark)
        if batch.stream == "Contact":
            break
    resumed = make_connector(fake)

    run(resumed, bookmarks, store)

    assert resumed.summary.counts["Contact"] == 8
    assert len(store.of("person")) == 8


def test_bulk_api_reads_large_first_syncs(fake, ids):
    rest_store, _ = run(make_connector(fake))
    fake.queries.clear()

    bulk = make_connector(fake, bulk_threshold=1, bulk_page=1)
    bulk_store, bookmarks = run(bulk)

    assert any(endpoint == "bulk:query" and "FROM Contact" in text
               for endpoint, text in fake.queries)
    assert bulk_store.events == rest_store.events
    assert bookmarks.get("Contact") == {"cursor": "2026-11-23T09:05:00Z"}


def test_custom_fields_and_objects_map_without_code(fake):
    fake.add_field("Contact", "Keeps_Cars_Years__c")
    fake.add_field("Contact", "Dealer_Id__c")
    fake.schema["Vehicle_Sale__c"] = {"Id", "IsDeleted", "SystemModstamp", "Buyer__c",
                                      "Model_Code__c", "Sale_Date__c", "Price__c"}
    fake.tables["Vehicle_Sale__c"] = {}
    anna = fake.insert("Contact", Name="Anna", Email="anna@example.com", OwnerId=DEALER_USER,
                       Keeps_Cars_Years__c=12, Guard_Replacement_Cycle_Years__c=5,
                       Dealer_Id__c="munich")
    rep = fake.insert("Contact", Name="Rita", Email="rita@example.com", OwnerId=DEALER_USER)
    sale = fake.insert("Vehicle_Sale__c", Buyer__c=anna, Model_Code__c="audi-q5",
                       Sale_Date__c="2026-11-20", Price__c="61000.00")
    fake.advance(minutes=1)
    connector = make_connector(fake, {
        "owners": {DEALER_USER: "dealer:augsburg"},
        "contact": {"fields": {"replacement_cycle_years": ["Keeps_Cars_Years__c"]},
                    "dealer_field": "Dealer_Id__c"},
        "objects": [{"object": "Vehicle_Sale__c", "event": "purchase", "person": "Buyer__c",
                     "fields": {"product": "Model_Code__c", "at": "Sale_Date__c",
                                "amount": "Price__c"}}],
    })

    store, _ = run(connector)

    person = store.get("person", "Contact", anna)
    assert (person["replacement_cycle_years"], person["owner"]) == (12, "dealer:munich")
    assert store.get("person", "Contact", rep)["owner"] == "dealer:augsburg"
    assert store.get("purchase", "Vehicle_Sale__c", sale) == {
        "type": "purchase",
        "source": {"system": "salesforce", "type": "Vehicle_Sale__c", "id": sale},
        "person": {"salesforce": anna},
        "product": "audi-q5", "at": "2026-11-20", "amount": 61000,
    }


def test_a_mapped_field_the_org_lacks_is_a_mapping_error(fake):
    fake.insert("Contact", Name="Anna")
    connector = make_connector(fake, {"contact": {"dealer_field": "Dealer_Id__c"}})

    with pytest.raises(MappingError, match="Contact: No such column 'Dealer_Id__c'"):
        run(connector)


def test_5xx_bursts_dropped_connections_and_concurrency_limits_are_retried(fake, ids,
                                                                          connector):
    fake.fail_next(503, times=2)
    fake.drop_connections()
    fake.limit_exceeded()  # four faults in a row; the fifth attempt gets through

    store, _ = run(connector)

    assert store.get("person", "Contact", ids["anna"]) is not None
    assert connector.summary.stopped is None


def test_persistent_5xx_fails_the_run_with_saved_bookmarks_intact(fake, ids, connector):
    bookmarks = MemoryBookmarks()
    fake.fail_next(500, times=50)

    with pytest.raises(SalesforceUnavailable, match="500"):
        run(connector, bookmarks)
    assert bookmarks.values == {}


def test_daily_limit_stops_cleanly_keeping_bookmarks(fake, ids, connector):
    bookmarks = MemoryBookmarks()
    seen = []
    for batch in connector.sync(bookmarks):
        seen.append(batch.stream)
        bookmarks.save(batch.stream, batch.bookmark)
        if batch.stream == "Contact":
            fake.limit_exceeded(daily=True)

    assert "TotalRequests" in connector.summary.stopped
    assert set(bookmarks.values) == {"Account", "Contact"}


def test_sync_stops_before_the_quota_reserve(fake, ids):
    fake.api_total = 1000
    fake.api_used = 990
    connector = make_connector(fake, api_reserve=5)
    bookmarks = MemoryBookmarks()

    run(connector, bookmarks)

    assert "keep 5" in connector.summary.stopped
    assert fake.api_total - fake.api_used == 5
    assert "CampaignMember" not in bookmarks.values
    fake.api_used = 0  # the quota resets at midnight
    store, _ = run(connector, bookmarks)
    assert connector.summary.stopped is None
    assert store.of("touch"), "the next run picks up where the last one stopped"


def test_expired_session_logs_in_again(fake, ids, connector):
    fake.expire_session()

    store, _ = run(connector)

    assert fake.logins == 2
    assert store.get("person", "Contact", ids["anna"]) is not None


def test_expired_session_during_bulk_logs_in_again(fake, ids):
    connector = make_connector(fake, bulk_threshold=0)
    fake.expire_session(after_calls=1)  # the COUNT() passes, the Bulk job creation is refused

    store, _ = run(connector)

    assert fake.logins == 2
    assert any(endpoint == "bulk:query" for endpoint, _ in fake.queries)
    assert store.get("person", "Contact", ids["anna"]) is not None


def test_every_request_carries_a_timeout(fake, ids, mock, connector):
    run(connector)

    assert mock.calls
    assert all(call.request.req_kwargs.get("timeout") for call in mock.calls)


def test_from_env_logs_in_and_syncs_with_the_orgs_mapping(fake, tmp_path):
    fake.add_field("Contact", "Keeps_Cars_Years__c")
    anna = fake.insert("Contact", Name="Anna", Keeps_Cars_Years__c=9)
    fake.advance(minutes=1)
    mapping = tmp_path / "salesforce.yaml"
    mapping.write_text("contact:\n  fields:\n    replacement_cycle_years: [Keeps_Cars_Years__c]\n")

    connector = SalesforceConnector.from_env({**ENVIRON, "GUARD_SALESFORCE_MAPPING": str(mapping),
                                              "GUARD_SALESFORCE_API_RESERVE": "10"})
    store, _ = run(connector)

    assert fake.logins == 1
    assert connector.api.reserve == 10
    assert store.get("person", "Contact", anna)["replacement_cycle_years"] == 9


def test_a_long_paused_sync_catches_up_through_bulk_with_deletes(fake, ids):
    _, bookmarks = run(make_connector(fake))
    fake.advance(days=3)
    fake.delete(ids["case"])
    fake.update(ids["ben"], Name="Ben Ode-Berg")
    fake.advance(minutes=1)
    fake.queries.clear()
    connector = make_connector(fake, bulk_threshold=0)

    store, _ = run(connector, bookmarks)

    assert ("bulk:queryAll" in {endpoint for endpoint, _ in fake.queries})
    assert store.get("person", "Contact", ids["ben"])["name"] == "Ben Ode-Berg"
    assert connector.summary.deleted["Case"] == 1


def test_child_relationships_that_page_are_read_to_the_end(fake, ids, mock):
    # Salesforce pages a parent's children on their own: done false, a nextRecordsUrl.
    fake.child_page_size = 3
    extra = [fake.insert("OpportunityLineItem", OpportunityId=ids["won"], Product2Id=ids["a4"],
                         TotalPrice=1000 + n) for n in range(6)]
    for n in range(4):
        fake.insert("OpportunityContactRole", OpportunityId=ids["won"],
                    ContactId=ids["ben"], IsPrimary=False, Role=f"Driver {n}")
    fake.insert("OpportunityContactRole", OpportunityId=ids["won"], ContactId=ids["ben"],
                IsPrimary=False, Role="Fleet manager")
    fake.advance(minutes=1)
    connector = make_connector(fake)

    store, _ = run(connector)

    purchases = {event["source"]["id"] for event in store.of("purchase")}
    assert purchases == {ids["won_item"], *extra}
    assert sum("/query/01g" in call.request.url for call in mock.calls) >= 2


def test_the_primary_contact_on_a_later_child_page_is_the_buyer(fake, ids):
    fake.child_page_size = 2
    deal = fake.insert("Opportunity", Name="Ben's Q5", IsWon=True, IsClosed=True,
                       CloseDate="2026-11-22", AccountId=ids["acme"], Amount=61000)
    for contact in (ids["anna"], ids["anna"], ids["anna"]):
        fake.insert("OpportunityContactRole", OpportunityId=deal, ContactId=contact,
                    IsPrimary=False)
    fake.insert("OpportunityContactRole", OpportunityId=deal, ContactId=ids["ben"],
                IsPrimary=True)
    fake.advance(minutes=1)

    store, _ = run(make_connector(fake))

    assert store.get("purchase", "Opportunity", deal)["person"] == {"salesforce": ids["ben"]}


def test_a_bulk_job_is_waited_for_while_in_progress(fake, ids):
    fake.job_polls = 3  # InProgress three times, then JobComplete
    store, _ = run(make_connector(fake, bulk_threshold=0, bulk_page=2))

    assert store.get("person", "Contact", ids["anna"]) is not None
    assert all(job["polls"] == 4 for job in fake.jobs.values())


def test_a_bulk_job_that_fails_is_read_through_rest_instead(fake, ids):
    fake.failing_jobs = ["InternalServerError: query timed out"] * 20
    connector = make_connector(fake, bulk_threshold=0)

    store, bookmarks = run(connector)

    assert fake.jobs and all(job["state"] == "Failed" for job in fake.jobs.values())
    assert store.get("person", "Contact", ids["anna"]) is not None
    assert connector.summary.stopped is None
    assert bookmarks.get("Contact") == {"cursor": "2026-11-23T09:05:00Z"}
