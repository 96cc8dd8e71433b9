"""Stored JSON reads back exactly as written, and as json.loads read it, on both stores."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from guard.store import ledger as contact_ledger
from guard.store.codec import dumps_json, loads_json
from guard.store.engine import make_engine
from guard.store.migrate import upgrade
from guard.store.tables import ledger, people
from policies.model import Attempt, Decision
from tests.conftest import NOW
from tests.store.test_ledger import BLOCK, DECIDED, numbered

BERLIN = timezone(timedelta(hours=1))

# A stored profile with what encodes differently in orjson and json.dumps: text beyond
# ASCII, integers near the 64-bit limits, floats, escapes, nesting.
PROFILE = {
    "id": "per_1",
    "emails": ["jörg@exämple.de"],
    "phones": ["+4915112345678"],
    "crm_ids": {"salesforce": ["003ABC"], "dms": ["C-1"]},
    "name": "Jörg Müller-Łukasiewicz 李 😀",
    "replacement_cycle_years": 7.5,
    "numbers": [2**63 - 1, -(2**63), 2**64 - 1, 0, -0.0, 1e300, 5e-324, 0.1, 1.0, 10**18],
    "nested": [[1, [2, [3, {"deep": [None, True, False, ""]}]]], [], {}],
    "text": 'a "quoted" \\ backslash\n\t\u2028 \x01 </script>',
    "erased": False,
}
# Values orjson does not write (json.dumps writes them, as before) nor read the same.
BEYOND = {"huge": 2**64, "low": -(2**63) - 1, "googol": 10**100}
LONE = {"lone": "\ud800x"}


def same(a, b) -> bool:
    """Equal, and of the same types and key order throughout (1, 1.0 and True differ)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return repr(a) == repr(b)  # -0.0 and NaN too
    return a == b


def store_profile(engine, person_id: str, profile: dict) -> None:
    with engine.begin() as conn:
        conn.execute(sa.insert(people).values(id=person_id, profile=profile, erased=False,
                                              created_at=NOW, updated_at=NOW))


def read_profile(engine, person_id: str) -> tuple:
    """The profile as SQLAlchemy reads it, as the single check reads it, and its text."""
    where = people.c.id == person_id
    with engine.connect() as conn:
        typed = conn.execute(sa.select(people.c.profile).where(where)).scalar()
        text = conn.execute(sa.select(sa.cast(people.c.profile, sa.Text)).where(where)).scalar()
    return typed, loads_json(text), text


@pytest.mark.parametrize("profile", [PROFILE, {**PROFILE, **BEYOND}, {**PROFILE, **LONE}],
                         ids=["within-64-bits", "beyond-64-bits", "lone-surrogate"])
def test_a_stored_profile_reads_back_identically(engine, profile):
    store_profile(engine, "per_1", profile)
    typed, decoded, text = read_profile(engine, "per_1")
    assert same(typed, profile)
    assert same(decoded, profile)
    assert same(json.loads(text), profile)


def test_profiles_stored_before_read_back_as_json_loads_read_them(engine, db_url):
    # Rows written by json.dumps (the serializer before orjson): ASCII escapes, big numbers.
    old = make_engine(db_url, json_serializer=json.dumps)
    try:
        store_profile(old, "per_old", PROFILE)
        store_profile(old, "per_big", {**PROFILE, **BEYOND})
        store_profile(old, "per_lone", {**PROFILE, **LONE})
    finally:
        old.dispose()
    for person_id, profile in (("per_old", PROFILE), ("per_big", {**PROFILE, **BEYOND}),
                               ("per_lone", {**PROFILE, **LONE})):
        typed, decoded, text = read_profile(engine, person_id)
        assert "\\u00f6" in text  # as json.dumps wrote it
        assert same(typed, profile)
        assert same(decoded, profile)


def test_non_finite_numbers_json_dumps_stored_still_read_back(tmp_path):
    # SQLite took json.dumps's NaN and Infinity (PostgreSQL's json type never did).
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = make_engine(url, json_serializer=json.dumps)
    upgrade(old)
    store_profile(old, "per_nan", {"a": [math.inf, -math.inf], "b": math.nan})
    old.dispose()
    engine = make_engine(url)
    try:
        typed, decoded, _ = read_profile(engine, "per_nan")
    finally:
        engine.dispose()
    for found in (typed, decoded):
        assert found["a"] == [math.inf, -math.inf] and math.isnan(found["b"])


def test_both_stores_write_json_with_the_codec(engine):
    store_profile(engine, "per_2", {"name": "Jörg", "n": [1, 2]})
    _, _, text = read_profile(engine, "per_2")
    assert text == '{"name":"Jörg","n":[1,2]}'  # orjson's form (json.dumps escapes the ö)
    if engine.dialect.name == "postgresql":
        # psycopg decodes json and jsonb itself: with the codec, not json.loads.
        with engine.connect() as conn:
            adapters = conn.connection.driver_connection.adapters
            for oid in (114, 3802):  # json, jsonb
                assert adapters.get_loader(oid, 0)._loads is loads_json
                assert adapters.get_loader(oid, 1)._loads is loads_json


