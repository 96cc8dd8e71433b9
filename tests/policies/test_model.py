"""Profiles decode from their stored form exactly as the generic field-by-field decoder did."""

from __future__ import annotations

from dataclasses import fields, replace
from datetime import UTC, date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies.model import (
    FACT_RECORDS,
    Account,
    Campaign,
    Decision,
    Evidence,
    Finding,
    Notice,
    Profile,
    Purchase,
    _evidence_decoder,
    _new_evidence,
    fast_constructor,
    parse_date,
)


def reference_profile(data) -> Profile:
    """Profile.from_dict as it was: keyword arguments, every record through the generic loop."""
    evidence = _evidence_decoder()
    kwargs = {
        "id": data.get("id"),
        "emails": tuple(data.get("emails") or ()),
        "phones": tuple(data.get("phones") or ()),
        "crm_ids": dict(data.get("crm_ids") or {}),
        "name": data.get("name"),
        "stage": data.get("stage"),
        "owner": data.get("owner"),
        "timezone": data.get("timezone"),
        "preferred_channel": data.get("preferred_channel"),
        "contact_hours": data.get("contact_hours"),
        "replacement_cycle_years": data.get("replacement_cycle_years"),
        "do_not_market_until": parse_date(data.get("do_not_market_until")),
        "account": Account._from_dict(data["account"]) if data.get("account") else None,
        "field_sources": {k: evidence(v) for k, v in (data.get("field_sources") or {}).items()},
        "sources": tuple(map(evidence, data.get("sources") or ())),
        "erased": bool(data.get("erased", False)),
    }
    for name, record in FACT_RECORDS.items():
        facts = data.get(name)
        kwargs[name] = tuple(map(record._from_dict, facts)) if facts else ()
    return Profile(**kwargs)


def outcome(decode, data):
    """The decoded value, or the type and text of the error decoding raised."""
    try:
        return decode(data)
    except Exception as exc:  # the point is to compare whatever is raised
        return (type(exc), str(exc))


sources = st.one_of(
    st.fixed_dictionaries({"system": st.sampled_from(["dms", "crm"]),
                           "type": st.sampled_from(["person", "", None]),
                           "id": st.sampled_from(["C-1", "P-1", "S-1"])}),
    st.fixed_dictionaries({"system": st.sampled_from(["dms", 1, True]), "id": st.just(1)}),
    st.fixed_dictionaries({"id": st.just("X")}),
    st.fixed_dictionaries({"system": st.just("dms"), "id": st.just(["unhashable"])}),
    st.sampled_from([None, {}, "dms:1", ["dms", "1"]]),
)
times = st.sampled_from(["2026-11-18T09:00:00+00:00", "2026-11-18T09:00:00", "2026-11-18 09:00Z",
                         "2026-11-18", None, "", "yesterday", 20261118])
days = st.sampled_from(["2027-07-25", "2027-07-25T09:00:00+00:00", None, "", "07/25/2027"])
values = st.one_of(st.none(), st.text(max_size=3), st.integers(0, 3), st.booleans(),
                   st.floats(0, 2))


def record(cls) -> st.SearchStrategy[dict]:
    """Dicts shaped like ``cls``'s stored form, some with missing, extra or malformed keys."""
    shapes = {}
    for f in fields(cls):
        if f.name == "source":
            shapes[f.name] = sources
        elif f.name in cls._datetimes:
            shapes[f.name] = times
        elif f.name in cls._dates:
            shapes[f.name] = days
        else:
            shapes[f.name] = values
    full = st.fixed_dictionaries({}, optional=shapes)
    return st.one_of(full, full.map(lambda d: {**d, "extra": 1}), st.sampled_from([[], "x"]))


profiles = st.fixed_dictionaries(
    {"id": st.one_of(st.none(), st.just("per_1"))},
    optional={
        "emails": st.lists(st.just("a@b.de"), max_size=2),
        "crm_ids": st.one_of(st.just({"salesforce": "003"}), st.none()),
        "name": values,
        "replacement_cycle_years": values,
        "do_not_market_until": days,
        "account": st.one_of(record(Account), st.none()),
        **{name: st.one_of(st.lists(record(cls), max_size=3), st.none(), st.just("x"))
           for name, cls in FACT_RECORDS.items()},
        "field_sources": st.one_of(st.dictionaries(st.sampled_from(["name", "owner"]), sources,
                                                   max_size=2), st.none()),
        "sources": st.one_of(st.lists(sources, max_size=4), st.none()),
        "erased": values,
    })


@settings(max_examples=500)
@given(profiles)
def test_profiles_decode_as_the_generic_decoder_did(data):
    assert outcome(Profile.from_dict, data) == outcome(reference_profile, data)


@settings(max_examples=300)
@given(st.sampled_from([Account, Campaign, *FACT_RECORDS.values()]).flatmap(
    lambda cls: st.tuples(st.just(cls), record(cls))))
def test_records_decode_as_the_generic_decoder_did(case):
    cls, data = case
    assert outcome(cls.from_dict, data) == outcome(cls._from_dict, data)


def test_a_stored_profile_round_trips_with_its_facts_sharing_evidence():
    contact = Evidence("dms", "person", "C-1")
    bought = Evidence("dms", "purchase", "P-1")
    profile = Profile(
        id="per_1", emails=("anna@example.com",), name="Anna", do_not_market_until=date(2027, 1, 1),
        account=Account("acc_1", name="ACME", source=Evidence("crm", "account", "A-1")),
        purchases=(Purchase("vw-id4", datetime(2026, 1, 18, 9, tzinfo=UTC), amount=61000.0,
                            source=bought),),
        field_sources={"name": contact}, sources=(contact, bought))
    decoded = Profile.from_dict(profile.to_dict())
    assert decoded == profile
    assert decoded.to_dict() == profile.to_dict()
    assert decoded.purchases[0].source is decoded.sources[1]
    assert decoded.field_sources["name"] is decoded.sources[0]


@pytest.mark.parametrize("cls", [Evidence, Account, Profile, *FACT_RECORDS.values()],
                         ids=lambda cls: cls.__name__)
def test_the_fast_constructor_builds_what_init_builds(cls):
    values = {f.name: f"v{i}" for i, f in enumerate(fields(cls))}
    built = fast_constructor(cls)(**values)
    assert built == cls(**values)
    assert repr(built) == repr(cls(**values))
    with pytest.raises(AttributeError):
        built.__setattr__(fields(cls)[0].name, "changed")
    assert _new_evidence("dms", "", "C-1") == Evidence("dms", "", "C-1")


def test_a_decision_with_an_id_is_the_decision_with_that_id():
    finding = Finding("r", "consent", "block", "no", (Evidence("crm", "consent", "O-1"),))
    decision = Decision("block", "per_1", (finding,), {"owner": "x"},
                        datetime(2026, 1, 1, tzinfo=UTC), (finding,), "v1", None,
                        (Notice("x", "r", "tell"),))
    assert decision.with_id("dec_1") == replace(decision, decision_id="dec_1")
    assert decision.with_id("dec_1").decision_id == "dec_1"
