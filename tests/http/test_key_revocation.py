"""Admins list and revoke keys; a revoked key stops at once here and within seconds elsewhere."""

from __future__ import annotations

import pytest

from guard.http import keys
from guard.http.schemas import KeyListSchema, KeySchema
from guard.services import services
from guard.store.engine import make_engine

from .conftest import bearer
from .test_errors import assert_problem

CHECK = {"channel": "email", "to": "anna@example.com", "commit": False}


@pytest.fixture
def tool(client, admin) -> dict:
    response = client.post("/v1/keys", json={"name": "HubSpot workflows", "scopes": ["check"],
                                             "sender": "oem", "purpose": "newsletter",
                                             "senders": ["oem"]}, headers=admin)
    assert response.status_code == 201
    return response.get_json()


def test_admins_list_every_key_without_secret_or_hash(client, admin, tool):
    response = client.get("/v1/keys", headers=admin)
    assert response.status_code == 200
    listing = response.get_json()
    assert KeyListSchema().validate(listing) == {}
    [found] = [k for k in listing["keys"] if k["id"] == tool["id"]]
    assert found == {"id": tool["id"], "name": "HubSpot workflows", "scopes": ["check"],
                     "sender": "oem", "purpose": "newsletter", "senders": ["oem"],
                     "purposes": None, "created_at": found["created_at"], "revoked_at": None}
    text = response.get_data(as_text=True)
    assert tool["key"] not in text and keys.hash_key(tool["key"]) not in text


def test_a_revoked_key_stops_working_at_once_and_stays_listed(client, admin, tool):
    headers = bearer(tool["key"])
    assert client.post("/v1/check", json=CHECK, headers=headers).status_code == 200
    response = client.delete(f"/v1/keys/{tool['id']}", headers=admin)
    assert response.status_code == 200
    revoked = response.get_json()
    assert KeySchema().validate(revoked) == {}
    assert revoked["id"] == tool["id"] and revoked["revoked_at"]
    problem = assert_problem(client.post("/v1/check", json=CHECK, headers=headers), 401,
                             "Authorization")
    assert "revoked" in problem["detail"]
    [listed] = [k for k in client.get("/v1/keys", headers=admin).get_json()["keys"]
                if k["id"] == tool["id"]]
    assert listed["revoked_at"] == revoked["revoked_at"]
    again = client.delete(f"/v1/keys/{tool['id']}", headers=admin)
    assert again.status_code == 200 and again.get_json()["revoked_at"] == revoked["revoked_at"]


def test_revoking_an_unknown_key_is_404_naming_the_id(client, admin):
    assert_problem(client.delete("/v1/keys/key_0000000000000000", headers=admin), 404, "id")


def test_the_bootstrap_key_is_not_revoked_through_the_api(app, client):
    secret = "bootstrap-admin-secret-" + "z" * 20
    keys.ensure_admin_key(services(app).engine, secret)
    problem = assert_problem(client.delete(f"/v1/keys/{keys.BOOTSTRAP_ID}",
                                           headers=bearer(secret)), 409, "id")
    assert "GUARD_ADMIN_KEY" in problem["detail"]
    assert client.get("/v1/keys", headers=bearer(secret)).status_code == 200


def test_another_process_stops_accepting_a_revoked_key_within_the_cache_time(
        app, db_url, tool, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(keys, "monotonic", lambda: clock[0])
    # Another replica: its own engine, so its own remembered keys.
    elsewhere = make_engine(db_url)
    try:
        assert keys.authenticate(elsewhere, tool["key"]) is not None
        keys.revoke_key(services(app).engine, tool["id"])
        assert keys.authenticate(services(app).engine, tool["key"]) is None
        clock[0] += keys.KEY_CACHE_SECONDS - 0.5
        assert keys.authenticate(elsewhere, tool["key"]) is not None  # still remembered there
        clock[0] += 1
        assert keys.authenticate(elsewhere, tool["key"]) is None
    finally:
        elsewhere.dispose()


def test_a_lookup_under_way_while_a_key_is_revoked_does_not_remember_it(app, tool, monkeypatch):
    engine = services(app).engine
    started = keys._recent.generation(engine)
    keys.revoke_key(engine, tool["id"])
    # The lookup read the key before the revocation landed and answers after it.
    stale = keys.ApiKey(tool["id"], tool["name"], frozenset({"check"}))
    keys._recent.put(engine, keys.hash_key(tool["key"]), stale, started)
    assert keys.authenticate(engine, tool["key"]) is None
