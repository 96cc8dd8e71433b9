"""Write-back: flags only when changed, 200 per collection call; owner tasks once per key."""

from __future__ import annotations

from datetime import UTC, datetime

from connectors.base import FlagUpdate, OwnerTask
from tests.connectors.salesforce.fake import INTEGRATION_USER
from tests.connectors.salesforce.org import DEALER_USER, run

WHEN = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def flag(record_id, status="Caution", flags=("Existing customer: Acme contract until 2027-03-31",)):
    return FlagUpdate(record_id=record_id, status=status, flags=tuple(flags), updated=WHEN)


def test_flags_are_written_in_collections_of_200(fake, connector):
    people = [fake.insert("Contact", Name=f"P{number}") for number in range(450)]

    written = connector.write_flags([flag(person) for person in people])

    assert written == 450
    assert [size for method, size in fake.collections] == [200, 200, 50]
    record = fake.record(people[0])
    assert record["Guard_Status__c"] == "Caution"
    assert record["Guard_Flags__c"] == "Existing customer: Acme contract until 2027-03-31"
    assert record["Guard_Updated__c"] == "2026-11-23T10:00:00.000Z"


def test_only_changed_flags_are_written(fake, connector):
    anna = fake.insert("Contact", Name="Anna")
    lead = fake.insert("Lead", Name="Lea")
    connector.write_flags([flag(anna), flag(lead, "Clear", ())])
    fake.collections.clear()

    unchanged = connector.write_flags([flag(anna), flag(lead, "Clear", ())])
    changed = connector.write_flags([
        flag(anna, "Do not contact", ["Opted out of email on 2026-11-22", "Open case"]),
        flag(lead, "Clear", ()),
    ])

    assert (unchanged, changed) == (0, 1)
    assert fake.collections == [("PATCH", 1)]
    assert fake.record(anna)["Guard_Flags__c"] == "Opted out of email on 2026-11-22\nOpen case"


def test_bad_and_deleted_records_are_reported_not_raised(fake, connector):
    anna = fake.insert("Contact", Name="Anna")
    gone = fake.insert("Contact", Name="Gone")
    fake.delete(gone)
    fake.purge(gone)

    written = connector.write_flags([flag(anna), flag(gone), flag("not-an-id")])

    assert written == 1
    assert connector.write_errors == [], "no retry brings these back"
    assert any(gone in line for line in connector.write_skipped)
    assert any("not-an-id" in line for line in connector.write_skipped)


def test_our_own_write_back_echoes_as_the_same_events(fake, connector):
    anna = fake.insert("Contact", Name="Anna", Email="anna@example.com", DoNotCall=True)
    fake.advance(minutes=1)
    store, bookmarks = run(connector)
    before = dict(store.events)
    fake.advance(minutes=1)
    connector.write_flags([flag(anna)])
    assert fake.record(anna)["LastModifiedById"] == INTEGRATION_USER
    fake.advance(minutes=1)

    run(connector, bookmarks, store)

    # Read again (the record changed), but its events are what the store already
    # holds, so flags computed from them stay the same and nothing is written again.
    assert connector.summary.counts["Contact"] == 1
    assert store.events == before
    assert connector.write_flags([flag(anna)]) == 0


def test_owner_tasks_are_created_once_per_dedupe_key(fake, connector):
    anna = fake.insert("Contact", Name="Anna", OwnerId=DEALER_USER)
    lead = fake.insert("Lead", Name="Lea", OwnerId="00GFk000000QUEUEAAA")  # owned by a queue
    task = OwnerTask(record_id=anna, subject="Price offer for audi-a4 rerouted to you",
                     description="Head office wanted to send q4-upgrade; Anna is your customer.",
                     dedupe_key="dec_123:reroute", due=WHEN)

    first = connector.create_tasks([task, task, OwnerTask(
        record_id=lead, subject="Contact Guard: Honour the q4 offer",
        description="Promised 2% finance.", dedupe_key="dec_124:campaign", owner=None)])
    again = connector.create_tasks([task])

    assert (first, again) == (2, 0)
    tasks = {row["Guard_Dedupe_Key__c"]: row for row in fake.tables["Task"].values()}
    assert tasks["dec_123:reroute"]["OwnerId"] == DEALER_USER
    assert tasks["dec_123:reroute"]["WhoId"] == anna
    assert tasks["dec_123:reroute"]["Subject"] == (
        "Contact Guard: Price offer for audi-a4 rerouted to you")
    assert tasks["dec_123:reroute"]["ActivityDate"] == "2026-11-23"
    assert tasks["dec_124:campaign"]["Subject"] == "Contact Guard: Honour the q4 offer"
    assert "OwnerId" not in tasks["dec_124:campaign"], "queues cannot own tasks"


def live_tasks(fake, key):
    return sum(1 for row in fake.tables["Task"].values()
               if row.get("Guard_Dedupe_Key__c") == key and not row.get("IsDeleted"))


def test_a_task_another_replica_just_created_is_not_an_error(fake, connector):
    anna = fake.insert("Contact", Name="Anna")
    task = OwnerTask(record_id=anna, subject="s", description="d", dedupe_key="k1")
    # The other replica's task appears between our check and our create.
    fake.before_write = lambda: fake.insert("Task", WhoId=anna, Subject="Contact Guard: s",
                                            Guard_Dedupe_Key__c="k1")

    created = connector.create_tasks([task])

    assert created == 0
    assert connector.write_errors == []
    assert live_tasks(fake, "k1") == 1, "the younger copy, ours, is deleted"


