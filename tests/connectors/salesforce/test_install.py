"""``guard install salesforce``: fields and permission sets via the Metadata API, idempotently."""

from __future__ import annotations

from tests.connectors.salesforce.conftest import make_connector
from tests.connectors.salesforce.fake import FakeSalesforce
from tests.connectors.salesforce.org import run


def test_install_creates_fields_and_permission_sets_then_changes_nothing(mock):
    fake = FakeSalesforce(mock)  # a fresh org without the plugin's fields
    connector = make_connector(fake)

    first = connector.install()
    second = connector.install()

    assert len([line for line in first if line.startswith("created field")]) == 15
    assert "created field Contact.Guard_Flags__c" in first
    assert "created field Activity.Guard_Dedupe_Key__c" in first
    assert first[-2:] == ["created permission set Contact_Guard_Users",
                          "created permission set Contact_Guard_Integration"]
    assert second == []
    flags = fake.metadata[("CustomField", "Lead.Guard_Flags__c")]
    assert (flags["type"], flags["length"], flags["visibleLines"]) == ("LongTextArea", "32768", "5")
    channel = fake.metadata[("CustomField", "Contact.Guard_Preferred_Channel__c")]
    assert [value["fullName"] for value in channel["valueSet"]["valueSetDefinition"]["value"]] == [
        "email", "sms", "call", "mail", "push"]
    # Activity fields cannot be unique: the key is an indexed external id only.
    dedupe = fake.metadata[("CustomField", "Activity.Guard_Dedupe_Key__c")]
    assert (dedupe.get("externalId"), dedupe.get("unique")) == ("true", None)
    reps = fake.metadata[("PermissionSet", "Contact_Guard_Users")]["fieldPermissions"]
    editable = {perm["field"]: perm["editable"] for perm in reps}
    assert editable["Contact.Guard_Contact_Hours__c"] == "true"
    assert editable["Contact.Guard_Status__c"] == "false", "reps read the guard's output only"


def test_sync_needs_the_installed_fields_and_works_after_install(mock):
    fake = FakeSalesforce(mock)
    anna = fake.insert("Contact", Name="Anna", Email="anna@example.com")
    fake.advance(minutes=1)
    connector = make_connector(fake)

    connector.install()
    store, _ = run(connector)

    assert store.get("person", "Contact", anna)["name"] == "Anna"


def test_install_repairs_a_field_an_admin_changed(mock):
    fake = FakeSalesforce(mock)
    connector = make_connector(fake)
    connector.install()
    fake.metadata[("CustomField", "Contact.Guard_Contact_Hours__c")]["length"] = "5"

    assert connector.install() == ["updated field Contact.Guard_Contact_Hours__c"]
    assert fake.metadata[("CustomField", "Contact.Guard_Contact_Hours__c")]["length"] == "11"
