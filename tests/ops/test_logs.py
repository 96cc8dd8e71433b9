"""One JSON log line per request and per send; no e-mail addresses or phone numbers."""

from __future__ import annotations

import json
import logging

import pytest

from guard import create_app
from guard.ops.logs import JsonFormatter, mask


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.strip()]


def requests_logged(capsys) -> list[dict]:
    return [line for line in lines(capsys) if line.get("event") == "request"]


def test_a_check_is_one_line_with_route_status_key_and_decision(client, make_key, capsys):
    header = make_key("check", sender="oem", purpose="newsletter")
    capsys.readouterr()
    response = client.post("/v1/check", json={"channel": "email", "to": "anna@example.com"},
                           headers={**header, "X-Request-Id": "req-42"})
    assert response.status_code == 200
    assert response.headers["X-Request-Id"] == "req-42"
    [line] = requests_logged(capsys)
    assert line["method"] == "POST" and line["route"] == "/v1/check" and line["status"] == 200
    assert line["request_id"] == "req-42"
    assert line["key_id"].startswith("key_")
    assert line["decision_ids"] == [response.get_json()["decision_id"]]
    assert line["duration_ms"] >= 0 and line["level"] == "info"


def test_a_request_without_an_id_gets_one_and_a_forged_one_is_replaced(client, capsys):
    made = client.get("/readyz")
    assert len(made.headers["X-Request-Id"]) == 32
    forged = client.get("/readyz", headers={"X-Request-Id": "x\" injected=1 " + "y" * 200})
    assert forged.headers["X-Request-Id"] != "x\" injected=1 " + "y" * 200
    ids = [line["request_id"] for line in requests_logged(capsys)]
    assert ids == [made.headers["X-Request-Id"], forged.headers["X-Request-Id"]]


def test_a_route_with_an_id_logs_its_template_not_the_path(client, make_key, capsys):
    client.get("/v1/people/per_someone", headers=make_key("admin"))
    [line] = requests_logged(capsys)
    assert line["route"] == "/v1/people/<person_id>"
    assert "per_someone" not in json.dumps(line)


def test_addresses_and_numbers_are_masked_unless_the_debug_setting_says(capsys):
    record = logging.LogRecord("guard.x", logging.WARNING, __file__, 1,
                               "rejected %s and %s on 2026-11-23", ("anna@example.com",
                                                                    "+49 151 2345 6789"), None)
    record.fields = {"to": "0151 23456789", "decision_id": "dec_0123456789abcdef"}
    masked = json.loads(JsonFormatter().format(record))
    assert masked["msg"] == "rejected [email] and [phone] on 2026-11-23"
    assert masked["to"] == "[phone]" and masked["decision_id"] == "dec_0123456789abcdef"
    shown = json.loads(JsonFormatter(personal_data=True).format(record))
    assert "anna@example.com" in shown["msg"] and shown["to"] == "0151 23456789"


def test_a_sync_rejection_naming_an_address_is_logged_masked(store, capsys):
    create_app({"GUARD": store, "TESTING": True})
    capsys.readouterr()
    logging.getLogger("guard.crm.sync").warning("hubspot contacts: rejected %s",
                                                "person.emails: bad for bob@example.org")
    [line] = lines(capsys)
    assert "bob@example.org" not in json.dumps(line) and "[email]" in line["msg"]


def test_level_comes_from_the_setting(store, capsys):
    create_app({"GUARD": store, "TESTING": True, "LOG_LEVEL": "warning"})
    client = create_app({"GUARD": store, "TESTING": True, "LOG_LEVEL": "WARNING"}).test_client()
    capsys.readouterr()
    client.get("/readyz")
    assert requests_logged(capsys) == []
    create_app({"GUARD": store, "TESTING": True})  # back to the default for the next test


def test_a_bad_level_stops_start_up_naming_the_setting(store):
    from guard.config import ConfigurationError

    with pytest.raises(ConfigurationError, match="GUARD_LOG_LEVEL"):
        create_app({"GUARD": store, "LOG_LEVEL": "chatty"})


def test_mask_leaves_dates_times_and_ids_alone():
    text = "at 2026-11-23T10:00:00Z decision dec_4f2a outbox obx_12 took 12.5 ms, 3 tries"
    assert mask(text) == text
