"""POST /v1/events: valid events stored, invalid ones listed, same source = same record."""

from __future__ import annotations

from guard.http.schemas import EventsResultSchema
from tests.conftest import person, purchase

from .test_errors import assert_problem


def test_valid_events_are_stored_and_invalid_ones_listed(client, feeder, admin, checker):
    events = [
        person("003A", "anna@example.com", timezone="Europe/Berlin", name="Anna Berg"),
        purchase("SO-1", {"email": "anna@example.com"}, "nw-city", "not a date"),
        {"type": "horoscope", "source": {"system": "astro", "id": "1"}},
        purchase("SO-2", {"email": "anna@example.com"}, "nw-city", "2026-01-10T10:00:00Z"),
    ]
    response = client.post("/v1/events", json={"events": events}, headers=feeder)
    assert response.status_code == 200
    body = response.get_json()
    assert EventsResultSchema().validate(body) == {}
    assert body["accepted"] == 2
    assert [r["index"] for r in body["rejected"]] == [1, 2]
    first = body["rejected"][0]
    assert first["source"] == {"system": "dms", "id": "SO-1"}
    assert first["detail"].startswith("purchase.at:") and "not a date" in first["detail"]
    assert "horoscope" in body["rejected"][1]["detail"]

    person_id = client.post("/v1/check", json={"channel": "email", "to": "anna@example.com",
                                               "commit": False},
                            headers=checker).get_json()["person"]
    profile = client.get(f"/v1/people/{person_id}", headers=admin).get_json()["profile"]
    assert [p["product"] for p in profile["purchases"]] == ["nw-city"]


def test_the_same_batch_twice_changes_nothing(client, feeder, admin, checker):
    events = [person("003A", "anna@example.com", timezone="Europe/Berlin", name="Anna Berg"),
              purchase("SO-2", {"email": "anna@example.com"}, "nw-city", "2026-01-10T10:00:00Z")]
    for _ in range(2):
        assert client.post("/v1/events", json={"events": events},
                           headers=feeder).get_json()["accepted"] == 2
    person_id = client.post("/v1/check", json={"channel": "email", "to": "anna@example.com",
                                               "commit": False},
                            headers=checker).get_json()["person"]
    profile = client.get(f"/v1/people/{person_id}", headers=admin).get_json()["profile"]
    assert len(profile["purchases"]) == 1


def test_an_event_that_is_not_an_object_fails_the_request(client, feeder):
    response = client.post("/v1/events", json={"events": [{"type": "person"}, "oops"]},
                           headers=feeder)
    assert_problem(response, 400, "events.1")


def test_events_must_be_a_list(client, feeder):
    assert_problem(client.post("/v1/events", json={"events": {"type": "person"}},
                               headers=feeder), 400, "events")
    assert_problem(client.post("/v1/events", json={}, headers=feeder), 400, "events")


def test_a_batch_over_the_limit_is_refused_whole(app, client, feeder):
    app.config["EVENTS_MAX_BATCH"] = 2
    events = [person(f"003{n}", f"p{n}@example.com", timezone="Europe/Berlin") for n in range(3)]
    body = assert_problem(client.post("/v1/events", json={"events": events}, headers=feeder),
                          400, "events")
    assert "at most 2" in body["detail"]


def test_an_empty_batch_is_fine(client, feeder):
    response = client.post("/v1/events", json={"events": []}, headers=feeder)
    assert response.get_json() == {"accepted": 0, "rejected": []}
