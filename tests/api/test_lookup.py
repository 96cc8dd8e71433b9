"""GET /v1/decisions/<id> and GET /v1/people/<id>."""

from __future__ import annotations

from guard.http.schemas import PersonSchema

from .conftest import person_event, purchase_event
from .test_errors import assert_problem


def test_a_person_has_profile_flags_ledger_and_tasks(client, feeder, checker, admin):
    client.post("/v1/events", json={"events": [
        person_event("003M", "max@example.com", name="Max Keller", stage="customer",
                     owner="dealer:munich"),
        purchase_event("SO-1", "max@example.com", "nw-kombi", "2026-11-21T15:00:00Z"),
    ]}, headers=feeder)
    decision = client.post("/v1/check", json={"channel": "email", "to": "max@example.com",
                                              "template": "news"},
                           headers=checker).get_json()
    response = client.get(f"/v1/people/{decision['person']}", headers=admin)
    assert response.status_code == 200
    person = response.get_json()
    assert PersonSchema().validate(person) == {}
    assert person["id"] == decision["person"]
    assert person["profile"]["emails"] == ["max@example.com"]
    assert person["flags"]["status"] in ("Clear", "Caution", "Do not contact")
    assert any("2026-12" in line or "cool" in line.lower() for line in person["flags"]["flags"])
    assert len(person["ledger"]) == 1


def test_unknown_ids_are_404_naming_the_id(client, checker, admin):
    body = assert_problem(client.get("/v1/decisions/dec_nope", headers=checker), 404)
    assert "dec_nope" in body["detail"]
    body = assert_problem(client.get("/v1/people/per_nope", headers=admin), 404)
    assert "per_nope" in body["detail"]
