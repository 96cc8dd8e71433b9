"""POST /v1/keys: admins create keys, shown once, with scopes and defaults that take effect."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from guard.http.schemas import KeyCreatedSchema
from guard.services import services
from guard.store.tables import api_keys

from .conftest import bearer
from .test_errors import assert_problem


def test_an_admin_creates_a_key_that_works_with_its_scopes(client, admin):
    response = client.post("/v1/keys", json={"name": "HubSpot workflows", "scopes": ["check"],
                                             "sender": "oem", "purpose": "newsletter"},
                           headers=admin)
    assert response.status_code == 201
    created = response.get_json()
    assert KeyCreatedSchema().validate(created) == {}
    assert created["id"].startswith("key_") and created["key"].startswith("cg_")
    assert created["scopes"] == ["check"]
    headers = bearer(created["key"])
    decision = client.post("/v1/check", json={"channel": "email", "to": "x@example.com",
                                              "commit": False}, headers=headers)
    assert decision.status_code == 200
    refused = client.post("/v1/events", json={"events": []}, headers=headers)
    assert_problem(refused, 403, "Authorization")


def test_each_key_is_new(client, admin):
    body = {"name": "tool", "scopes": ["events"]}
    first = client.post("/v1/keys", json=body, headers=admin).get_json()
    second = client.post("/v1/keys", json=body, headers=admin).get_json()
    assert first["key"] != second["key"] and first["id"] != second["id"]


@pytest.mark.parametrize(("body", "field"), [
    ({"scopes": ["check"]}, "name"),
    ({"name": "x"}, "scopes"),
    ({"name": "x", "scopes": []}, "scopes"),
    ({"name": "x", "scopes": ["root"]}, "scopes.0"),
    ({"name": "x", "scopes": ["check"], "sender": "martians"}, "sender"),
    ({"name": "x", "scopes": ["check"], "purpose": "bribery"}, "purpose"),
    ({"name": "", "scopes": ["check"]}, "name"),
], ids=["no-name", "no-scopes", "empty-scopes", "unknown-scope", "sender", "purpose",
        "empty-name"])
def test_bad_key_requests_are_400_and_create_nothing(app, client, admin, body, field):
    before = _count_keys(app)
    assert_problem(client.post("/v1/keys", json=body, headers=admin), 400, field)
    assert _count_keys(app) == before


def _count_keys(app) -> int:
    with services(app).engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one()


def test_only_admins_create_keys(client, make_key):
    response = client.post("/v1/keys", json={"name": "x", "scopes": ["admin"]},
                           headers=bearer(make_key("check", "send", "events")))
    assert_problem(response, 403, "Authorization")
