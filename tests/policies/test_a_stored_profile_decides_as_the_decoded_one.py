"""A stored profile decoded lazily reads, compares and decides as the eagerly decoded one."""

from __future__ import annotations

import pickle
from dataclasses import fields, replace
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from policies import decide, default_policy_path, load_policy
from policies.model import (
    FACT_RECORDS,
    Account,
    Attempt,
    Case,
    Consent,
    Contract,
    Evidence,
    Invoice,
    Profile,
    Purchase,
    Service,
)
from tests.conftest import NOW

CONTACT = Evidence("dms", "person", "C-1")
BOUGHT = Evidence("dms", "purchase", "P-1")
policy = load_policy(default_policy_path())

facts = {
    "purchases": st.lists(st.builds(
        Purchase, product=st.sampled_from(["vw-id4", None]),
        at=st.sampled_from([datetime(2026, 1, 18, 9, tzinfo=UTC), NOW]),
        amount=st.sampled_from([None, 61000.0]), source=st.sampled_from([None, BOUGHT])),
        max_size=2),
    "contracts": st.lists(st.builds(Contract, status=st.sampled_from(["active", "ended"]),
                                    end=st.sampled_from([None, date(2027, 1, 1)]),
                                    source=st.sampled_from([None, CONTACT])), max_size=2),
    "consents": st.lists(st.builds(Consent, channel=st.sampled_from(["email", "*"]),
                                   purpose=st.sampled_from(["newsletter", "marketing", "*"]),
                                   status=st.sampled_from(["opt_in", "opt_out"]),
                                   at=st.sampled_from([None, NOW]),
                                   source=st.sampled_from([None, CONTACT])), max_size=3),
    "cases": st.lists(st.builds(Case, status=st.sampled_from(["open", "closed"]),
                                owner=st.sampled_from([None, "dealer:1"])), max_size=2),
    "services": st.lists(st.builds(Service, next_due=st.sampled_from([None, date(2026, 12, 1)]),
                                   source=st.sampled_from([None, CONTACT])), max_size=2),
    "invoices": st.lists(st.builds(Invoice, number=st.just("I-1"),
                                   sent_at=st.sampled_from([None, NOW]),
                                   due=st.sampled_from([None, date(2026, 11, 1)])), max_size=2),
}
profiles = st.builds(
    Profile, id=st.sampled_from(["per_1", None]), emails=st.just(("anna@example.com",)),
    stage=st.sampled_from([None, "customer", "lead"]), owner=st.sampled_from([None, "dealer:1"]),
    do_not_market_until=st.sampled_from([None, date(2027, 1, 1)]),
    account=st.sampled_from([None, Account("acc_1", owner="dealer:2", source=CONTACT)]),
    field_sources=st.sampled_from([{}, {"owner": CONTACT}]),
    sources=st.sampled_from([(), (CONTACT, BOUGHT)]), erased=st.booleans(),
    **{name: strategy.map(tuple) for name, strategy in facts.items()})


@settings(max_examples=200, deadline=None)
@given(profiles)
def test_a_stored_profile_equals_the_eager_decoding(profile):
    data = profile.to_dict()
    eager, stored = Profile.from_dict(data), Profile.from_stored(data)
    assert stored == eager and eager == stored and not stored != eager
    assert repr(stored) == repr(eager)
    assert stored.to_dict() == data
    for f in fields(Profile):
        assert getattr(Profile.from_stored(data), f.name) == getattr(eager, f.name), f.name


@settings(max_examples=100, deadline=None)
@given(profiles, st.sampled_from(["newsletter", "service_reminder", "collections", "trade_in"]),
       st.sampled_from(["email", "sms", "call"]))
def test_a_stored_profile_decides_as_the_eager_one(profile, purpose, channel):
    attempt = Attempt(channel=channel, to="anna@example.com", purpose=purpose, sender="oem",
                      at=NOW, product="vw-id4")
    data = profile.to_dict()
    assert decide(attempt, Profile.from_stored(data), [], policy, NOW) == \
        decide(attempt, Profile.from_dict(data), [], policy, NOW)


def test_facts_are_decoded_only_when_read():
    profile = Profile(id="per_1", consents=(Consent("email", "*", "opt_out", source=CONTACT),),
                      purchases=(Purchase("vw-id4", NOW, source=BOUGHT),),
                      sources=(CONTACT, BOUGHT))
    stored = Profile.from_stored(profile.to_dict())
    unread = [f.name for f in fields(Profile)
              if f.name not in stored.__slots__ and not _is_set(stored, f.name)]
    assert set(unread) == {*FACT_RECORDS, "field_sources", "sources"}
    assert stored.consents == profile.consents
    assert _is_set(stored, "consents") and not _is_set(stored, "purchases")
    # Decoded facts share the profile's evidence, as the eager decoder's do.
    assert stored.purchases[0].source is stored.sources[1]


def test_a_stored_profile_can_be_replaced_and_pickled():
    profile = Profile(id="per_1", consents=(Consent("email", "*", "opt_out"),), name="Anna")
    stored = Profile.from_stored(profile.to_dict())
    assert replace(stored, name="Ben") == replace(profile, name="Ben")
    assert pickle.loads(pickle.dumps(stored)) == profile


def test_malformed_stored_facts_fail_as_the_generic_decoder_does_when_read():
    stored = Profile.from_stored({"id": "per_1", "consents": [{"channel": "email"}]})
    try:
        Consent.from_dict({"channel": "email"})
    except TypeError as exc:
        expected = str(exc)
    try:
        stored.consents  # noqa: B018 - reading it decodes it
    except TypeError as exc:
        assert str(exc) == expected
    else:
        raise AssertionError("a consent without purpose and status decoded")


def _is_set(profile: Profile, name: str) -> bool:
    try:
        Profile.__dict__[name].__get__(profile)
    except AttributeError:
        return False
    return True
