"""The mapping file: validated once at start-up, errors name the key, org files overlay defaults."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.salesforce import MappingError, SalesforceConnector, load_mapping
from connectors.salesforce.errors import ConnectorError


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"contact": {"colour": "red"}}, "contact.colour: Unknown field"),
        ({"contact": {"fields": {"shoe_size": ["X__c"]}}}, "contact.fields.shoe_size: Must be"),
        ({"contact": {"dealer_field": "Id FROM User --"}},
         "contact.dealer_field: not a Salesforce"),
        ({"owners": {"005A": "Dealer Munich"}}, "owners.005A: not a sender"),
        ({"lead": {"stage": "friend"}}, "lead.stage: Must be one of"),
        ({"campaign_member": {"channels": {"Email": "pigeon"}}},
         "campaign_member.channels.Email: Must be one of"),
        ({"objects": [{"object": "Sale__c", "event": "purchase", "person": "Buyer__c",
                       "fields": {"product": "Model__c"}}]}, "objects.0.fields.at: required"),
        ({"objects": [{"object": "Sale__c", "event": "purchase", "person": "Buyer__c",
                       "fields": {"at": "D__c", "colour": "C__c"}}]},
         "objects.0.fields.colour: not a field of a purchase event"),
        ({"objects": [{"object": "Sale__c", "event": "purchase",
                       "fields": {"at": "D__c"}}]}, "objects.0: name a person or an account"),
        ({"contact": "yes"}, "contact: Invalid input type"),
    ],
    ids=["unknown-key", "unknown-person-field", "soql-injection", "bad-sender", "bad-stage",
         "bad-channel", "custom-object-missing-at", "custom-object-unknown-field",
         "custom-object-without-reference", "section-not-a-mapping"],
)
def test_bad_mappings_fail_at_start_up_naming_the_key(override, message):
    with pytest.raises(MappingError) as caught:
        load_mapping(override)
    assert message in str(caught.value)


def test_an_orgs_fields_go_before_the_plugins(tmp_path):
    path = tmp_path / "mapping.yaml"
    path.write_text("contact:\n  fields:\n    replacement_cycle_years: [Keeps_Cars_Years__c]\n")

    mapping = load_mapping(path)

    assert mapping.contact["fields"]["replacement_cycle_years"] == (
        "Keeps_Cars_Years__c", "Guard_Replacement_Cycle_Years__c")
    assert mapping.contact["fields"]["contact_hours"] == ("Guard_Contact_Hours__c",)


def test_unreadable_and_invalid_files_are_mapping_errors(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("contact: [unclosed\n")

    with pytest.raises(MappingError, match="not valid YAML"):
        load_mapping(broken)
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "missing.yaml")


def test_campaign_stream_is_on_only_when_offer_fields_are_mapped():
    assert not load_mapping().campaigns_enabled
    assert load_mapping({"campaign": {"purpose_field": "Guard_Purpose__c",
                                      "offer_field": "Guard_Offer__c"}}).campaigns_enabled


MAPPING_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.sampled_from(["fields", "owners", "contact", "lead", "objects",
                                       "event", "object", "stage", "x"]), children, max_size=3),
    max_leaves=12,
)


@given(st.dictionaries(
    st.sampled_from(["owners", "contact", "lead", "opportunity", "task", "campaign", "objects"]),
    MAPPING_VALUES, max_size=3))
def test_any_mapping_document_loads_or_fails_with_a_mapping_error(document):
    try:
        load_mapping(document)
    except MappingError:
        pass


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "no Salesforce credentials: set GUARD_SALESFORCE_USERNAME"),
        ({"GUARD_SALESFORCE_CONSUMER_KEY": "k", "GUARD_SALESFORCE_CONSUMER_SECRET": "s"},
         "GUARD_SALESFORCE_DOMAIN: client credentials need the org's My Domain"),
        ({"GUARD_SALESFORCE_API_RESERVE": "lots"}, "GUARD_SALESFORCE_API_RESERVE: not a number"),
        ({"GUARD_SALESFORCE_MAPPING": "/nonexistent/mapping.yaml"}, "cannot read"),
    ],
    ids=["nothing-set", "client-credentials-without-domain", "bad-reserve", "missing-mapping"],
)
def test_from_env_says_what_to_set(environ, message):
    with pytest.raises(ConnectorError) as caught:
        SalesforceConnector.from_env(environ)
    assert message in str(caught.value)
    assert isinstance(caught.value, ValueError), "the CLI reports ValueErrors without a traceback"
