"""POST /v1/check: SPEC §4 decisions, key defaults, dry runs, and 400s naming the field."""

from __future__ import annotations

import pytest

from guard.http.schemas import DecisionSchema, RecordedDecisionSchema
from guard.services import services
from tests.conftest import person, purchase

from .test_errors import assert_problem

SPEC_KEYS = {"decision_id", "verdict", "person", "reasons", "reroute", "not_before",
             "monitored", "policy_version"}


@pytest.fixture
def people(client, feeder):
    """Anna: an ordinary customer. Max: bought an nw-kombi two days ago."""
    events = [
        person("003A", "anna@example.com", timezone="Europe/Berlin",
               name="Anna Berg", stage="customer",
               owner="dealer:munich", crm_ids={"salesforce": "003A"}),
        person("003M", "max@example.com", timezone="Europe/Berlin",
               name="Max Keller", stage="customer",
               owner="dealer:munich"),
        purchase("SO-1", {"email": "max@example.com"}, "nw-kombi", "2026-11-21T15:00:00Z"),
        {"type": "campaign", "source": {"system": "salesforce", "id": "701-bw"},
         "id": "black-week", "purpose": "price_offer", "offer": "8% off",
         "starts": "2026-11-01T00:00:00Z", "ends": "2026-12-31T00:00:00Z"},
    ]
    response = client.post("/v1/events", json={"events": events}, headers=feeder)
    assert response.get_json() == {"accepted": 4, "rejected": []}


def check(client, headers, **body):
    base = {"channel": "email", "at": "2026-11-23T10:00:00Z"}
    return client.post("/v1/check", json={**base, **body}, headers=headers)


def test_an_ordinary_send_is_allowed_in_the_spec_shape(client, checker, people):
    response = check(client, checker, to="anna@example.com")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    decision = response.get_json()
    assert SPEC_KEYS <= set(decision)
    assert DecisionSchema().validate(decision) == {}
    assert decision["verdict"] == "allow"
    assert decision["person"].startswith("per_")
    assert decision["decision_id"].startswith("dec_")
    assert decision["policy_version"].startswith("sha256:")


def test_a_sale_on_the_car_just_bought_is_blocked_with_evidence(client, checker, people):
    response = check(client, checker, to="MAX@example.com ", purpose="price_offer",
                     campaign="black-week", product="nw-kombi")
    decision = response.get_json()
    assert decision["verdict"] == "block"
    cooldown = next(r for r in decision["reasons"] if r["rule"] == "purchase-cooldown")
    assert cooldown["kind"] == "purchase_cooldown" and cooldown["effect"] == "block"
    assert "nw-kombi" in cooldown["message"] and "2026-11-21" in cooldown["message"]
    assert {"system": "dms", "id": "SO-1"}.items() <= cooldown["evidence"][0].items()


def test_sender_and_purpose_default_to_the_keys(client, checker, people):
    decision = check(client, checker, to="anna@example.com").get_json()
    recorded = client.get(f"/v1/decisions/{decision['decision_id']}", headers=checker)
    assert recorded.status_code == 200
    body = recorded.get_json()
    assert RecordedDecisionSchema().validate(body) == {}
    assert body["attempt"]["sender"] == "oem"
    assert body["attempt"]["purpose"] == "newsletter"
    assert body["verdict"] == decision["verdict"]


def test_without_key_defaults_purpose_is_required(client, make_key, people):
    from .conftest import bearer

    response = check(client, bearer(make_key("check")), to="anna@example.com", sender="oem")
    assert_problem(response, 400, "purpose")


def _ledger(client, admin, person_id):
    """The person's contacts that count (dry runs are recorded too, as not committed)."""
    ledger = client.get(f"/v1/people/{person_id}", headers=admin).get_json()["ledger"]
    return [entry for entry in ledger if entry["committed"]]


