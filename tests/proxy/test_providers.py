"""One conformance test for every provider: SendGrid and Twilio keep the same promises.

A provider is found by the name an outbox row carries, builds its request
from the row's payload as the guard's own account, and reads its reply into
what the caller is told. The last test takes each through the outbox: a
held row, released by the worker, reaches the provider as that request.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from guard import worker
from guard.proxy.idempotency import Answer
from guard.proxy.outbox import Item
from guard.proxy.providers import PROVIDERS, SENDGRID, TWILIO, Provider, provider
from guard.proxy.settings import ProxySettings
from guard.proxy.transport import FAILED, REJECTED, SENT, UNKNOWN, Outcome, Reply
from guard.services import services

from .conftest import GUARD_SID

PHONE = "+491701234567"
CONF = ProxySettings(sendgrid_url="https://sendgrid.test", sendgrid_api_key="SG.guard",
                     twilio_url="https://twilio.test", twilio_account_sid=GUARD_SID,
                     twilio_auth_token="guard-token")


@dataclass(frozen=True)
class Case:
    """One provider, a payload as its outbox rows hold it, and what its wire looks like."""

    provider: Provider
    resource: str
    payload: dict
    check: dict
    base_url: str
    path: str
    credentials: str
    accepted: Reply
    ours: Answer
    # Reads a request body back into the payload it was built from.
    decode: Callable[[bytes], Any]


CASES = [
    Case(SENDGRID, "mail",
         {"personalizations": [{"to": [{"email": "anna@example.com"}]}],
          "from": {"email": "offers@oem.example"}, "subject": "Grüße",
          "content": [{"type": "text/plain", "value": "Hello & welcome"}]},
         {"channel": "email", "to": "anna@example.com"},
         CONF.sendgrid_url, "/v3/mail/send", "Bearer SG.guard",
         Reply(202, {"X-Message-Id": "m1"}, b""),
         Answer(202, {"X-Guard-Decisions": "dec_1", "X-Guard-Blocked": "0"}, "", None),
         json.loads),
    Case(TWILIO, "Messages",
         {"form": urlencode({"To": PHONE, "From": "+4930123456", "Body": "Grüße & more"})},
         {"channel": "sms", "to": PHONE},
         CONF.twilio_url, f"/2010-04-01/Accounts/{GUARD_SID}/Messages.json",
         "Basic " + base64.b64encode(f"{GUARD_SID}:guard-token".encode()).decode(),
         Reply(201, {"Content-Type": "application/json"}, b'{"sid": "SM1", "status": "queued"}'),
         Answer(201, {"X-Guard-Decisions": "dec_1", "X-Guard-Verdict": "allow",
                      "X-Guard-Outbox": "out_1"}, '{"sid": "SMguard", "status": "queued"}'),
         lambda body: {"form": urlencode(parse_qsl(body.decode(), keep_blank_values=True))}),
]
IDS = [case.provider.name for case in CASES]
parametrized = pytest.mark.parametrize("case", CASES, ids=IDS)


def test_every_provider_is_covered():
    assert {case.provider.name for case in CASES} == set(PROVIDERS)


@parametrized
def test_a_provider_is_found_by_the_name_its_outbox_rows_carry(case):
    assert provider(case.provider.name) is case.provider


def test_an_unknown_provider_name_is_refused():
    with pytest.raises(ValueError, match="unknown provider 'fax'"):
        provider("fax")


@parametrized
def test_the_request_goes_to_the_configured_url_as_the_guards_account(case):
    request = case.provider.request(case.resource, case.payload, CONF)
    assert request.method == "POST"
    assert request.url == case.base_url + case.path
    assert request.headers["Authorization"] == case.credentials


@parametrized
def test_the_request_carries_the_payload_and_nothing_else(case):
    request = case.provider.request(case.resource, case.payload, CONF)
    assert case.decode(request.body) == case.payload
    assert request.body == case.provider.request(case.resource, case.payload, CONF).body


@parametrized
def test_a_refusal_reaches_the_caller_as_the_provider_gave_it(case):
    refusal = Reply(400, {"Content-Type": "text/plain"}, "bad To: ü".encode())
    told = case.provider.answer(Outcome(REJECTED, refusal, attempts=1), case.ours)
    assert (told.status, told.body, told.content_type) == (400, "bad To: ü", "text/plain")
    assert "X-Guard-Outbox" not in told.headers


@parametrized
def test_an_accepted_send_answers_with_the_guards_decisions_and_no_outbox_row(case):
    told = case.provider.answer(Outcome(SENT, case.accepted, attempts=1), case.ours)
    assert told.status == case.accepted.status
    assert told.headers["X-Guard-Decisions"] == "dec_1"
    assert "X-Guard-Outbox" not in told.headers


@pytest.mark.parametrize("outcome", [
    Outcome(FAILED, Reply(503, {}, b"busy"), error="upstream answered 503", attempts=3),
    Outcome(FAILED, error="could not send: refused", attempts=3),
    Outcome(UNKNOWN, error="no answer after sending", attempts=1),
], ids=["503", "never-left", "no-answer"])
@parametrized
def test_a_send_the_provider_did_not_take_keeps_the_guards_answer(case, outcome):
    # The outbox owns the send now; the guard's answer says so.
    assert case.provider.answer(outcome, case.ours) is case.ours


@parametrized
def test_a_held_row_released_by_the_worker_reaches_the_provider_as_its_request(
        case, app, upstream):
    services(app).outbox.hold(Item(
        case.provider.name, case.resource, case.payload, f"held-{case.provider.name}",
        recipients=[case.check["to"]], checks=[case.check],
        defaults={"sender": "oem", "purpose": "promotion"}, needs_check=True))
    assert worker.release_due(app) == {"sent": 1}
    expected = case.provider.request(case.resource, case.payload, services(app).proxy)
    [got] = upstream.received
    assert (got.method, got.path) == (expected.method, urlsplit(expected.url).path)
    assert got.body == expected.body
    assert {name: got.headers[name] for name in expected.headers} == dict(expected.headers)
