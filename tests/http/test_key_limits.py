"""A key's senders and purposes are limits: a request outside them is a 403 naming the field."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from guard.http import keys
from guard.services import services
from guard.store.migrate import upgrade
from guard.store.tables import api_keys, ledger

from .conftest import bearer
from .test_errors import assert_problem

DEALER = {"name": "Munich dealer DMS", "scopes": ["check"], "sender": "dealer:munich",
          "purpose": "service_reminder", "senders": ["dealer:munich"],
          "purposes": ["service_reminder", "survey"]}


def ledger_rows(app) -> int:
    with services(app).engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(ledger)).scalar_one()


@pytest.fixture
def dealer(client, admin) -> dict:
    """A dealer system's key: it may send service mail as its own dealership only."""
    response = client.post("/v1/keys", json=DEALER, headers=admin)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_a_created_key_shows_its_limits_and_keeps_them(app, dealer):
    assert dealer["senders"] == ["dealer:munich"]
    assert dealer["purposes"] == ["service_reminder", "survey"]
    found = keys.authenticate(services(app).engine, dealer["key"])
    assert found.senders == ("dealer:munich",)
    assert found.purposes == ("service_reminder", "survey")


@pytest.mark.parametrize(("body", "field"), [
    ({"sender": "oem"}, "sender"),
    ({"purpose": "transactional"}, "purpose"),
    ({"sender": "dealer:berlin", "purpose": "survey"}, "sender"),
], ids=["other-sender", "transactional-to-pass-consent", "other-dealer"])
def test_a_check_outside_the_keys_limits_is_403_and_records_nothing(app, client, dealer, body,
                                                                     field):
    before = ledger_rows(app)
    response = client.post("/v1/check", json={"channel": "email", "to": "anna@example.com",
                                              **body}, headers=bearer(dealer["key"]))
    problem = assert_problem(response, 403, field)
    assert problem["field"] == field
    assert "Munich dealer DMS" in problem["detail"]
    assert ledger_rows(app) == before


def test_a_check_within_the_limits_or_on_the_defaults_is_decided(client, dealer):
    for body in ({}, {"purpose": "survey"}, {"sender": "dealer:munich"}):
        response = client.post("/v1/check", json={"channel": "email", "to": "anna@example.com",
                                                  "commit": False, **body},
                               headers=bearer(dealer["key"]))
        assert response.status_code == 200, response.get_json()


def test_a_pattern_admits_every_sender_it_matches(client, admin):
    created = client.post("/v1/keys", json={"name": "dealer group", "scopes": ["check"],
                                            "senders": ["dealer:*"], "purpose": "newsletter"},
                          headers=admin).get_json()
    headers = bearer(created["key"])
    body = {"channel": "email", "to": "anna@example.com", "commit": False}
    for sender in ("dealer:munich", "dealer:berlin"):
        assert client.post("/v1/check", json={**body, "sender": sender},
                           headers=headers).status_code == 200
    assert_problem(client.post("/v1/check", json={**body, "sender": "oem"}, headers=headers),
                   403, "sender")


def test_a_screen_outside_the_limits_names_the_attempt_field(app, client, dealer):
    before = ledger_rows(app)
    response = client.post("/v1/screen", json={
        "attempt": {"channel": "email", "sender": "oem"},
        "recipients": ["anna@example.com"], "commit": True}, headers=bearer(dealer["key"]))
    assert_problem(response, 403, "attempt.sender")
    response = client.post("/v1/screen", json={
        "attempt": {"channel": "email", "purpose": "price_offer"},
        "recipients": ["anna@example.com"]}, headers=bearer(dealer["key"]))
    assert_problem(response, 403, "attempt.purpose")
    assert ledger_rows(app) == before


@pytest.mark.parametrize(("change", "field"), [
    ({"senders": ["martians"]}, "senders.0"),
    ({"senders": ["dealer:munich", "dealer: berlin"]}, "senders.1"),
    ({"senders": ["dealer:munich", 7]}, "senders.1"),
    ({"senders": []}, "senders"),
    ({"purposes": ["bribery"]}, "purposes.0"),
    ({"purposes": ["*_offer", "x\nforged"]}, "purposes.1"),
    ({"sender": "dealer:berlin"}, "sender"),
    ({"purpose": "price_offer"}, "purpose"),
], ids=["unknown-sender", "blank-in-sender", "not-text", "empty-list", "unknown-purpose",
        "control-character", "default-sender-outside", "default-purpose-outside"])
def test_bad_limits_are_400_naming_the_field_and_create_nothing(app, client, admin, change,
                                                                field):
    with services(app).engine.connect() as conn:
        before = conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one()
    assert_problem(client.post("/v1/keys", json={**DEALER, **change}, headers=admin), 400, field)
    with services(app).engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one() == before


def test_a_purpose_pattern_must_match_a_purpose_the_policy_knows(client, admin):
    response = client.post("/v1/keys", json={"name": "offers", "scopes": ["check"],
                                             "purposes": ["*_offer"]}, headers=admin)
    assert response.status_code == 201
    assert response.get_json()["purposes"] == ["*_offer"]


def test_keys_stored_before_limits_existed_keep_working_without_limits(db_url):
    from guard.store.engine import make_engine

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0007")
        with engine.begin() as conn:
            conn.execute(sa.text(
                "insert into api_keys (id, name, key_hash, scopes, sender, purpose, created_at) "
                "values ('key_old', 'old tool', :digest, 'check', 'oem', 'newsletter', "
                "CURRENT_TIMESTAMP)"), {"digest": keys.hash_key("cg_old-secret")})
        upgrade(engine)
        found = keys.authenticate(engine, "cg_old-secret")
        assert found is not None and found.senders == () and found.purposes == ()
        found.permit("dealer:anyone", "transactional")
    finally:
        engine.dispose()
