"""Keys: Bearer or Basic, 401 for none or unknown, 403 for a missing scope, admin for all."""

from __future__ import annotations

import base64

import pytest
import sqlalchemy as sa

from guard.http import keys
from guard.services import services
from guard.store.tables import api_keys

from .conftest import bearer
from .test_errors import assert_problem

EVENTS = {"events": []}
CHECK = {"channel": "email", "to": "nobody@example.com", "commit": False}

ROUTES = [
    ("post", "/v1/events", EVENTS, "events"),
    ("post", "/v1/check", CHECK, "check"),
    ("post", "/v1/screen", {"attempt": {"channel": "email"}, "recipients": []}, "check"),
    ("post", "/v1/keys", {"name": "x", "scopes": ["check"]}, "admin"),
    ("get", "/v1/keys", None, "admin"),
    ("delete", "/v1/keys/key_missing", None, "admin"),
    ("get", "/v1/decisions/dec_missing", None, "check"),
    ("get", "/v1/people/per_missing", None, "admin"),
]
IDS = [f"{method} {path}" for method, path, _, _ in ROUTES]


def call(client, method, path, body, headers):
    if body is None:
        return client.open(path, method=method.upper(), headers=headers)
    return client.post(path, json=body, headers=headers)


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=IDS)
def test_no_key_is_401(client, method, path, body, scope):
    response = call(client, method, path, body, {})
    assert_problem(response, 401, "Authorization")
    assert "Bearer" in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=IDS)
def test_an_unknown_key_is_401(client, method, path, body, scope):
    response = call(client, method, path, body, bearer("cg_not-a-key"))
    body = assert_problem(response, 401, "Authorization")
    assert "unknown" in body["detail"]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=IDS)
def test_a_key_without_the_scope_is_403(client, make_key, method, path, body, scope):
    others = [s for s in ("check", "send", "events") if s != scope]
    response = call(client, method, path, body, bearer(make_key(*others)))
    problem = assert_problem(response, 403, "Authorization")
    assert repr(scope) in problem["detail"]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES, ids=IDS)
def test_the_scope_or_admin_gets_through(client, make_key, method, path, body, scope):
    for secret in (make_key(scope), make_key("admin")):
        response = call(client, method, path, body, bearer(secret))
        assert response.status_code not in (401, 403), response.get_json()


def test_basic_auth_with_the_key_as_password_is_accepted(client, make_key):
    secret = make_key("check", sender="oem", purpose="newsletter")
    basic = base64.b64encode(f"AC123:{secret}".encode()).decode()
    response = client.post("/v1/check", json=CHECK, headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 200


def test_keys_are_stored_hashed_never_in_clear(app, make_key):
    secret = make_key("check")
    with services(app).engine.connect() as conn:
        rows = conn.execute(sa.select(api_keys)).mappings().all()
    assert all(secret not in str(dict(row)) for row in rows)
    assert keys.hash_key(secret) in {row["key_hash"] for row in rows}


def test_authenticate_reads_scopes_and_defaults(app):
    key, secret = keys.create_key(services(app).engine, "hubspot", ["check", "send"],
                                  sender="oem", purpose="newsletter")
    found = keys.authenticate(services(app).engine, secret)
    assert found == key
    assert found.allows("send") and not found.allows("events")
    assert found.defaults == {"sender": "oem", "purpose": "newsletter"}
    assert keys.authenticate(services(app).engine, secret + "x") is None


def test_a_removed_key_stops_working_within_the_cache_time(app, make_key, monkeypatch):
    engine = services(app).engine
    secret = make_key("check")
    clock = [1000.0]
    monkeypatch.setattr(keys, "monotonic", lambda: clock[0])
    assert keys.authenticate(engine, secret) is not None
    with engine.begin() as conn:
        conn.execute(sa.delete(api_keys).where(api_keys.c.key_hash == keys.hash_key(secret)))
    clock[0] += keys.KEY_CACHE_SECONDS - 0.5
    assert keys.authenticate(engine, secret) is not None  # remembered by this process
    clock[0] += 1
    assert keys.authenticate(engine, secret) is None


def test_replacing_the_admin_key_locks_the_old_one_out_at_once(app):
    engine = services(app).engine
    keys.ensure_admin_key(engine, "first-admin-secret")
    assert keys.authenticate(engine, "first-admin-secret") is not None
    keys.ensure_admin_key(engine, "second-admin-secret")
    assert keys.authenticate(engine, "first-admin-secret") is None
    assert keys.authenticate(engine, "second-admin-secret") is not None
