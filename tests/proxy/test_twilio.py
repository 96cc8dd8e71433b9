"""Twilio Messages and Calls through the guard."""

from __future__ import annotations

import base64
from urllib.parse import urlencode

import pytest

from guard.services import services

from .conftest import CALLER_SID, GUARD_SID
from .upstream import Serving

PHONE = "+491701234567"
MESSAGES = f"/2010-04-01/Accounts/{CALLER_SID}/Messages.json"
CALLS = f"/2010-04-01/Accounts/{CALLER_SID}/Calls.json"


def basic(token: str, user: str = CALLER_SID) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{token}".encode()).decode()}


def send(client, token, path=MESSAGES, form=None, **headers):
    form = form or {"To": PHONE, "From": "+4930123456", "Body": "Service due"}
    return client.post(path, data=urlencode(form),
                       headers={**basic(token), **headers,
                                "Content-Type": "application/x-www-form-urlencoded"})


def test_allowed_sms_goes_to_the_guards_account_byte_for_byte(client, token, upstream):
    form = {"To": PHONE, "From": "+4930123456", "Body": "Grüße & more", "StatusCallback":
            "https://tool.example/cb"}
    response = send(client, token, form=form)

    assert response.status_code == 201
    [got] = upstream.received
    assert got.path == f"/2010-04-01/Accounts/{GUARD_SID}/Messages.json"
    assert got.headers["Authorization"] == "Basic " + base64.b64encode(
        f"{GUARD_SID}:guard-own-token".encode()).decode()
    assert got.body == urlencode(form).encode()
    # Twilio's answer as is.
    assert response.get_json()["sid"].startswith("SM")
    assert response.get_json()["body"] == "Grüße & more"
    assert response.headers["X-Guard-Verdict"] == "allow"


def test_allowed_call_is_forwarded(client, token, upstream):
    response = send(client, token, CALLS, {"To": PHONE, "From": "+4930123456",
                                           "Url": "https://tool.example/twiml"})
    assert response.status_code == 201
    assert upstream.received[0].path == f"/2010-04-01/Accounts/{GUARD_SID}/Calls.json"
    assert response.get_json()["sid"].startswith("CA")


def test_blocked_is_twilio_21610_with_the_guards_reason(client, token, standin, upstream):
    standin.verdicts[PHONE] = "block"
    response = send(client, token)
    assert response.status_code == 400
    body = response.get_json()
    assert body["code"] == 21610
    assert body["status"] == 400
    assert "opted out of sms on 2026-11-01" in body["message"]
    assert body["more_info"].endswith("21610")
    assert upstream.received == []


def test_rerouted_call_is_refused_naming_the_owner(client, token, standin, upstream):
    standin.verdicts[PHONE] = "reroute"
    response = send(client, token, CALLS, {"To": PHONE, "From": "+4930123456"})
    assert response.status_code == 400
    assert "owner dealer:munich" in response.get_json()["message"]
    assert upstream.received == []


def test_deferred_sms_is_held_and_says_so(client, token, standin, upstream, app):
    standin.verdicts[PHONE] = "defer"
    response = send(client, token)
    assert response.status_code == 201
    body = response.get_json()
    assert body["status"] == "scheduled"
    assert body["sid"].startswith("SM") and len(body["sid"]) == 34
    assert response.headers["X-Guard-Verdict"] == "defer"
    assert response.headers["X-Guard-Not-Before"]
    assert upstream.received == []
    [row] = services(app).outbox.rows("held")
    assert row["id"] == response.headers["X-Guard-Outbox"]
    assert row["checks"][0]["channel"] == "sms"


def test_purpose_and_sender_come_from_headers_else_the_key(client, token, standin):
    send(client, token, **{"X-Guard-Purpose": "payment_reminder", "X-Guard-Sender": "billing"})
    send(client, token)
    first, second = standin.checks
    assert (first["purpose"], first["sender"], first["channel"]) == (
        "payment_reminder", "billing", "sms")
    assert (second["purpose"], second["sender"]) == ("promotion", "oem")


def test_whatsapp_addresses_are_checked_as_the_phone_number(client, token, standin):
    send(client, token, form={"To": f"whatsapp:{PHONE}", "Body": "hi"})
    assert standin.checks[0]["to"] == PHONE


@pytest.mark.parametrize(
    ("form", "code"),
    [({"Body": "no recipient"}, 21604), ({"To": "@@", "Body": "x"}, 21211)],
    ids=["missing-to", "invalid-to"],
)
def test_bad_recipients_are_twilio_errors(client, token, upstream, form, code):
    response = send(client, token, form=form)
    assert response.status_code == 400
    assert response.get_json()["code"] == code
    assert upstream.received == []


def test_wrong_password_is_twilio_401(client, upstream):
    response = send(client, "not-a-key")
    assert response.status_code == 401
    assert response.get_json()["code"] == 20003
    assert upstream.received == []


def test_twilio_errors_come_back_as_is(client, token, upstream):
    error = {"code": 21211, "message": "The 'To' number is not valid.", "status": 400,
             "more_info": "https://www.twilio.com/docs/errors/21211"}
    upstream.script.append((400, {}, error))
    response = send(client, token)
    assert response.status_code == 400
    assert response.get_json() == error


def test_the_real_twilio_client_works_unchanged(make_app, standin, upstream):
    from twilio.base.exceptions import TwilioRestException
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    from guard.http import keys

    app = make_app(standin)
    _, token = keys.create_key(services(app).engine, "dialer", ["send"],
                               sender="service", purpose="service_reminder")
    with Serving(app) as live:

        class ToGuard(TwilioHttpClient):
            def request(self, method, url, *args, **kwargs):
                url = url.replace("https://api.twilio.com", live.url)
                return super().request(method, url, *args, **kwargs)

        client = Client(CALLER_SID, token, http_client=ToGuard())
        message = client.messages.create(to=PHONE, from_="+4930123456", body="Service due")
        assert message.sid.startswith("SM")
        assert message.status == "queued"
        call = client.calls.create(to=PHONE, from_="+4930123456", url="https://t.example/x")
        assert call.sid.startswith("CA")
        standin.verdicts[PHONE] = "block"
        with pytest.raises(TwilioRestException) as raised:
            client.messages.create(to=PHONE, from_="+4930123456", body="Again")
        assert raised.value.code == 21610
        assert raised.value.status == 400
    assert len(upstream.received) == 2
    assert standin.checks[0]["purpose"] == "service_reminder"
