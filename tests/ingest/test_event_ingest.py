"""Events in: every type stored, bad ones rejected naming the field, idempotent per source."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from guard.errors import InvalidField
from guard.ingest.events import parse_event
from guard.store.tables import identities, ledger, people, records
from policies import default_policy_path, load_policy
from tests.conftest import accepted, person, purchase

ACCOUNT = {"system": "salesforce", "type": "Account", "id": "001A"}


def every_type() -> list[dict]:
    """One valid event of every type of SPEC §6, about one person and their account."""
    anna = {"email": "anna@example.com"}
    return [
        {"type": "account", "source": ACCOUNT, "name": "Northwind", "domain": "northwind.example",
         "owner": "J. Smith"},
        person("003A", "Anna@Example.com", name="Anna Schulz", phones=["0170 1234567"],
               account=ACCOUNT, stage="customer", owner="dealer:munich",
               timezone="Europe/Berlin", preferred_channel="email",
               contact_hours="09:00-18:00", replacement_cycle_years=10,
               do_not_market_until="2027-01-31", crm_ids={"hubspot": "501"}),
        purchase("P1", anna, amount=41000, currency="EUR"),
        {"type": "contract", "source": {"system": "salesforce", "id": "800A"}, "account": ACCOUNT,
         "status": "active", "start": "2025-06-01", "end": "2028-05-31", "owner": "J. Smith",
         "product": "fleet"},
        {"type": "consent", "source": {"system": "hubspot", "id": "sub-1"},
         "person": {"hubspot": "501"}, "channel": "sms", "purpose": "marketing",
         "status": "opt_out", "at": "2026-03-01T08:00:00Z"},
        {"type": "case", "source": {"system": "salesforce", "id": "500A"}, "person": anna,
         "status": "open", "owner": "K. Weber", "subject": "Rattling door", "at": "2026-11-01"},
        {"type": "service", "source": {"system": "dms", "id": "S1"}, "person": anna,
         "asset": "WAUZZZ8K", "at": "2026-05-01", "mileage": 15000, "next_due": "2027-05-01",
         "next_due_mileage": 30000},
        {"type": "invoice", "source": {"system": "billing", "id": "INV-1"}, "person": anna,
         "number": "INV-1", "sent_at": "2026-10-01T09:00:00Z", "due": "2026-10-31",
         "amount": 120.5},
        {"type": "touch", "source": {"system": "salesforce", "type": "Task", "id": "00T1"},
         "person": {"salesforce": "003A"}, "channel": "call", "purpose": "survey",
         "sender": "dealer:munich", "at": "2026-11-20T15:00:00Z"},
        {"type": "campaign", "source": {"system": "salesforce", "id": "701A"}, "id": "q4-upgrade",
         "purpose": "price_offer", "offer": "5% off", "eligible_when": "person.stage == 'customer'",
         "starts": "2026-11-01", "ends": "2026-12-31", "notify_owner": True},
    ]


def snapshot(engine) -> dict:
    """Everything the store holds that events can change, without generated ids and times."""
    with engine.connect() as conn:
        return {
            "people": conn.execute(sa.select(sa.func.count()).select_from(people)).scalar(),
            "identities": sorted(conn.execute(
                sa.select(identities.c.kind, identities.c.value)).all()),
            "records": sorted((r.source_system, r.source_id, r.type, str(r.payload)) for r in
                              conn.execute(sa.select(records)).all()),
            "ledger": conn.execute(sa.select(sa.func.count()).select_from(ledger)).scalar(),
        }


def test_every_event_type_lands_in_one_profile(store):
    assert accepted(store.ingest(every_type())) == 10
    anna = store.person(store.resolve("anna@example.com"))
    profile = anna["profile"]
    assert profile["emails"] == ["anna@example.com"]
    assert profile["phones"] == ["+491701234567"]
    assert profile["crm_ids"] == {"salesforce": "003A", "hubspot": "501"}
    assert profile["replacement_cycle_years"] == 10
    assert profile["do_not_market_until"] == "2027-01-31"
    assert profile["account"]["name"] == "Northwind"
    assert [p["product"] for p in profile["purchases"]] == ["audi-a4"]
    assert profile["contracts"][0]["via_account"] is True
    assert profile["consents"][0]["status"] == "opt_out"
    assert profile["cases"][0]["subject"] == "Rattling door"
    assert profile["services"][0]["next_due_mileage"] == 30000
    assert profile["invoices"][0]["number"] == "INV-1"
    assert profile["field_sources"]["replacement_cycle_years"] == {
        "system": "salesforce", "type": "Contact", "id": "003A"}
    assert [e["channel"] for e in anna["ledger"]] == ["call"]
    assert anna["flags"]["status"] == "Caution"


def test_the_same_batch_twice_leaves_the_same_state(store, engine):
    store.ingest(every_type())
    first = snapshot(engine)
    assert accepted(store.ingest(every_type())) == 10
    assert snapshot(engine) == first


def test_records_read_again_unchanged_are_not_written_again(engine, policy):
    # A re-sync (or an edit of a field the guard does not map) reads records as they are:
    # nothing is new, so no record, person or ledger row is rewritten. Only what changed
    # is stored, and only its people are rebuilt.
    from datetime import timedelta

    from guard.checks.service import Guard
    from tests.conftest import NOW

    def times() -> dict:
        with engine.connect() as conn:
            return {
                "records": dict(conn.execute(sa.select(records.c.source_id,
                                                       records.c.updated_at)).all()),
                "people": dict(conn.execute(sa.select(people.c.id, people.c.updated_at)).all()),
                "ledger": conn.execute(sa.select(ledger.c.source)).scalars().all(),
            }

    Guard(engine, policy, clock=lambda: NOW).ingest(every_type())
    before = times()
    later = Guard(engine, policy, clock=lambda: NOW + timedelta(days=1))
    assert accepted(later.ingest(every_type())) == 10
    assert times() == before

    edited = every_type()
    edited[6]["mileage"] = 16000  # the service record: Anna's profile must show it
    assert accepted(later.ingest(edited)) == 10
    after = times()
    changed = {sid for sid, at in after["records"].items() if at != before["records"][sid]}
    assert changed == {"S1"}
    assert all(at > before["people"][pid] for pid, at in after["people"].items())
    anna = later.person(later.resolve("anna@example.com"))["profile"]
    assert anna["services"][0]["mileage"] == 16000


def test_an_event_with_a_known_source_updates_its_record(store):
    accepted(store.ingest([person("003A", "anna@example.com", name="Anna")]))
    accepted(store.ingest([person("003A", "anna@example.com", name="Anna Schulz")]))
    profile = store.person(store.resolve("anna@example.com"))["profile"]
    assert profile["name"] == "Anna Schulz"


@pytest.mark.parametrize(("event", "detail"), [
    ({"type": "letter", "source": {"system": "x", "id": "1"}},
     "type: unknown event type 'letter'"),
    ({"type": "person", "emails": ["a@example.com"]}, "person.source: required"),
    ({"type": "person", "source": {"system": "dms"}}, "person.source.id: required"),
    (purchase("P9", {"email": "anna@example.com"}, at="not a date"),
     "purchase.at: not a date: 'not a date'"),
    ({**purchase("P9", {"email": "anna@example.com"}), "at": None}, "purchase.at: required"),
    (purchase("P9", {"email": "nobody@example.com"}),
     "purchase.person: no person matches email nobody@example.com"),
    ({**purchase("P9", None)}, "purchase.person: required: give person or account"),
    (person("003B", "not-an-address"), "person.emails.0: not an email address"),
    (person("003B", phones=["12"]), "person.phones.0: not a phone number: '12'"),
    (person("003B", stage="lead"), "person.stage: expected one of prospect, opportunity"),
    (person("003B", timezone="Mars/Base"), "person.timezone: not a time zone"),
    (person("003B", contact_hours="9 to 5"), "person.contact_hours: expected hours like"),
    (person("003B", replacement_cycle_years="ten"), "person.replacement_cycle_years: not a"),
    ({"type": "consent", "source": {"system": "x", "id": "1"}, "email": "b@example.com",
      "channel": "fax", "purpose": "*", "status": "opt_out"}, "consent.channel: unknown channel"),
    ({"type": "consent", "source": {"system": "x", "id": "1"}, "email": "b@example.com",
      "channel": "*", "purpose": "*", "status": "maybe"}, "consent.status: expected opt_in"),
    ({"type": "consent", "source": {"system": "x", "id": "1"}, "channel": "*", "purpose": "*",
      "status": "opt_out"}, "consent.person: required"),
    ({"type": "touch", "source": {"system": "x", "id": "1"}, "person": "anna@example.com",
      "channel": "email", "purpose": "gossip", "sender": "oem", "at": "2026-11-01"},
     "touch.purpose: unknown purpose 'gossip'"),
    ({"type": "campaign", "source": {"system": "x", "id": "1"}, "id": "c",
      "eligible_when": "person.stage =="}, "campaign.eligible_when: not valid CEL"),
    ({"type": "case", "source": {"system": "x", "id": "1"}, "person": "anna@example.com"},
     "case.status: required"),
    ({"type": "service", "source": {"system": "x", "id": "1"}, "person": "anna@example.com",
      "mileage": 12.5}, "service.mileage: not a whole number"),
    ({"type": "erase", "source": {"system": "x", "id": "1"}, "person": "nobody@example.com"},
     "erase.person: no person matches email nobody@example.com"),
    ("just text", "event: expected an object"),
], ids=["unknown-type", "no-source", "no-source-id", "bad-date", "missing-date",
        "reference-to-nothing", "no-reference", "bad-email", "bad-phone", "bad-stage",
        "bad-timezone", "bad-hours", "bad-number", "bad-channel", "bad-status", "no-person",
        "unknown-purpose", "bad-cel", "missing-status", "fractional-mileage", "erase-nobody",
        "not-an-object"])
def test_bad_events_are_rejected_naming_the_field(store, engine, event, detail):
    accepted(store.ingest([person("003A", "anna@example.com")]))
    before = snapshot(engine)
    result = store.ingest([event])
    assert result["accepted"] == 0
    [rejection] = result["rejected"]
    assert rejection["index"] == 0
    assert rejection["detail"].startswith(detail), rejection["detail"]
    assert snapshot(engine) == before


def test_the_valid_rest_of_a_batch_is_stored(store):
    result = store.ingest([
        person("003A", "anna@example.com"),
        purchase("P1", {"email": "anna@example.com"}, at="yesterday"),
        purchase("P2", {"email": "anna@example.com"}),
    ])
    assert result["accepted"] == 2
    assert [(r["index"], r["source"]["id"]) for r in result["rejected"]] == [(1, "P1")]
    profile = store.person(store.resolve("anna@example.com"))["profile"]
    assert [p["source"]["id"] for p in profile["purchases"]] == ["P2"]


def test_a_rejected_person_event_leaves_no_half_written_person(store, engine):
    # The second email is invalid only after the first one would have been stored.
    result = store.ingest([person("003A", "anna@example.com", "broken@")])
    assert result["rejected"][0]["detail"].startswith("person.emails.1:")
    assert snapshot(engine) == {"people": 0, "identities": [], "records": [], "ledger": 0}


def test_records_sharing_an_identity_are_one_person(store):
    accepted(store.ingest([
        person("003A", "anna@example.com"),
        {"type": "person", "source": {"system": "dms", "id": "C-1001"},
         "emails": ["ANNA@example.com"], "phones": ["+49 170 1234567"], "name": "A. Schulz"},
        {"type": "person", "source": {"system": "hubspot", "type": "contact", "id": "501"},
         "phones": ["0170 1234567"], "timezone": "Europe/Berlin"},
    ]))
    ids = {store.resolve(r) for r in ("anna@example.com", "+491701234567",
                                      {"salesforce": "003A"}, {"hubspot": "501"},
                                      {"system": "dms", "id": "C-1001"})}
    assert len(ids) == 1
    profile = store.person(ids.pop())["profile"]
    assert profile["name"] == "A. Schulz"
    assert profile["timezone"] == "Europe/Berlin"


def test_an_event_linking_two_people_merges_them_keeping_facts_and_ledger(store):
    accepted(store.ingest([
        person("003A", "anna@example.com"),
        {"type": "person", "source": {"system": "dms", "id": "C-1001"},
         "phones": ["+491701234567"]},
        purchase("P1", {"email": "anna@example.com"}),
        purchase("P2", {"phone": "+491701234567"}, product="vw-golf"),
    ]))
    first, second = store.resolve("anna@example.com"), store.resolve("+491701234567")
    assert first != second
    decided = store.check({"channel": "sms", "to": "+491701234567", "purpose": "survey",
                           "sender": "service"})
    accepted(store.ingest([person("003A", "anna@example.com", phones=["+491701234567"])]))
    merged = store.resolve("anna@example.com")
    assert store.resolve("+491701234567") == merged
    loser = second if merged == first else first
    view = store.person(loser)
    assert view["id"] == merged
    assert sorted(p["product"] for p in view["profile"]["purchases"]) == ["audi-a4", "vw-golf"]
    assert [e["id"] for e in view["ledger"]] == [decided.decision_id]


def test_a_merge_among_records_read_again_unchanged_keeps_everyone_together(store, engine):
    first_sync = [
        person("003A", "anna@example.com"),
        {"type": "person", "source": {"system": "dms", "id": "C-1001"},
         "phones": ["+491701234567"]},
        purchase("P1", {"email": "anna@example.com"}),
        purchase("P2", {"phone": "+491701234567"}, product="vw-golf"),
    ]
    accepted(store.ingest(first_sync))
    # The next sync reads both people again unchanged, around the one change that links
    # them: the people resolved for the unchanged records must follow the merge.
    accepted(store.ingest([first_sync[1],
                           person("003A", "anna@example.com", phones=["+491701234567"]),
                           first_sync[1], first_sync[3], first_sync[2]]))
    merged = store.resolve("anna@example.com")
    assert store.resolve("+491701234567") == merged
    with engine.connect() as conn:
        owners = set(conn.execute(sa.select(records.c.person_id)
                                  .where(records.c.type.in_(["person", "purchase"]))).scalars())
    assert owners == {merged}
    profile = store.person(merged)["profile"]
    assert sorted(p["product"] for p in profile["purchases"]) == ["audi-a4", "vw-golf"]
    assert profile["phones"] == ["+491701234567"]


def test_a_deleted_event_retracts_its_record(store):
    accepted(store.ingest([person("003A", "anna@example.com"),
                           purchase("P1", {"email": "anna@example.com"})]))
    accepted(store.ingest([{"type": "purchase", "source": {"system": "dms", "id": "P1"},
                            "deleted": True}]))
    assert store.person(store.resolve("anna@example.com"))["profile"]["purchases"] == []
    # Retracting again (or what was never there) is not an error.
    accepted(store.ingest([{"type": "purchase", "source": {"system": "dms", "id": "P1"},
                            "deleted": True}]))


def test_a_deleted_person_record_no_longer_identifies_anyone(store):
    accepted(store.ingest([person("003A", "anna@example.com")]))
    accepted(store.ingest([{"type": "person", "deleted": True,
                            "source": {"system": "salesforce", "type": "Contact", "id": "003A"}}]))
    assert store.resolve("anna@example.com") is None


def test_a_retracted_touch_leaves_the_ledger(store):
    touch = {"type": "touch", "source": {"system": "crm", "id": "T1"}, "person": "a@example.com",
             "channel": "email", "purpose": "newsletter", "sender": "oem", "at": "2026-11-20"}
    accepted(store.ingest([person("003A", "a@example.com"), touch]))
    assert len(store.person(store.resolve("a@example.com"))["ledger"]) == 1
    accepted(store.ingest([{**touch, "deleted": True}]))
    assert store.person(store.resolve("a@example.com"))["ledger"] == []


def test_account_facts_reach_every_member_even_when_the_account_comes_later(store):
    accepted(store.ingest([
        person("003A", "anna@example.com", account=ACCOUNT),
        person("003B", "ben@example.com", account=ACCOUNT),
        {"type": "contract", "source": {"system": "salesforce", "id": "800A"}, "account": ACCOUNT,
         "status": "active", "end": "2028-05-31", "owner": "J. Smith"},
    ]))
    accepted(store.ingest([{"type": "account", "source": ACCOUNT, "name": "Northwind"}]))
    for email in ("anna@example.com", "ben@example.com"):
        view = store.person(store.resolve(email))
        assert view["profile"]["account"]["name"] == "Northwind"
        assert view["flags"]["flags"] == [
            "Existing customer: Northwind contract until 2028-05-31 (owner J. Smith)"]


def test_a_bare_consent_is_honoured_before_and_after_the_person_is_known(store):
    accepted(store.ingest([{"type": "consent", "source": {"system": "crm", "id": "c1"},
                            "email": "Ben@Example.com", "channel": "email", "purpose": "*",
                            "status": "opt_out", "at": "2026-01-05T09:00:00Z"}]))
    attempt = {"channel": "email", "to": "ben@example.com", "purpose": "newsletter",
               "sender": "oem"}
    before = store.check(attempt)
    assert (before.person, before.verdict) == (None, "block")
    accepted(store.ingest([person("003B", "ben@example.com")]))
    after = store.check(attempt)
    assert after.person is not None
    assert after.verdict == "block"
    assert "consent" in after.rules


_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12)),
    lambda inner: st.one_of(st.lists(inner, max_size=3),
                            st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8)
_event_keys = st.sampled_from(["type", "source", "person", "account", "emails", "phones", "at",
                               "channel", "purpose", "status", "email", "phone", "crm_ids",
                               "deleted", "id", "eligible_when", "mileage", "stage"])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_event_keys, st.one_of(_values, st.sampled_from(
    ["person", "purchase", "consent", "touch", "campaign", "erase", "*", "opt_out"])),
    max_size=6))
def test_parsing_any_event_raises_nothing_but_invalid_field(raw):
    try:
        parse_event(raw, load_policy(default_policy_path()))
    except InvalidField:
        pass


def test_a_source_without_a_record_type_is_named_by_its_event_type(store):
    accepted(store.ingest([
        person("003A", "anna@example.com"),
        {"type": "purchase", "source": {"system": "dms", "id": "SO-9"},
         "person": "anna@example.com", "product": "audi-a4", "at": "2026-11-21T10:00:00Z"},
    ]))
    decision = store.check({"channel": "email", "to": "anna@example.com",
                            "purpose": "price_offer", "sender": "oem", "product": "audi-a4",
                            "campaign": None}, commit=False)
    evidence = [e.to_dict() for r in decision.reasons for e in r.evidence]
    assert {"system": "dms", "type": "purchase", "id": "SO-9"} in evidence
