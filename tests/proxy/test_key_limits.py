"""SendGrid custom_args and Twilio headers stay within the key's senders and purposes."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from guard.checks.service import Guard
from guard.http import keys
from guard.services import services
from guard.store.tables import ledger

from .test_twilio import PHONE, send

MAIL = {"personalizations": [{"to": [{"email": "anna@example.com"}]}],
        "from": {"email": "service@dealer-munich.example"}, "subject": "Your service",
        "content": [{"type": "text/plain", "value": "Hello"}]}


@pytest.fixture
def real(make_app, engine, policy):
    """The app on the real Guard and the default policy, on a Monday at 11:00 in Berlin."""
    return make_app(Guard(engine, policy, clock=lambda: datetime(2026, 11, 23, 10, tzinfo=UTC)))


@pytest.fixture
def dealer_token(real) -> str:
    """A dealer system's key: service mail as its own dealership only."""
    _, secret = keys.create_key(services(real).engine, "Munich dealer DMS", ["send"],
                                sender="dealer:munich", purpose="service_reminder",
                                senders=["dealer:munich"], purposes=["service_reminder"])
    return secret


def ledger_rows(app) -> int:
    with services(app).engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(ledger)).scalar_one()


def post_mail(app, token, body):
    return app.test_client().post("/v3/mail/send", data=json.dumps(body), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})


@pytest.mark.parametrize(("custom_args", "where", "field"), [
    ({"guard_purpose": "transactional"}, "message", "custom_args.guard_purpose"),
    ({"guard_sender": "oem"}, "message", "custom_args.guard_sender"),
    ({"guard_sender": "dealer:berlin"}, "personalization", "custom_args.guard_sender"),
], ids=["transactional-to-pass-consent", "head-office", "other-dealer"])
def test_a_mail_outside_the_keys_limits_is_403_and_nothing_goes_out(real, dealer_token, upstream,
                                                                     custom_args, where, field):
    body = json.loads(json.dumps(MAIL))
    if where == "message":
        body["custom_args"] = custom_args
    else:
        body["personalizations"][0]["custom_args"] = custom_args
    before = ledger_rows(real)
    response = post_mail(real, dealer_token, body)
    assert response.status_code == 403
    [error] = response.get_json()["errors"]
    assert error["field"] == field and error["message"].startswith(f"{field}: ")
    assert upstream.received == []
    assert ledger_rows(real) == before


def test_a_mail_within_the_limits_goes_out(real, dealer_token, upstream):
    response = post_mail(real, dealer_token, MAIL)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert len(upstream.received) == 1


@pytest.mark.parametrize(("headers", "field"), [
    ({"X-Guard-Purpose": "transactional"}, "X-Guard-Purpose"),
    ({"X-Guard-Sender": "oem"}, "X-Guard-Sender"),
], ids=["transactional-to-pass-consent", "head-office"])
def test_an_sms_outside_the_keys_limits_is_403_and_nothing_goes_out(real, dealer_token, upstream,
                                                                    headers, field):
    before = ledger_rows(real)
    response = send(real.test_client(), dealer_token, **headers)
    assert response.status_code == 403
    body = response.get_json()
    assert body["status"] == 403 and body["message"].startswith(f"{field}: ")
    assert upstream.received == []
    assert ledger_rows(real) == before


def test_an_sms_within_the_limits_goes_out(real, dealer_token, upstream):
    response = send(real.test_client(), dealer_token, form={
        "To": PHONE, "From": "+4930123456", "Body": "Service due"})
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.headers["X-Guard-Verdict"] == "allow"
    assert len(upstream.received) == 1
