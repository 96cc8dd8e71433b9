"""Plugin out: install, flags written only on change, owner tasks once each."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connectors.base import FlagUpdate, MemoryBookmarks, OwnerTask
from connectors.hubspot import ApiError

UPDATED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def test_install_creates_group_and_properties_once(fake, connector):
    done = connector.install()
    assert done[0] == "created contact property group 'Contact Guard'"
    created = set(fake.property_defs["contacts"])
    assert created == {
        "guard_replacement_cycle_years", "guard_preferred_channel", "guard_contact_hours",
        "guard_do_not_market_until", "guard_status", "guard_flags", "guard_updated",
    }  # fmt: skip
    assert all(p["groupName"] == "contact_guard" for p in fake.property_defs["contacts"].values())
    assert fake.property_defs["contacts"]["guard_flags"]["fieldType"] == "textarea"
    posts = fake.calls("POST", "/crm/v3/properties")
    assert connector.install() == []
    assert fake.calls("POST", "/crm/v3/properties") == posts


def test_install_reports_a_clashing_property_and_leaves_it(fake, connector):
    fake.groups["contacts"]["contact_guard"] = {"name": "contact_guard", "label": "Contact Guard"}
    fake.property_defs["contacts"]["guard_status"] = {"name": "guard_status", "type": "string"}
    done = connector.install()
    assert any("guard_status exists with type 'string'" in line for line in done)
    assert fake.property_defs["contacts"]["guard_status"]["type"] == "string"


def test_write_back_before_install_fails_with_hubspots_message(fake, connector):
    anna = fake.add("contacts", {"email": "anna@example.com"})
    with pytest.raises(ApiError, match='Property "guard_status" does not exist'):
        connector.write_flags([FlagUpdate(anna, "Caution", ("Open case",), UPDATED)])


def flags(contact, status="Do not contact", lines=("Opted out of email marketing",)):
    return FlagUpdate(contact, status, tuple(lines), UPDATED)


def test_flags_are_written_only_when_they_change(fake, connector):
    connector.install()
    anna = fake.add("contacts", {"email": "anna@example.com"})
    assert (
        connector.write_flags([flags(anna, lines=("Open case: brakes", "Keeps cars ~10 years"))])
        == 1
    )
    props = fake.record("contacts", anna)["properties"]
    assert props["guard_status"] == "Do not contact"
    assert props["guard_flags"] == "Open case: brakes\nKeeps cars ~10 years"
    assert props["guard_updated"] == "2026-11-23T10:00:00Z"
    updates = fake.calls("POST", "/batch/update")
    assert (
        connector.write_flags([flags(anna, lines=("Open case: brakes", "Keeps cars ~10 years"))])
        == 0
    )
    assert fake.calls("POST", "/batch/update") == updates
    assert connector.write_flags([flags(anna, status="Caution")]) == 1


def test_flags_go_out_in_batches_of_100(fake, connector):
    connector.install()
    contacts = [fake.add("contacts", {"email": f"c{n}@example.com"}) for n in range(250)]
    assert connector.write_flags([flags(c) for c in contacts]) == 250
    assert fake.calls("POST", "/contacts/batch/update") == 3


def test_flags_for_deleted_contacts_are_skipped(fake, connector):
    connector.install()
    anna = fake.add("contacts", {"email": "anna@example.com"})
    assert connector.write_flags([flags(anna), flags("999999")]) == 1


def test_our_write_back_is_not_synced_in_again(fake, connector):
    connector.install()
    anna = fake.add("contacts", {"email": "anna@example.com"})
    bookmarks = MemoryBookmarks()
    for batch in connector.sync(bookmarks):
        bookmarks.save(batch.stream, batch.bookmark)
    fake.advance(3600)
    connector.write_flags([flags(anna)])
    echoed = [e for b in connector.sync(bookmarks) for e in b.events if e["type"] == "person"]
    assert echoed == []
    fake.advance(3600)
    fake.update("contacts", anna, {"firstname": "Anna"})
    changed = [e for b in connector.sync(bookmarks) for e in b.events if e["type"] == "person"]
    assert [e["name"] for e in changed] == ["Anna"]


def task(contact, key, owner=None):
    return OwnerTask(
        record_id=contact,
        subject="Contact Guard: price offer rerouted to you",
        description="Head office wanted to send the Q4 price offer; you own this customer.",
        dedupe_key=key,
        owner=owner,
    )


def test_owner_tasks_are_created_once_each_on_the_contact(fake, connector):
    anna = fake.add("contacts", {"email": "anna@example.com", "hubspot_owner_id": "77"})
    paul = fake.add("contacts", {"email": "paul@example.com", "hubspot_owner_id": "78"})
    batch = [task(anna, "dec_1"), task(paul, "dec_2", owner="99"), task(anna, "dec_1")]
    assert connector.create_tasks(batch) == 2
    tasks = list(fake.objects["tasks"].values())
    assert len(tasks) == 2
    by_contact = {next(iter(fake.links[("tasks", "contacts")][t["id"]])): t for t in tasks}
    assert by_contact[anna]["properties"]["hubspot_owner_id"] == "77"
    assert by_contact[paul]["properties"]["hubspot_owner_id"] == "99"
    assert by_contact[anna]["properties"]["hs_task_subject"].startswith("Contact Guard:")
    assert by_contact[anna]["properties"]["hs_task_status"] == "NOT_STARTED"
    assert connector.create_tasks(batch) == 0
    assert len(fake.objects["tasks"]) == 2
    assert connector.create_tasks([task(anna, "dec_3")]) == 1


def keyed_tasks(fake):
    return [t for t in fake.objects["tasks"].values()
            if "Contact Guard key: " in (t["properties"].get("hs_task_body") or "")]


@pytest.mark.parametrize("lost", [None, 502, 504], ids=["dropped", "502", "504"])
def test_a_create_whose_answer_is_lost_is_looked_up_not_repeated(fake, connector, lost):
    # The batch reached HubSpot and was applied; only its answer went missing.
    anna = fake.add("contacts", {"email": "anna@example.com", "hubspot_owner_id": "77"})
    paul = fake.add("contacts", {"email": "paul@example.com", "hubspot_owner_id": "78"})
    fake.lose_answer("/tasks/batch/create", lost)
    assert connector.create_tasks([task(anna, "dec_1"), task(paul, "dec_2")]) == 2
    assert len(keyed_tasks(fake)) == 2
    assert fake.calls("POST", "/tasks/batch/create") == 1
    assert connector.write_errors == []


def test_tasks_still_missing_after_a_lost_answer_are_created_once(fake, connector):
    # The gateway gave up before HubSpot applied the batch: the look finds the task
    # missing, and only then is it sent again.
    anna = fake.add("contacts", {"email": "anna@example.com", "hubspot_owner_id": "77"})
    fake.lose_answer("/tasks/batch/create", 504, applied=False)
    assert connector.create_tasks([task(anna, "dec_1")]) == 1
    assert len(keyed_tasks(fake)) == 1
    assert fake.calls("POST", "/tasks/batch/create") == 2


def test_a_create_answered_429_is_repeated_by_the_transport(fake, connector):
    anna = fake.add("contacts", {"email": "anna@example.com", "hubspot_owner_id": "77"})
    fake.throttle(1, retry_after="0", path_part="/tasks/batch/create")
    assert connector.create_tasks([task(anna, "dec_1")]) == 1
    assert len(keyed_tasks(fake)) == 1
    assert fake.calls("POST", "/tasks/batch/create") == 2


def test_a_batch_hubspot_refuses_whole_is_split_and_only_the_bad_task_skipped(fake, connector):
    contacts = [fake.add("contacts", {"email": f"c{n}@example.com", "hubspot_owner_id": "77"})
                for n in range(5)]
    batch = [task(c, f"dec_{n}") for n, c in enumerate(contacts)]
    batch[3] = task(contacts[3], "dec_3", owner="4040")  # no such HubSpot user
    assert connector.create_tasks(batch) == 4
    assert len(keyed_tasks(fake)) == 4
    [skipped] = connector.write_skipped
    assert skipped.startswith(f"{contacts[3]}: HubSpot refused task 'dec_3'")
    assert "4040" in skipped
    assert connector.write_errors == []
    assert connector.create_tasks(batch) == 0, "the refused task is said once, not retried here"


def test_a_task_for_a_contact_gone_from_hubspot_is_skipped_and_said(fake, connector):
    anna = fake.add("contacts", {"email": "anna@example.com"})
    assert connector.create_tasks([task(anna, "dec_1"), task("999999", "dec_2")]) == 1
    assert connector.write_skipped == ["999999: no such contact (deleted or merged away)"]


def test_creates_hubspot_never_confirms_are_reported_for_the_next_run(fake, connector):
    anna = fake.add("contacts", {"email": "anna@example.com"})
    for _ in range(3):  # every attempt dies at the gateway before HubSpot applies it
        fake.lose_answer("/tasks/batch/create", 502, applied=False)
    assert connector.create_tasks([task(anna, "dec_1")]) == 0
    assert connector.write_errors == [
        f"{anna}: HubSpot did not confirm task 'dec_1'; tried again next run"]
    assert fake.calls("POST", "/tasks/batch/create") == 3
    assert keyed_tasks(fake) == []


def test_a_contact_with_more_tasks_than_one_association_page_gets_no_duplicate(fake, connector):
    fake.association_page = 2
    anna = fake.add("contacts", {"email": "anna@example.com"})
    assert connector.create_tasks([task(anna, f"dec_{n}") for n in range(5)]) == 5
    assert connector.create_tasks([task(anna, "dec_4")]) == 0
    assert len(keyed_tasks(fake)) == 5
