"""GET /v1/decisions/<id> and GET /v1/people/<id>."""

from __future__ import annotations

from guard.http.schemas import PersonSchema
from tests.conftest import person, purchase

from .test_errors import assert_problem


def test_a_person_has_profile_flags_ledger_and_tasks(client, feeder, checker, admin):
    client.post("/v1/events", json={"events": [
        person("003M", "max@example.com", timezone="Europe/Berlin",
               name="Max Keller", stage="customer",
               owner="dealer:munich"),
        purchase("SO-1", {"email": "max@example.com"}, "nw-kombi", "2026-11-21T15:00:00Z"),
    ]}, headers=feeder)
    decision = client.post("/v1/check", json={"channel": "email", "to": "max@example.com",
                                              "template": "news"},
                           headers=checker).get_json()
    response = client.get(f"/v1/people/{decision['person']}", headers=admin)
    assert response.status_code == 200
    found = response.get_json()
    assert PersonSchema().validate(found) == {}
    assert found["id"] == decision["person"]
    assert found["profile"]["emails"] == ["max@example.com"]
    assert found["flags"]["status"] in ("Clear", "Caution", "Do not contact")
    assert any("2026-12" in line or "cool" in line.lower() for line in found["flags"]["flags"])
    assert len(found["ledger"]) == 1


def test_unknown_ids_are_404_naming_the_id(client, checker, admin):
    body = assert_problem(client.get("/v1/decisions/dec_nope", headers=checker), 404)
    assert "dec_nope" in body["detail"]
    body = assert_problem(client.get("/v1/people/per_nope", headers=admin), 404)
    assert "per_nope" in body["detail"]
