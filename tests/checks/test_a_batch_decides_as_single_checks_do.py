"""The bulk reads of batches and screens: list parameters, stored profiles, attempt text."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa

from guard.checks.facts import READ_BY_IDENTITY, read_facts
from guard.errors import InvalidField
from guard.ingest.identity import Ref
from guard.store.tables import identities
from guard.store.tables import people as people_table
from guard.store.util import utc_now
from policies.model import Profile
from tests.conftest import accepted, person, purchase

TEMPLATE = {"channel": "email", "purpose": "price_offer", "sender": "oem", "product": "audi-a4",
            "campaign": "spring"}


@pytest.fixture
def people(store):
    accepted(store.ingest([
        person("003A", "anna@example.com", stage="customer", owner="dealer:munich"),
        purchase("P1", {"email": "anna@example.com"}),
        person("003B", "björn@exämple.de", phones=["+491701234567"]),
        person("003C", "carla@example.com"),
        {"type": "consent", "source": {"system": "crm", "id": "c1"}, "email": "ben@example.com",
         "channel": "*", "purpose": "*", "status": "opt_out"},
        {"type": "campaign", "source": {"system": "crm", "id": "spring"}, "id": "spring",
         "purpose": "price_offer", "offer": "10% off"},
    ]))
    accepted(store.ingest([{"type": "erase", "source": {"system": "crm", "id": "gdpr-1"},
                            "person": {"salesforce": "003C"}}]))
    return store


RECIPIENTS = ["anna@example.com", "björn@exämple.de", "+491701234567", "carla@example.com",
              "ben@example.com", "new@example.com", "broken@", "ANNA@example.com",
              {"salesforce": "003A"}, {"person": "per_nobody"}]


def test_a_batch_decides_each_attempt_as_a_single_check_does(people):
    bodies = [{**TEMPLATE, "to": to, "at": f"2026-11-2{i % 3}T09:00:00Z"}
              for i, to in enumerate(RECIPIENTS)]
    batch = people.check_many(bodies, commit=False)
    for body, outcome in zip(bodies, batch, strict=True):
        try:
            single = people.check(body, commit=False)
        except InvalidField as exc:
            assert isinstance(outcome, InvalidField) and str(outcome) == str(exc)
            continue
        assert outcome.to_dict() | {"decision_id": None} == \
            single.to_dict() | {"decision_id": None}
        recorded = people.decision(outcome.decision_id)
        # The ledger holds the attempt's and decision's text as json.dumps wrote it.
        assert recorded["verdict"] == outcome.verdict
        assert recorded["attempt"]["at"] == body["at"].replace("Z", "+00:00")
    assert sum(isinstance(o, InvalidField) for o in batch) == 2
    assert [o.rules for o in batch if not isinstance(o, InvalidField)].count(("erased",)) == 1


def test_a_screen_decides_as_single_checks_do(people):
    screened = list(people.screen(TEMPLATE, RECIPIENTS))
    assert [r for r, _ in screened] == RECIPIENTS
    for to, outcome in screened:
        try:
            single = people.check({**TEMPLATE, "to": to}, commit=False)
        except InvalidField:
            assert isinstance(outcome, InvalidField)
            continue
        assert outcome.to_dict() | {"decision_id": None} == \
            single.to_dict() | {"decision_id": None}


@pytest.mark.parametrize("size", [1, 2, 7, 300])
def test_a_list_parameter_finds_what_an_in_list_finds(people, engine, size):
    values = ["anna@example.com", "björn@exämple.de", "nobody@example.com", "o'hara@x.de",
              *(f"p{i}@example.com" for i in range(size))][:size]
    with engine.connect() as conn:
        statement = READ_BY_IDENTITY[conn.dialect.name]
        listed = {(row.value, row.id) for row in conn.execute(statement, {
            "kind": "email", "values": values, "since": utc_now(), "campaign": None})}
        expected = conn.execute(
            sa.select(identities.c.value, identities.c.person_id)
            .where(identities.c.kind == "email", identities.c.value.in_(values))).all()
    assert sorted(listed) == sorted(tuple(row) for row in expected)
    assert len(expected) == len({"anna@example.com", "björn@exämple.de"} & set(values))


def test_stored_profiles_of_a_batch_are_read_lazily_and_equal_the_eager_decoding(people,
                                                                                 engine):
    target = Ref("email", "anna@example.com")
    with engine.connect() as conn:
        known = read_facts(conn, [target], since=utc_now(), erasure_key=None)
        [(person_id, profile)] = known.profiles.items()
        stored = conn.execute(sa.select(people_table.c.profile)
                              .where(people_table.c.id == person_id)).scalar()
    if isinstance(stored, str):
        stored = json.loads(stored)
    assert profile == Profile.from_dict(stored)
    assert profile.purchases[0].product == "audi-a4"
