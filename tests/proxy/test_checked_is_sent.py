"""What the guard checks is what reaches the provider: no smuggled recipient, bomb or header."""

from __future__ import annotations

import base64
import gzip
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlencode

import pytest
import sqlalchemy as sa

from guard.http import keys
from guard.proxy import sendgrid
from guard.services import services
from guard.store.tables import ledger
from policies.model import Decision, Finding

from .conftest import CALLER_SID

PHONE, OTHER = "+491701234567", "+491709876543"
MESSAGES = f"/2010-04-01/Accounts/{CALLER_SID}/Messages.json"
A, B = "anna@example.com", "ben@example.com"


def basic(token: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{CALLER_SID}:{token}".encode()).decode()}


def sms(client, token, body: str | bytes, content_type="application/x-www-form-urlencoded"):
    return client.post(MESSAGES, data=body, headers={**basic(token), "Content-Type": content_type})


def decided(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(ledger)).scalar()


def test_a_multipart_body_is_refused_so_no_recipient_rides_past_the_check(client, token, standin,
                                                                          upstream):
    # Werkzeug would read To from the multipart part; the bytes after the closing boundary
    # used to be forwarded as a form with a second, unchecked To.
    boundary = "xyz"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"To\"\r\n\r\n{PHONE}\r\n"
            f"--{boundary}--\r\n&To={OTHER}&From=%2B4930123456&Body=Hi").encode()
    response = sms(client, token, body, f"multipart/form-data; boundary={boundary}")
    assert response.status_code == 415
    assert "Content-Type" in response.get_json()["message"]
    assert standin.checks == [] and upstream.received == []


@pytest.mark.parametrize("field", ["To", "From", "Body", "SendAt"])
def test_a_field_twilio_takes_once_given_twice_is_refused_naming_it(client, token, standin,
                                                                   upstream, field):
    form = [("To", PHONE), ("From", "+4930123456"), ("Body", "Hi"),
            ("SendAt", "2030-01-01T10:00:00Z"), (field, "again")]
    response = sms(client, token, urlencode(form))
    assert response.status_code == 400
    assert response.get_json()["message"].startswith(f"{field}: given more than once")
    assert standin.checks == [] and upstream.received == []


def test_list_fields_may_repeat_and_are_all_forwarded(client, token, upstream):
    form = [("To", PHONE), ("From", "+4930123456"), ("MediaUrl", "https://a.example/1.png"),
            ("MediaUrl", "https://a.example/2.png")]
    assert sms(client, token, urlencode(form)).status_code == 201
    assert parse_qsl(upstream.received[0].body.decode()) == form


def test_a_body_that_is_not_a_form_is_refused(client, token, standin, upstream):
    response = sms(client, token, b"To=%2B491701234567&junk")
    assert response.status_code == 400
    assert response.get_json()["message"].startswith("body: not a form")
    assert standin.checks == [] and upstream.received == []


def berlin(hour: int) -> str:
    """Tomorrow at ``hour``:00 in Berlin (winter time, UTC+1), as Twilio's SendAt."""
    day = (datetime.now(UTC) + timedelta(days=1)).date()
    return datetime(day.year, day.month, day.day, hour - 1, tzinfo=UTC).isoformat().replace(
        "+00:00", "Z")


@pytest.fixture
def sms_tool(make_app, guard):
    app = make_app(guard)
    _, token = keys.create_key(guard.engine, "sms tool", ["send"], sender="service",
                               purpose="service_reminder")
    return app.test_client(), token


def test_a_scheduled_message_is_judged_for_when_it_goes_out(sms_tool, guard, upstream):
    client, token = sms_tool
    day = {"To": PHONE, "From": "+4930123456", "Body": "Due", "ScheduleType": "fixed",
           "MessagingServiceSid": "MG" + "0" * 32}
    morning = sms(client, token, urlencode({**day, "SendAt": berlin(10)}))
    assert morning.status_code == 201 and morning.headers["X-Guard-Verdict"] == "allow"
    # Twilio schedules it: the guard forwards SendAt as given.
    assert dict(parse_qsl(upstream.received[0].body.decode()))["SendAt"] == berlin(10)

    night = sms(client, token, urlencode({**day, "SendAt": berlin(23)}))
    assert night.status_code == 201 and night.headers["X-Guard-Verdict"] == "defer"
    held = guard.decision(night.headers["X-Guard-Decisions"])
    assert held["attempt"]["at"].startswith(berlin(23)[:13])
    assert len(upstream.received) == 1
    # Held by the guard until the morning after, then sent at once: no stale SendAt.
    row = services(client.application).outbox.get(night.headers["X-Guard-Outbox"])
    assert "SendAt" not in dict(parse_qsl(row["payload"]["form"]))