def test_commit_writes_the_ledger_and_a_dry_run_does_not(client, checker, admin, people):
    dry = check(client, checker, to="anna@example.com", template="t-dry", commit=False)
    person_id = dry.get_json()["person"]
    assert _ledger(client, admin, person_id) == []
    check(client, checker, to="anna@example.com", template="t-1")
    assert len(_ledger(client, admin, person_id)) == 1


def test_committed_sends_count_toward_the_cap_at_once(client, checker, people):
    # The default policy allows 4 marketing contacts per 30 days; the fifth waits.
    verdicts = [check(client, checker, to="anna@example.com", template=f"t-{n}",
                      at=f"2026-11-23T09:0{n}:00Z").get_json()["verdict"] for n in range(5)]
    assert verdicts == ["allow"] * 4 + ["defer"]


def test_dry_runs_never_count(client, checker, people):
    verdicts = {check(client, checker, to="anna@example.com", template=f"t-{n}",
                      commit=False).get_json()["verdict"] for n in range(6)}
    assert verdicts == {"allow"}


def test_an_unknown_recipient_is_allowed_by_default(client, checker, people):
    decision = check(client, checker, to="stranger@example.org").get_json()
    assert decision["person"] is None
    assert decision["verdict"] == "allow"
    assert [r["rule"] for r in decision["reasons"]] == ["unknown-recipient"]


@pytest.mark.parametrize(("body", "field"), [
    ({"channel": "pigeon"}, "channel"),
    ({"purpose": "bribery"}, "purpose"),
    ({"sender": "martians"}, "sender"),
    ({"to": "not an address"}, "to"),
    ({"to": {"myspace": "42"}}, "to"),
    ({"at": "yesterday"}, "at"),
    ({"at": 1700000000}, "at"),
    ({"campaign": ["a"]}, "campaign"),
    ({"commit": "sometimes"}, "commit"),
], ids=["channel", "purpose", "sender", "recipient", "reference", "time", "time-number",
        "campaign-list", "commit"])
def test_bad_fields_are_400_naming_the_field(client, checker, people, body, field):
    response = check(client, checker, **{"to": "anna@example.com", **body})
    assert_problem(response, 400, field)


def test_a_recipient_can_be_a_crm_reference(client, checker, people):
    decision = check(client, checker, to={"salesforce": "003A"}).get_json()
    by_email = check(client, checker, to="anna@example.com", commit=False).get_json()
    assert decision["person"] == by_email["person"]


def _snapshot(engine) -> dict:
    import sqlalchemy as sa

    from guard.store.tables import metadata

    with engine.connect() as conn:
        return {table.name: sorted(map(repr, conn.execute(sa.select(table)).all()))
                for table in metadata.sorted_tables}


def test_bad_input_never_changes_stored_data(app, client, checker, feeder, admin, people):
    engine = services(app).engine
    before = _snapshot(engine)
    bad = [
        ("/v1/check", {"channel": "pigeon", "to": "anna@example.com"}, checker),
        ("/v1/check", {"channel": "email", "to": "anna@example.com", "at": "soon"}, checker),
        ("/v1/check", {"channel": "email", "to": "anna@example.com", "sender": "x"}, checker),
        ("/v1/screen", {"attempt": {"channel": "pigeon"}, "recipients": ["anna@example.com"],
                        "commit": True}, checker),
        ("/v1/events", {"events": [{"type": "person"}, 5]}, feeder),
        ("/v1/keys", {"name": "x", "scopes": ["root"]}, admin),
    ]
    for path, body, headers in bad:
        assert client.post(path, json=body, headers=headers).status_code == 400
    assert _snapshot(engine) == before


def test_the_decision_keeps_the_contracts_field_order(client, checker, people):
    response = client.post("/v1/check", json={"channel": "email", "to": "anna@example.com",
                                              "purpose": "newsletter", "sender": "oem"},
                           headers=checker)
    assert response.status_code == 200, response.get_json()
    fields = list(response.get_json())
    assert fields[:4] == ["decision_id", "verdict", "person", "reasons"], fields
