"""Twilio's incoming-message webhook: a signed STOP stops texts from every sender."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from guard.services import services
from guard.store.tables import records
from tests.conftest import NOW
from tests.proxy.conftest import GUARD_SID

from .conftest import PUBLIC, check

twilio_request = pytest.importorskip("twilio.request_validator")

PHONE = "+491701234567"
URL = f"{PUBLIC}/hooks/twilio/messages"


def _form(body: str, sid: str = "SM" + "a" * 32, **extra) -> dict:
    return {"MessageSid": sid, "SmsSid": sid, "AccountSid": GUARD_SID, "From": PHONE,
            "To": "+4930123456", "Body": body, "NumMedia": "0", **extra}


def _post(client, form: dict, token: str = "guard-own-token"):
    # Signed as Twilio signs: by its own library, with the account's auth token.
    signature = twilio_request.RequestValidator(token).compute_signature(URL, form)
    return client.post("/hooks/twilio/messages", data=form,
                       headers={"X-Twilio-Signature": signature})


def test_stop_blocks_texts_from_every_sender_and_start_lets_them_through(client, store, anna):
    answer = _post(client, _form("Stop", OptOutType="STOP"))
    assert answer.status_code == 200 and answer.mimetype == "text/xml"
    for sender in ("oem", "dealer:munich", "service"):
        assert "consent" in check(store, "service_reminder", channel="sms", sender=sender).rules
    assert "consent" not in check(store, "service_reminder", sender="service").rules
    assert check(store, "safety_recall", channel="sms").verdict == "allow"

    store.clock = lambda: NOW + timedelta(hours=1)
    _post(client, _form("START", sid="SM" + "b" * 32, OptOutType="START"))
    assert "consent" not in check(store, "service_reminder", channel="sms",
                                  sender="service").rules


def test_the_keyword_alone_counts_without_advanced_opt_out(client, store, anna):
    _post(client, _form(" unsubscribe "))
    assert "consent" in check(store, "newsletter", channel="sms").rules


@pytest.mark.parametrize("body", ["Stop texting me please", "HELP", "Hello"])
def test_other_messages_change_nothing(client, store, anna, body):
    assert _post(client, _form(body, OptOutType="HELP" if body == "HELP" else "")
                 ).status_code == 200
    assert "consent" not in check(store, "newsletter", channel="sms").rules


@pytest.mark.parametrize("spoil", [
    lambda c, f: c.post("/hooks/twilio/messages", data=f),
    lambda c, f: _post(c, f, token="someone-elses-token"),
    lambda c, f: c.post("/hooks/twilio/messages", data={**f, "From": "+15550000000"},
                        headers={"X-Twilio-Signature": twilio_request.RequestValidator(
                            "guard-own-token").compute_signature(URL, f)}),
    lambda c, f: _post(c, {**f, "AccountSid": "AC" + "9" * 32}),
], ids=["unsigned", "other-token", "changed-after-signing", "other-account"])
def test_an_unsigned_or_forged_request_changes_nothing(client, store, anna, spoil):
    answer = spoil(client, _form("STOP", OptOutType="STOP"))
    assert answer.status_code == 403
    assert answer.mimetype == "application/problem+json"
    assert "consent" not in check(store, "newsletter", channel="sms").rules


def test_a_delivery_twilio_repeats_is_recorded_once(app, client, store, anna):
    form = _form("STOP", OptOutType="STOP")
    _post(client, form)
    with services(app).engine.connect() as conn:
        first = conn.execute(sa.select(records.c.updated_at, records.c.payload)).all()
    store.clock = lambda: NOW + timedelta(hours=2)
    assert _post(client, form).status_code == 200
    with services(app).engine.connect() as conn:
        assert conn.execute(sa.select(records.c.updated_at, records.c.payload)).all() == first