def test_ledger_attempts_and_decisions_decode_to_their_dicts(engine):
    with engine.begin() as conn:
        contact_ledger.record_many(conn, numbered("dec_", DECIDED), committed=True, now=NOW)
    with engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(
            ledger.c.id, ledger.c.attempt, ledger.c.decision,
            sa.cast(ledger.c.attempt, sa.Text).label("attempt_text"),
            sa.cast(ledger.c.decision, sa.Text).label("decision_text")))}
    for decision, tried in numbered("dec_", DECIDED):
        row = rows[decision.decision_id]
        for stored, text, wanted in ((row.attempt, row.attempt_text, tried.to_dict()),
                                     (row.decision, row.decision_text, decision.to_dict())):
            assert same(stored, wanted)
            assert same(json.loads(text), wanted)  # readable without the codec as well


# Small pools of values that read equal but are written apart (1, 1.0, True; one instant
# in two offsets or folds), and text that needs escaping.
texts = st.one_of(st.none(), st.sampled_from(["", "a", "null", '"', "é", "\u2028"]),
                  st.text(max_size=4))
times = st.builds(lambda base, tz, fold: base.astimezone(tz).replace(fold=fold),
                  st.sampled_from([NOW, NOW + timedelta(microseconds=1)]),
                  st.sampled_from([UTC, BERLIN, timezone(timedelta(hours=-5, minutes=-30))]),
                  st.integers(0, 1))
attempts = st.builds(
    Attempt, channel=st.just("email"),
    to=st.one_of(st.sampled_from(["a@b.de", "ü@b.de", '"\\"']), st.text(max_size=8)),
    purpose=st.just("newsletter"), sender=st.just("oem"), at=times,
    campaign=st.sampled_from([None, "spring"]), template=st.sampled_from([None, "t", "é"]),
    product=st.sampled_from([None, "1", 1, 1.0, True, 0, False, 2**63 - 1]))
decisions = st.builds(
    Decision, verdict=st.sampled_from(["allow", "block"]), person=texts,
    reasons=st.sampled_from([(), (BLOCK,)]), reroute=st.sampled_from([None, {"owner": "x"}]),
    not_before=st.one_of(st.none(), times), monitored=st.sampled_from([(), (BLOCK,)]),
    policy_version=st.one_of(st.text(max_size=4), st.none()),
    decision_id=st.one_of(st.none(), st.text(max_size=6)))


@pytest.fixture(scope="module")
def sqlite_store(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('codec') / 'guard.db'}")
    upgrade(engine)
    yield engine
    engine.dispose()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(decisions, attempts), min_size=1, max_size=8))
def test_any_recorded_batch_decodes_to_its_dicts(sqlite_store, decided):
    # Unique ids per example: the store is shared by every example.
    decided = [(d.with_id(contact_ledger.new_decision_id()), a) for d, a in decided]
    with sqlite_store.begin() as conn:
        contact_ledger.record_many(conn, decided, committed=False, now=NOW)
        stored = {r.id: r for r in conn.execute(
            sa.select(ledger.c.id, ledger.c.attempt, ledger.c.decision)
            .where(ledger.c.id.in_([d.decision_id for d, _ in decided])))}
    for decision, tried in decided:
        assert same(stored[decision.decision_id].attempt, tried.to_dict())
        assert same(stored[decision.decision_id].decision, decision.to_dict())


# Any JSON value json.dumps writes: integers of any size, any text (lone surrogates too).
keys = st.text(max_size=6)
finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-2**70, 2**70),
                    finite, st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=20)


@settings(max_examples=500)
@given(values)
def test_the_codec_reads_what_json_reads(value):
    expected = json.loads(json.dumps(value))
    for text in (json.dumps(value), dumps_json(value)):  # rows written before and now
        assert same(loads_json(text), expected)
        assert same(loads_json(text.encode("utf-8", "surrogatepass")), expected)
        assert same(json.loads(text), expected)


@settings(max_examples=100)
@given(st.one_of(st.floats(), st.lists(st.floats(), max_size=3)))
def test_json_dumps_text_with_any_float_reads_as_json_loads_reads_it(value):
    text = json.dumps(value)  # NaN and Infinity included: json.dumps writes them
    assert same(loads_json(text), json.loads(text))


@pytest.mark.parametrize("value", [
    {1: "a", None: "b", False: "c", 1.5: "d"}, 2**64, -(2**63) - 1, "\ud800", ["\udfff"],
    {"n": [10**30]},
], ids=["non-text-keys", "2**64", "below-int64", "lone-surrogate", "surrogate-in-list",
        "nested-huge"])
def test_values_orjson_refuses_are_written_as_json_dumps_writes_them(value):
    assert dumps_json(value) == json.dumps(value)


def test_values_nested_deeper_than_orjson_allows_are_written_by_json_dumps():
    value: list = []
    for _ in range(300):
        value = [value]
    assert same(loads_json(dumps_json(value)), value)


@dataclass
class _Record:
    name: str


@pytest.mark.parametrize("value", [NOW, {"at": NOW}, {1, 2}, Decimal("1.5"), _Record("x"),
                                   object()], ids=["datetime", "datetime-inside", "set",
                                                   "decimal", "dataclass", "object"])
def test_values_json_dumps_rejects_are_still_rejected(value):
    with pytest.raises(TypeError):
        json.dumps(value)
    with pytest.raises(TypeError):
        dumps_json(value)
