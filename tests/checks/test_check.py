"""Checks against the store: validation, recording, dry runs, tasks, screening, erasure."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from guard.checks.service import Guard
from guard.errors import InvalidField, NotFound
from policies import parse_policy
from tests.conftest import NOW, accepted, person, purchase

CAP = """
rules:
  - id: cap
    kind: frequency_cap
    categories: [marketing]
    max: 2
    window: 30d
"""
NEWSLETTER = {"channel": "email", "to": "anna@example.com", "purpose": "newsletter",
              "sender": "oem"}


@pytest.fixture
def capped(engine):
    """A Guard whose only rule allows two marketing contacts in 30 days."""
    return Guard(engine, parse_policy([("cap.yaml", CAP)]), clock=lambda: NOW)


@pytest.mark.parametrize(("body", "field", "detail"), [
    ({**NEWSLETTER, "channel": "fax"}, "channel", "unknown channel 'fax'"),
    ({**NEWSLETTER, "purpose": "gossip"}, "purpose", "unknown purpose 'gossip'"),
    ({**NEWSLETTER, "sender": "martians"}, "sender", "unknown sender 'martians'"),
    ({**NEWSLETTER, "to": "anna@@example.com"}, "to", "not an email address"),
    ({**NEWSLETTER, "to": "12"}, "to", "not an email address or phone number"),
    ({**NEWSLETTER, "to": {"person": "per_nobody"}}, "to", "no person per_nobody"),
    ({**NEWSLETTER, "at": "tomorrow"}, "at", "not a time: 'tomorrow'"),
    ({k: v for k, v in NEWSLETTER.items() if k != "sender"}, "sender", "required"),
], ids=["channel", "purpose", "sender", "to-email", "to-phone", "to-person", "at",
        "no-sender"])
def test_bad_attempts_name_the_field(store, engine, body, field, detail):
    with pytest.raises(InvalidField) as raised:
        store.check(body)
    assert raised.value.field == field
    assert detail in raised.value.detail
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ledger")).scalar() == 0


def test_defaults_fill_what_the_body_leaves_out(store):
    decision = store.check({"channel": "email", "to": "x@example.com"},
                           defaults={"sender": "oem", "purpose": "newsletter"})
    assert store.decision(decision.decision_id)["attempt"]["sender"] == "oem"


def test_a_recorded_decision_can_be_looked_up(store):
    accepted(store.ingest([person("003A", "anna@example.com")]))
    decision = store.check({**NEWSLETTER, "to": "Anna@Example.com", "at": "2026-11-23T10:00Z"})
    assert decision.decision_id.startswith("dec_")
    stored = store.decision(decision.decision_id)
    assert stored["verdict"] == decision.verdict
    assert stored["person"] == store.resolve("anna@example.com")
    assert stored["attempt"]["to"] == "anna@example.com"
    assert stored["committed"] is True
    with pytest.raises(NotFound):
        store.decision("dec_nope")


def test_committed_checks_count_toward_caps_and_dry_runs_do_not(capped):
    accepted(capped.ingest([person("003A", "anna@example.com")]))
    dry = [capped.check(NEWSLETTER, commit=False).verdict for _ in range(3)]
    assert dry == ["allow", "allow", "allow"]
    assert capped.decision(capped.check(NEWSLETTER, commit=False).decision_id)[
        "committed"] is False
    sent = [capped.check(NEWSLETTER).verdict for _ in range(3)]
    assert sent == ["allow", "allow", "block"]


def test_touches_from_other_systems_count_toward_caps(capped):
    accepted(capped.ingest([person("003A", "anna@example.com")] + [
        {"type": "touch", "source": {"system": "hubspot", "id": f"e{n}"},
         "person": "anna@example.com", "channel": "email", "purpose": "promotion",
         "sender": "dealer:munich", "at": (NOW - timedelta(days=n)).isoformat()}
        for n in (1, 2)]))
    assert capped.check(NEWSLETTER).verdict == "block"


def test_a_reroute_to_an_owner_becomes_one_task(store):
    accepted(store.ingest([person("003A", "anna@example.com", stage="customer",
                                  owner="dealer:munich")]))
    body = {**NEWSLETTER, "purpose": "upgrade_offer"}
    decision = store.check(body)
    assert decision.verdict == "reroute", decision.to_dict()
    assert decision.reroute == {"owner": "dealer:munich"}
    store.check(body)
    [task] = store.pending_tasks()
    assert task["owner"] == "dealer:munich"
    assert task["crm_ids"] == {"salesforce": "003A"}
    assert "upgrade_offer" in task["description"]
    store.mark_task_done(task["id"], {"salesforce": "00T1"})
    assert store.pending_tasks() == []
    assert store.person(decision.person)["tasks"][0]["status"] == "done"


def test_dry_runs_create_no_tasks(store):
    accepted(store.ingest([person("003A", "anna@example.com", stage="customer",
                                  owner="dealer:munich")]))
    store.check({**NEWSLETTER, "purpose": "upgrade_offer"}, commit=False)
    assert store.pending_tasks() == []


def test_screening_decides_like_checking(store):
    accepted(store.ingest([
        person("003A", "anna@example.com"),
        purchase("P1", {"email": "anna@example.com"}),
        {"type": "consent", "source": {"system": "crm", "id": "c1"}, "email": "ben@example.com",
         "channel": "*", "purpose": "*", "status": "opt_out"},
    ]))
    template = {"channel": "email", "purpose": "price_offer", "sender": "oem",
                "product": "audi-a4", "campaign": "none"}
    recipients = ["anna@example.com", "ben@example.com", "new@example.com", "broken@",
                  "ANNA@example.com"]
    screened = list(store.screen(template, recipients))
    assert [r for r, _ in screened] == recipients
    assert isinstance(screened[3][1], InvalidField) and screened[3][1].field == "to"
    for to, outcome in screened:
        if isinstance(outcome, InvalidField):
            continue
        single = store.check({**template, "to": to}, commit=False)
        assert (outcome.verdict, outcome.rules, outcome.person) == (
            single.verdict, single.rules, single.person)
        assert store.decision(outcome.decision_id)["verdict"] == outcome.verdict


def test_a_bad_screen_template_fails_before_any_recipient(store):
    with pytest.raises(InvalidField) as raised:
        next(store.screen({"channel": "email", "purpose": "gossip", "sender": "oem"},
                          ["a@example.com"]))
    assert raised.value.field == "purpose"


def test_an_erased_person_is_never_contacted_again(store):
    accepted(store.ingest([
        person("003A", "anna@example.com", phones=["+491701234567"]),
        purchase("P1", {"email": "anna@example.com"}),
    ]))
    person_id = store.resolve("anna@example.com")
    earlier = store.check(NEWSLETTER)
    accepted(store.ingest([{"type": "erase", "source": {"system": "crm", "id": "gdpr-1"},
                            "person": {"salesforce": "003A"}}]))
    for to in ("anna@example.com", "+491701234567", {"person": person_id}):
        decision = store.check({**NEWSLETTER, "to": to, "purpose": "transactional"})
        assert decision.verdict == "block"
        assert decision.rules == ("erased",)
    view = store.person(person_id)
    assert view["erased"] is True
    assert view["profile"]["emails"] == [] and view["profile"]["purchases"] == []
    kept = store.decision(earlier.decision_id)
    assert kept["attempt"]["to"] is None and kept["verdict"] == earlier.verdict
    # A later sync bringing the address back stores nothing personal.
    result = store.ingest([person("003Z", "anna@example.com", name="Anna")])
    assert result["rejected"][0]["detail"].startswith("person.emails: address was erased on "
                                                      "2026-11-23")
    result = store.ingest([person("003A", "other@example.com")])
    assert result["rejected"][0]["detail"].startswith("person.crm_ids: record was erased")
    # Erasing again is accepted and changes nothing.
    accepted(store.ingest([{"type": "erase", "source": {"system": "crm", "id": "gdpr-1"},
                            "person": "anna@example.com"}]))
    screened = dict(store.screen({"channel": "email", "purpose": "transactional",
                                  "sender": "oem"}, ["anna@example.com"]))
    assert screened["anna@example.com"].verdict == "block"


def count_statements(engine, action) -> int:
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return len(statements)


def test_a_check_reads_a_constant_number_of_rows_whatever_the_store_holds(capped, engine):
    accepted(capped.ingest([person("003A", "anna@example.com"),
                            person("003B", "ben@example.com")]))
    small = count_statements(engine, lambda: capped.check(NEWSLETTER))
    # A much bigger store: more people, and a long ledger for Anna.
    accepted(capped.ingest([person(f"00{n}", f"p{n}@example.com") for n in range(200)] + [
        {"type": "touch", "source": {"system": "crm", "id": f"t{n}"},
         "person": "anna@example.com", "channel": "email", "purpose": "survey",
         "sender": "service", "at": (NOW - timedelta(hours=n)).isoformat()}
        for n in range(100)]))
    big = count_statements(engine, lambda: capped.check(NEWSLETTER))
    decided = []
    stranger = count_statements(engine, lambda: decided.append(
        capped.check({**NEWSLETTER, "to": "new@example.com"})))
    assert small == big
    # A stranger's decision has a reason (unknown recipient): its rule is indexed as well.
    assert decided[0].reasons
    assert stranger <= small + 2


def test_people_resolve_through_merged_ids(store):
    with pytest.raises(NotFound):
        store.person("per_nobody")