def test_guard_tasks_are_not_synced_back_as_touches(fake, connector):
    anna = fake.insert("Contact", Name="Anna")
    connector.create_tasks([OwnerTask(record_id=anna, subject="Call Anna", description="d",
                                      dedupe_key="k")])
    task_id = next(iter(fake.tables["Task"]))
    fake.update(task_id, TaskSubtype="Call", IsClosed=True)  # the rep logs the call on it
    fake.advance(minutes=1)

    store, _ = run(connector)

    assert store.of("touch") == []


def test_a_converted_lead_is_skipped_and_said_and_the_rest_written(fake, connector):
    anna = fake.insert("Contact", Name="Anna")
    lead = fake.insert("Lead", Name="Lea", IsConverted=False)
    other = fake.insert("Lead", Name="Leo", IsConverted=False)
    # Converted between the guard's read and its write.
    fake.before_write = lambda: fake.update(lead, IsConverted=True)

    written = connector.write_flags([flag(anna), flag(lead), flag(other)])

    assert written == 2
    assert connector.write_errors == []
    [skipped] = connector.write_skipped
    assert skipped.startswith(f"{lead}: CANNOT_UPDATE_CONVERTED_LEAD")
    assert fake.record(other)["Guard_Status__c"] == "Caution"


def test_a_record_purged_before_the_write_is_skipped(fake, connector):
    anna = fake.insert("Contact", Name="Anna")
    gone = fake.insert("Contact", Name="Gone")

    def purge():
        fake.delete(gone)
        fake.purge(gone)

    fake.before_write = purge
    assert connector.write_flags([flag(anna), flag(gone)]) == 1
    assert [line.split(":")[:2] for line in connector.write_skipped] == [
        [gone, " INVALID_CROSS_REFERENCE_KEY"]]


def test_a_field_the_org_lacks_fails_the_request_whole_and_every_record_is_told(mock):
    from tests.connectors.salesforce.conftest import make_connector
    from tests.connectors.salesforce.fake import FakeSalesforce

    fake = FakeSalesforce(mock, page_size=3)  # the plugin's fields were never installed
    for name in ("Guard_Status__c", "Guard_Flags__c"):
        fake.add_field("Contact", name)  # Guard_Updated__c is missing
    people = [fake.insert("Contact", Name=f"P{n}") for n in range(250)]
    connector = make_connector(fake)

    assert connector.write_flags([flag(person) for person in people]) == 0

    assert [method for method, _ in fake.collections] == ["PATCH"], "the rest is not sent"
    assert len(connector.write_errors) == 250
    assert "INVALID_FIELD" in connector.write_errors[0]
    assert "guard install salesforce" in connector.write_errors[0]
    assert "Guard_Status__c" not in fake.record(people[0])


def test_a_task_for_a_purged_record_is_skipped_and_the_others_created(fake, connector):
    anna = fake.insert("Contact", Name="Anna")
    gone = fake.insert("Contact", Name="Gone")
    fake.delete(gone)
    fake.purge(gone)

    created = connector.create_tasks([
        OwnerTask(record_id=anna, subject="s", description="d", dedupe_key="k1"),
        OwnerTask(record_id=gone, subject="s", description="d", dedupe_key="k2")])

    assert created == 1
    assert [line.split(":")[:2] for line in connector.write_skipped] == [
        [gone, " INVALID_CROSS_REFERENCE_KEY"]]
    assert connector.write_errors == []


def test_a_create_whose_answer_is_lost_is_looked_up_not_sent_again(fake, connector):
    anna = fake.insert("Contact", Name="Anna")
    fake.lost_writes = 1  # applied, then the connection drops before the answer

    created = connector.create_tasks([OwnerTask(record_id=anna, subject="s", description="d",
                                                dedupe_key="k1")])

    assert created == 1
    assert [method for method, _ in fake.collections] == ["POST"]
    assert live_tasks(fake, "k1") == 1


def test_a_create_that_failed_before_reaching_the_org_is_sent_again_once(fake, connector):
    anna = fake.insert("Contact", Name="Anna")
    # Answered before anything was written: the look finds nothing, so it is sent again.
    fake.fail_next(503, only="composite/sobjects")

    created = connector.create_tasks([OwnerTask(record_id=anna, subject="s", description="d",
                                                dedupe_key="k1")])

    assert created == 1
    assert [method for method, _ in fake.collections] == ["POST"], "the 503 came first"
    assert live_tasks(fake, "k1") == 1


def test_creates_salesforce_never_confirms_are_reported_for_the_next_run(fake, connector):
    anna = fake.insert("Contact", Name="Anna")
    fake.fail_next(503, times=3, only="composite/sobjects")

    created = connector.create_tasks([OwnerTask(record_id=anna, subject="s", description="d",
                                                dedupe_key="k1")])

    assert created == 0
    assert connector.write_errors == [f"{anna}: Salesforce did not confirm Task 'k1'"]
    assert live_tasks(fake, "k1") == 0
