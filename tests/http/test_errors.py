"""Every error is application/problem+json with a detail naming the field."""

from __future__ import annotations

import pytest
from flask import Flask

from guard.http.problems import MEDIA_TYPE, init_app
from guard.services import services

from .conftest import bearer


def assert_problem(response, status: int, field: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == MEDIA_TYPE
    body = response.get_json(force=True)
    assert body["status"] == status
    assert body["title"] and body["type"] == "about:blank"
    if field is not None:
        assert body["detail"].startswith(f"{field}: "), body["detail"]
    return body


def test_unknown_path_is_404_naming_the_path(client):
    body = assert_problem(client.get("/v1/nothing-here"), 404, "path")
    assert "/v1/nothing-here" in body["detail"]


def test_wrong_method_is_405_naming_the_method_and_allowed_ones(client):
    response = client.get("/v1/check")
    body = assert_problem(response, 405, "method")
    assert "POST" in body["detail"]
    assert "POST" in response.headers["Allow"]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          None], ids=["text", "form", "none"])
def test_a_body_that_is_not_json_is_415(client, checker, content_type):
    headers = dict(checker)
    if content_type:
        headers["Content-Type"] = content_type
    response = client.post("/v1/check", data='{"channel": "email"}', headers=headers)
    body = assert_problem(response, 415, "Content-Type")
    assert "application/json" in body["detail"]


@pytest.mark.parametrize("raw", ['{"channel": ', "{'single': 1}", "NaN", "\xff\xfe"],
                         ids=["truncated", "single-quotes", "nan", "not-utf8"])
def test_malformed_json_is_400_naming_the_body(client, checker, raw):
    data = raw.encode("latin-1")
    response = client.post("/v1/check", data=data, headers={**checker,
                                                            "Content-Type": "application/json"})
    assert_problem(response, 400, "body")


def test_json_that_is_not_an_object_is_400(client, checker):
    response = client.post("/v1/check", json=["email"], headers=checker)
    body = assert_problem(response, 400, "body")
    assert "object" in body["detail"]


def test_validation_names_the_first_field_and_lists_all(client, checker):
    response = client.post("/v1/check", json={"channel": 5, "to": "", "commit": "perhaps"},
                           headers=checker)
    body = assert_problem(response, 400)
    assert set(body["errors"]) == {"channel", "to", "commit"}
    assert body["field"] in body["errors"]
    assert body["detail"].startswith(body["field"] + ": ")


def test_nested_fields_are_named_by_path(client, checker):
    response = client.post("/v1/screen", json={"attempt": {"channel": "email", "at": "soon"},
                                               "recipients": ["a@example.com", 7]},
                           headers=checker)
    body = assert_problem(response, 400)
    assert set(body["errors"]) == {"attempt.at", "recipients.1"}


def test_unknown_body_fields_are_named(client, checker):
    response = client.post("/v1/check", json={"channel": "email", "to": "a@example.com",
                                              "colour": "red"}, headers=checker)
    assert_problem(response, 400, "colour")


def test_an_oversize_body_is_413(app, client, checker):
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = client.post("/v1/check", data=b"{" + b" " * 2000 + b"}",
                           headers={**checker, "Content-Type": "application/json"})
    body = assert_problem(response, 413, "body")
    assert "1000" in body["detail"]


def test_unexpected_errors_are_a_generic_500_and_logged(caplog):
    app = Flask("boom")
    init_app(app)

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    body = assert_problem(response, 500, "server")
    assert "secret internals" not in body["detail"]
    assert "secret internals" in caplog.text


def test_401_asks_for_a_bearer_key(client):
    response = client.post("/v1/check", json={})
    assert_problem(response, 401, "Authorization")
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_problem_bodies_are_never_html(client):
    for response in (client.get("/nope"), client.delete("/v1/check"),
                     client.post("/v1/check", json={}, headers=bearer("cg_unknown"))):
        assert b"<html" not in response.get_data().lower()


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/keys", {"name": "crm\u0000", "scopes": ["check"]}, "name"),
    ("/v1/check", {"channel": "email", "to": "a@example.com", "purpose": "newsletter",
                   "sender": "oem", "template": "t\u0000"}, "template"),
    ("/v1/events", {"events": [{"type": "person", "source": {"system": "dms", "id": "C\u0000"}}]},
     "events.0.source.id"),
], ids=["key-name", "check-template", "event-source"])
def test_a_nul_character_is_a_400_naming_the_field(app, client, path, body, field):
    from guard.http import keys

    _, secret = keys.create_key(services(app).engine, "admin", ["admin"])
    response = client.post(path, json=body, headers={"Authorization": f"Bearer {secret}"})
    assert response.status_code == 400, response.get_data(as_text=True)
    problem = response.get_json()
    assert problem["field"] == field and "NUL" in problem["detail"]
