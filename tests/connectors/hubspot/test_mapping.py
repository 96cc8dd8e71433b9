"""The mapping configuration: defaults, portal overrides, and clear errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.hubspot import MappingError, load_mapping, parse_mapping
from connectors.hubspot.client import Pacer


def test_shipped_mapping_loads_with_the_agreed_stages():
    mapping = load_mapping()
    assert mapping.stages["lead"] == "prospect"
    assert mapping.stages["opportunity"] == "opportunity"
    assert mapping.stages["customer"] == "customer"
    assert mapping.contact_fields["replacement_cycle_years"] == ("guard_replacement_cycle_years",)
    assert mapping.sender_for_owner("12") == "hubspot-owner:12"


def test_portal_mapping_adds_to_the_defaults():
    mapping = parse_mapping(
        {
            "contact": {
                "fields": {
                    "replacement_cycle_years": ["keeps_cars", "guard_replacement_cycle_years"]
                }
            },
            "owners": {"12": "dealer:munich"},
        }  # fmt: skip
    )
    assert mapping.contact_fields["replacement_cycle_years"][0] == "keeps_cars"
    assert mapping.contact_fields["preferred_channel"] == ("guard_preferred_channel",)
    assert mapping.stages["customer"] == "customer"
    assert mapping.sender_for_owner("12") == "dealer:munich"


@pytest.mark.parametrize(
    "document, field",
    [
        ({"contcat": {}}, "contcat"),
        ({"contact": {"fields": {"shoe_size": ["x"]}}}, "contact.fields"),
        ({"contact": {"stages": {"lead": "hot"}}}, "contact.stages"),
        ({"engagements": {"emails": {"channel": "fax"}}}, "engagements.emails.channel"),
        ({"objects": [{"object_type": "p_x", "event": "purchase", "fields": {"colour": "c"}}]},
         "objects[0].fields.colour"),
        ({"objects": [{"object_type": "p_x", "event": "purchase", "fields": {"product": "p"}}]},
         "objects[0].fields"),
        ({"objects": [{"object_type": "p_x", "event": "meeting", "fields": {}}]},
         "objects[0].event"),
        (["not", "a", "mapping"], "mapping"),
    ],
    ids=["unknown-section", "unknown-person-field", "unknown-stage", "unknown-channel",
         "field-not-of-event", "missing-required-field", "unknown-event", "not-a-mapping"],
)  # fmt: skip
def test_bad_mapping_names_the_offending_key(document, field):
    with pytest.raises(MappingError) as caught:
        parse_mapping(document)
    assert caught.value.field.startswith(field)


def test_unreadable_and_invalid_yaml_files_are_named(tmp_path):
    with pytest.raises(MappingError, match="cannot read"):
        load_mapping(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("owners: [unclosed\n")
    with pytest.raises(MappingError, match="not valid YAML"):
        load_mapping(bad)


yaml_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3)
    ),
    max_leaves=12,
)
sections = st.sampled_from(
    ["owners", "contact", "deals", "tickets", "engagements", "subscriptions", "objects"]
)


@given(st.dictionaries(sections, yaml_values, max_size=4))
def test_any_document_either_loads_or_raises_a_mapping_error(document):
    try:
        parse_mapping(document)
    except MappingError as error:
        assert error.field


def test_pacer_keeps_requests_within_the_window():
    now = [0.0]
    slept = []

    def sleep(seconds):
        slept.append(seconds)
        now[0] += seconds

    pacer = Pacer(3, 10.0, monotonic=lambda: now[0], sleep=sleep)
    for _ in range(3):
        pacer.wait()
    assert slept == []
    now[0] = 4.0
    pacer.wait()  # the fourth request waits until the first leaves the window
    assert slept == [6.0]
    now[0] = 30.0
    pacer.wait()
    assert slept == [6.0]
