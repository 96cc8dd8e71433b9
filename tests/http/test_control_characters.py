"""A control character in a path is a 404 before the store, and logs never carry one raw."""

from __future__ import annotations

import logging

import pytest
from flask import Flask

from guard.http.problems import init_app

from .conftest import bearer
from .test_errors import assert_problem

PATHS = [
    "/v1/decisions/x%00%0A2026-11-23 INFO guard: forged",
    "/v1/decisions/dec_%0D%0Aforged",
    "/v1/people/per_%1B%5B31m",
    "/v3/mail/send%00",
    "/2010-04-01/Accounts/AC%00/Messages.json",
    "/nothing-here%0Aforged",
]


@pytest.mark.parametrize("path", PATHS, ids=["nul-and-newline", "crlf", "escape", "sendgrid",
                                             "twilio", "unknown-route"])
def test_a_path_with_a_control_character_is_404_and_logs_nothing(client, make_key, caplog,
                                                                 path):
    # On PostgreSQL the NUL once reached the store: a 503 and the decoded line in the log.
    headers = bearer(make_key("admin"))
    with caplog.at_level(logging.DEBUG):
        for method in (client.get, client.post):
            body = assert_problem(method(path, headers=headers), 404, "path")
            assert "control character" in body["detail"]
    assert "forged" not in caplog.text


def test_ids_without_control_characters_still_reach_their_views(client, checker):
    body = assert_problem(client.get("/v1/decisions/dec_unknown", headers=checker), 404)
    assert not body["detail"].startswith("path:")


def test_request_fields_in_the_log_are_escaped(caplog):
    app = Flask("logs")
    init_app(app)

    @app.get("/boom/<name>")
    def boom(name):
        raise RuntimeError("broken")

    # U+2028 is no control character, so it reaches the view, but log readers break lines on it.
    response = app.test_client().get("/boom/x%E2%80%A82026-11-23 INFO guard: forged")
    assert_problem(response, 500, "server")
    [record] = [r for r in caplog.records if "unexpected error" in r.getMessage()]
    assert "\u2028" not in record.getMessage()
    assert "/boom/x\\u20282026-11-23 INFO guard: forged" in record.getMessage()