def test_a_send_at_that_is_not_a_time_is_refused_naming_it(client, token, standin, upstream):
    response = sms(client, token, urlencode({"To": PHONE, "SendAt": "tomorrow"}))
    assert response.status_code == 400
    assert response.get_json()["message"].startswith("SendAt:")
    assert standin.checks == []


def mail(*recipients, **extra) -> dict:
    return {"personalizations": [{"to": [{"email": r} for r in recipients]}],
            "from": {"email": "news@oem.example"}, "subject": "News",
            "content": [{"type": "text/plain", "value": "Hello"}], **extra}


def post_mail(client, token, data: bytes, **headers):
    return client.post("/v3/mail/send", data=data, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", **headers})


def test_a_gzip_bomb_is_refused_before_it_fills_memory(make_app, standin, upstream, token):
    app = make_app(standin, MAX_CONTENT_LENGTH=1_000_000)
    body = json.dumps(mail(A)).encode()[:-1] + b', "pad": "' + b" " * 5_000_000 + b'"}'
    bomb = gzip.compress(body)
    assert len(bomb) < 20_000
    response = post_mail(app.test_client(), token, bomb, **{"Content-Encoding": "gzip"})
    assert response.status_code == 413
    assert response.get_json()["errors"][0]["field"] == "body"
    assert standin.checks == [] and upstream.received == []


def test_a_gzip_body_cut_short_is_refused(client, token, standin, upstream):
    cut = gzip.compress(json.dumps(mail(A)).encode())[:-12]
    response = post_mail(client, token, cut, **{"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "cut short" in response.get_json()["errors"][0]["message"]
    assert standin.checks == []


def test_the_bcc_mail_setting_is_checked_like_any_recipient(client, token, standin, upstream):
    standin.verdicts[B] = "block"
    kept = mail(A, mail_settings={"bcc": {"enable": True, "email": "archive@oem.example"},
                                  "sandbox_mode": {"enable": False}})
    assert post_mail(client, token, json.dumps(kept).encode()).status_code == 202
    assert upstream.received[0].json()["mail_settings"]["bcc"]["email"] == "archive@oem.example"

    dropped = mail(A, mail_settings={"bcc": {"enable": True, "email": B},
                                     "sandbox_mode": {"enable": False}})
    response = post_mail(client, token, json.dumps(dropped).encode())
    assert response.status_code == 202 and response.headers["X-Guard-Blocked"] == "1"
    forwarded = upstream.received[1].json()
    assert forwarded["mail_settings"] == {"sandbox_mode": {"enable": False}}
    assert [c["to"] for c in standin.checks] == [A, "archive@oem.example", A, B]


def test_a_bcc_setting_that_is_not_an_address_is_refused(client, token, standin):
    body = mail(A, mail_settings={"bcc": {"enable": True, "email": "not an address"}})
    response = post_mail(client, token, json.dumps(body).encode())
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "mail_settings.bcc.email"
    assert standin.checks == []


def test_a_reroute_to_an_owner_with_a_line_break_cannot_break_the_answer():
    owner = "dealer:x\r\nX-Injected: 1"
    decision = Decision("reroute", "per_1", (Finding("owner", "relationship_owner", "reroute",
                                                     "Customer of the dealer."),),
                        {"owner": owner}, None, (), "sha256:t", "dec_1")
    recipient = sendgrid.Recipient(0, "to", {"email": "zoë@example.com"}, {}, {}, decision)
    plan = sendgrid.Plan(rerouted=[recipient])
    answer = sendgrid.answer(plan, [sendgrid.planned_route(recipient)])
    header = answer.response().headers["X-Guard-Rerouted-To"]
    assert "\r" not in header and "\n" not in header
    assert header == "zo\\xeb@example.com -> owner dealer:x\\r\\nX-Injected: 1"
