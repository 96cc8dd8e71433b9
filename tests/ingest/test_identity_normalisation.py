"""Identity resolution: one normalised form per email, phone and CRM id."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from guard.ingest.identity import Ref, crm_refs, normalize_email, normalize_phone, reference


@pytest.mark.parametrize(("raw", "expected"), [
    ("anna@example.com", "anna@example.com"),
    ("  Anna.Schulz@Example.COM ", "anna.schulz@example.com"),
    ("ANNA@EXAMPLE.COM", "anna@example.com"),
], ids=["plain", "case-and-whitespace", "upper"])
def test_emails_normalise_to_one_form(raw, expected):
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(("raw", "region", "expected"), [
    ("+49 170 1234567", None, "+491701234567"),
    ("0170 1234567", "DE", "+491701234567"),
    ("(0170) 123-4567", "DE", "+491701234567"),
    ("+1 415 555 2671", "DE", "+14155552671"),
    ("415-555-2671", "US", "+14155552671"),
], ids=["e164-spaced", "national-de", "national-punctuated", "foreign-in-de", "national-us"])
def test_phones_normalise_to_e164(raw, region, expected):
    assert normalize_phone(raw, region) == expected


@pytest.mark.parametrize(("value", "expected"), [
    ("Anna@Example.com", Ref("email", "anna@example.com")),
    ("0170 1234567", Ref("phone", "+491701234567")),
    ({"email": "ANNA@example.com"}, Ref("email", "anna@example.com")),
    ({"phone": "+491701234567"}, Ref("phone", "+491701234567")),
    ({"salesforce": "003Ws000001"}, Ref("ref", "salesforce:003Ws000001")),
    ({"hubspot": 501}, Ref("ref", "hubspot:501")),
    ({"system": "DMS", "id": "C-1001"}, Ref("ref", "dms:C-1001")),
    ({"system": "salesforce", "type": "Contact", "id": "003Ws000001"},
     Ref("ref", "salesforce:003Ws000001")),
    ({"person": "per_1"}, Ref("person", "per_1")),
], ids=["bare-email", "bare-phone", "email", "phone", "salesforce", "hubspot", "source",
        "source-with-type", "person"])
def test_references_resolve_to_identities(value, expected):
    assert reference(value, "DE") == expected


def test_a_crm_source_and_a_crm_id_are_the_same_identity():
    assert reference({"system": "salesforce", "type": "Contact", "id": "003A"}) == \
        reference({"salesforce": "003A"})


@pytest.mark.parametrize("value", ["not an address", "anna@", "@example.com", "12", "",
                                   {"fax": "1"}, {"system": "dms"}, 42, None, ["a@b.c"]],
                         ids=["words", "no-domain", "no-local", "short-number", "empty",
                              "unknown-key", "no-id", "number", "none", "list"])
def test_unusable_references_say_why(value):
    with pytest.raises(ValueError, match="not a|needs|reference"):
        reference(value, "DE")


def test_crm_ids_may_list_several_merged_records():
    assert crm_refs({"hubspot": ["501", "502"], "salesforce": "003A"}) == [
        Ref("ref", "hubspot:501"), Ref("ref", "hubspot:502"), Ref("ref", "salesforce:003A")]


@given(st.one_of(st.text(max_size=40), st.dictionaries(
    st.sampled_from(["email", "phone", "salesforce", "hubspot", "system", "id", "person"]),
    st.one_of(st.text(max_size=20), st.integers(), st.none()), max_size=3)))
def test_reference_parsing_never_raises_anything_but_value_error(value):
    try:
        reference(value, "DE")
    except ValueError:
        pass
