"""The real Guard and the shipped policy behind the proxy: an opt-out is honoured on the wire."""

from __future__ import annotations

import base64
import json
from urllib.parse import urlencode

from guard.http import keys

from .conftest import CALLER_SID

OPTED_OUT = "ben@example.com"
OPTED_OUT_PHONE = "+491709876543"


def opt_outs(guard) -> None:
    result = guard.ingest([
        {"type": "consent", "source": {"system": "crm", "id": "optout-1"}, "email": OPTED_OUT,
         "channel": "*", "purpose": "*", "status": "opt_out", "at": "2026-01-05T09:00:00Z"},
        {"type": "consent", "source": {"system": "crm", "id": "optout-2"},
         "phone": OPTED_OUT_PHONE, "channel": "*", "purpose": "*", "status": "opt_out",
         "at": "2026-01-05T09:00:00Z"},
    ])
    assert result["rejected"] == [], result


def test_an_opted_out_recipient_never_reaches_sendgrid(make_app, guard, upstream):
    opt_outs(guard)
    app = make_app(guard)
    _, token = keys.create_key(guard.engine, "newsletter tool", ["send"], sender="oem",
                               purpose="newsletter")
    body = {"personalizations": [{"to": [{"email": "anna@example.com"}, {"email": OPTED_OUT}]}],
            "from": {"email": "news@oem.example"}, "subject": "News",
            "content": [{"type": "text/plain", "value": "Hello"}]}
    response = app.test_client().post("/v3/mail/send", data=json.dumps(body), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})

    assert response.status_code == 202, response.data
    assert response.headers["X-Guard-Blocked"] == "1"
    [sent] = upstream.received
    assert sent.json()["personalizations"] == [{"to": [{"email": "anna@example.com"}]}]
    ids = response.headers["X-Guard-Decisions"].split(",")
    verdicts = sorted(guard.decision(i)["verdict"] for i in ids)
    assert verdicts == ["allow", "block"]


def test_an_opted_out_phone_gets_twilio_21610(make_app, guard, upstream):
    opt_outs(guard)
    app = make_app(guard)
    _, token = keys.create_key(guard.engine, "sms tool", ["send"], sender="oem",
                               purpose="promotion")
    auth = base64.b64encode(f"{CALLER_SID}:{token}".encode()).decode()
    response = app.test_client().post(
        f"/2010-04-01/Accounts/{CALLER_SID}/Messages.json",
        data=urlencode({"To": OPTED_OUT_PHONE, "From": "+4930123456", "Body": "Sale!"}),
        headers={"Authorization": f"Basic {auth}",
                 "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400
    assert response.get_json()["code"] == 21610
    assert upstream.received == []
