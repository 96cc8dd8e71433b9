"""One conformance test for every way a send leaves the guard: SendGrid, Twilio, outbox release.

Whatever the path, the provider sees each message at most once, retries
happen only where they are safe, and nothing the provider failed to take is
lost: it stays in the outbox until the worker delivers it.
"""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from guard import worker
from guard.proxy.outbox import Item
from guard.services import services

from .test_twilio import MESSAGES, basic


def via_sendgrid(app, token):
    response = app.test_client().post(
        "/v3/mail/send", headers={"Authorization": f"Bearer {token}"},
        json={"personalizations": [{"to": [{"email": "anna@example.com"}]}],
              "from": {"email": "offers@oem.example"}, "subject": "Hi",
              "content": [{"type": "text/plain", "value": "Hello"}]})
    return response.status_code


def via_twilio(app, token):
    response = app.test_client().post(
        MESSAGES, data=urlencode({"To": "+491701234567", "From": "+4930123456", "Body": "Hi"}),
        headers={**basic(token), "Content-Type": "application/x-www-form-urlencoded"})
    return response.status_code


def via_outbox(app, token):
    """A deferred mail whose time has come, released by the worker."""
    services(app).outbox.hold(Item(
        "sendgrid", "mail",
        {"personalizations": [{"to": [{"email": "anna@example.com"}]}],
         "from": {"email": "offers@oem.example"}, "subject": "Hi",
         "content": [{"type": "text/plain", "value": "Hello"}]},
        "key-" + token[-8:], recipients=["anna@example.com"],
        checks=[{"channel": "email", "to": "anna@example.com"}],
        defaults={"sender": "oem", "purpose": "promotion"}, needs_check=True))
    worker.release_due(app)
    return None


def via_outbox_sms(app, token):
    """A deferred SMS whose time has come, released by the worker."""
    services(app).outbox.hold(Item(
        "twilio", "Messages",
        {"form": urlencode({"To": "+491701234567", "From": "+4930123456", "Body": "Hi"})},
        "key-" + token[-8:], recipients=["+491701234567"],
        checks=[{"channel": "sms", "to": "+491701234567"}],
        defaults={"sender": "oem", "purpose": "promotion"}, needs_check=True))
    worker.release_due(app)
    return None


TRANSPORTS = [via_sendgrid, via_twilio, via_outbox, via_outbox_sms]
IDS = ["sendgrid", "twilio", "outbox", "outbox-sms"]


def statuses(app) -> dict:
    return services(app).outbox.counts()


@pytest.mark.parametrize("transport", TRANSPORTS, ids=IDS)
def test_delivers_once(app, token, upstream, transport):
    transport(app, token)
    assert len(upstream.received) == 1
    assert statuses(app) == {"sent": 1}


@pytest.mark.parametrize("transport", TRANSPORTS, ids=IDS)
def test_503_then_success_is_delivered_once(app, token, upstream, transport):
    upstream.script.append((503, {}, b""))
    transport(app, token)
    assert len(upstream.received) == 2
    assert statuses(app) == {"sent": 1}
    worker.release_due(app)
    assert len(upstream.received) == 2


@pytest.mark.parametrize("transport", TRANSPORTS, ids=IDS)
def test_a_4xx_is_never_retried(app, token, upstream, transport):
    upstream.script.append((400, {}, {"errors": [{"message": "bad"}]}))
    transport(app, token)
    worker.release_due(app)
    assert len(upstream.received) == 1
    assert statuses(app) == {"rejected": 1}


@pytest.mark.parametrize("transport", TRANSPORTS, ids=IDS)
def test_failure_after_all_retries_stays_and_is_delivered_later(app, token, upstream,
                                                                 transport):
    upstream.script.extend([(503, {"Retry-After": "0"}, b"")] * 3 + [(429, {}, b"")] * 3)
    status = transport(app, token)
    assert status in (None, 201, 202)  # the caller is told the guard owns the send now
    assert statuses(app) == {"held": 1}
    worker.release_due(app)  # the second round of tries also fails: still held, not dropped
    assert statuses(app) == {"held": 1}
    worker.release_due(app)
    assert statuses(app) == {"sent": 1}
    assert len(upstream.received) == 7
    bodies = {r.body for r in upstream.received}
    assert len(bodies) == 1  # the same message each time


@pytest.mark.parametrize("transport", TRANSPORTS, ids=IDS)
def test_the_providers_credentials_are_the_guards(app, token, upstream, transport):
    transport(app, token)
    [got] = upstream.received
    assert token not in json.dumps(got.headers)
    assert "guard-own" in got.headers["Authorization"] or got.headers[
        "Authorization"].startswith("Basic ")
