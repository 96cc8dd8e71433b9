"""POST /v1/screen: one attempt, many recipients, results in order, summary counts."""

from __future__ import annotations

import json

import pytest

from guard.http.schemas import ScreenResponseSchema
from tests.conftest import person

from .test_errors import assert_problem

NEWSLETTER = {"channel": "email", "purpose": "newsletter", "sender": "oem",
              "template": "news-48", "at": "2026-11-23T10:00:00Z"}


@pytest.fixture
def people(client, feeder):
    events = [
        person("003A", "anna@example.com", timezone="Europe/Berlin",
               name="Anna Berg", stage="customer",
               owner="dealer:munich"),
        person("003O", "otto@example.com", timezone="Europe/Berlin",
               name="Otto Opt-out", stage="customer",
               owner="dealer:munich"),
        {"type": "consent", "source": {"system": "salesforce", "id": "C-1"},
         "person": {"email": "otto@example.com"}, "channel": "email", "purpose": "marketing",
         "status": "opt_out", "at": "2026-10-01T00:00:00Z"},
    ]
    assert client.post("/v1/events", json={"events": events},
               headers=feeder).get_json()["accepted"] == 3


def expected_verdict(i: int) -> str | None:
    return {0: "block", 1: "allow", 2: None}.get(i % 1000, "allow")


def recipient(i: int) -> str:
    return {0: "otto@example.com", 1: "anna@example.com", 2: "not an address"}.get(
        i % 1000, f"u{i}@example.net")


def test_a_hundred_thousand_recipients_in_one_request(client, checker, people):
    recipients = [recipient(i) for i in range(100_000)]
    response = client.post("/v1/screen", json={"attempt": NEWSLETTER, "recipients": recipients},
                           headers=checker)
    assert response.status_code == 200
    assert response.is_streamed
    body = json.loads(response.get_data())
    assert body["summary"] == {"allow": 99_800, "block": 100, "reroute": 0, "defer": 0,
                               "invalid": 100}
    results = body["results"]
    assert [r["to"] for r in results] == recipients
    assert [r["verdict"] for r in results] == [expected_verdict(i) for i in range(100_000)]
    assert results[0]["rules"] == ["consent"]
    assert "error" in results[2] and results[2]["decision_id"] is None
    assert ScreenResponseSchema().validate({"results": results[:1000],
                                            "summary": body["summary"]}) == {}


def test_a_dry_screen_leaves_the_ledger_alone_and_commit_writes_it(client, checker, admin,
                                                                   people):
    body = {"attempt": NEWSLETTER, "recipients": ["anna@example.com"]}
    dry = client.post("/v1/screen", json=body, headers=checker).get_json()
    person_id = client.post("/v1/check", json={"to": "anna@example.com", "channel": "email",
                                               "commit": False},
                            headers=checker).get_json()["person"]
    assert dry["summary"]["allow"] == 1
    assert _committed(client, admin, person_id) == 0
    done = client.post("/v1/screen", json={**body, "commit": True}, headers=checker).get_json()
    assert done["results"][0]["decision_id"].startswith("dec_")
    assert _committed(client, admin, person_id) == 1


def _committed(client, admin, person_id) -> int:
    ledger = client.get(f"/v1/people/{person_id}", headers=admin).get_json()["ledger"]
    return sum(1 for entry in ledger if entry.get("committed", True))


def test_a_bad_attempt_is_400_before_anything_streams(client, checker, people):
    response = client.post("/v1/screen", json={"attempt": {**NEWSLETTER, "channel": "pigeon"},
                                               "recipients": ["anna@example.com"]},
                           headers=checker)
    assert_problem(response, 400, "attempt.channel")


def test_attempt_defaults_come_from_the_key(client, make_key, people):
    from .conftest import bearer

    attempt = {"channel": "email"}
    no_defaults = client.post("/v1/screen", json={"attempt": attempt, "recipients": ["a@b.de"]},
                              headers=bearer(make_key("check")))
    assert_problem(no_defaults, 400, "attempt.purpose")
    with_defaults = client.post("/v1/screen", json={"attempt": attempt,
                                                    "recipients": ["anna@example.com"]},
                                headers=bearer(make_key("check", sender="oem",
                                                        purpose="newsletter")))
    assert with_defaults.get_json()["results"][0]["verdict"] == "allow"


def test_too_many_recipients_is_400(app, client, checker):
    app.config["SCREEN_MAX_RECIPIENTS"] = 3
    response = client.post("/v1/screen", json={"attempt": NEWSLETTER,
                                               "recipients": ["a@b.de"] * 4}, headers=checker)
    assert_problem(response, 400, "recipients")


def test_no_recipients_gives_an_empty_result(client, checker):
    body = client.post("/v1/screen", json={"attempt": NEWSLETTER, "recipients": []},
                       headers=checker).get_json()
    assert body == {"results": [], "summary": {"allow": 0, "block": 0, "reroute": 0,
                                               "defer": 0, "invalid": 0}}
