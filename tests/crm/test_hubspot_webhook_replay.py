"""HubSpot webhooks: a replay is stored once; headers and size are judged before the body."""

from __future__ import annotations

import io
import json
import time

import pytest

from connectors.hubspot import sign
from guard import create_app

from .test_hubspot import HOOK_URL, SECRET, deliver, hook, inbox


@pytest.fixture
def app(guard):
    return create_app({"GUARD": guard, "TESTING": True, "HUBSPOT_WEBHOOK_SECRET": SECRET,
                       "HUBSPOT_WEBHOOK_MAX_BYTES": 4096})


class Untouchable(io.RawIOBase):
    """A request body of ``size`` bytes that fails the test if anyone reads it."""

    read_from = False

    def __init__(self, size: int):
        super().__init__()
        self.size, self.position = size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self.position = self.size + offset if whence == io.SEEK_END else offset
        return self.position

    def tell(self) -> int:
        return self.position

    def readinto(self, buffer) -> int:
        type(self).read_from = True
        raise AssertionError("the body was read before the headers were judged")


def headers(body: bytes, *, age: float = 0.0) -> dict:
    stamp = str(int((time.time() - age) * 1000))
    return {"X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-v3": sign(SECRET, "POST", HOOK_URL, body, stamp)}


def test_a_signed_delivery_replayed_five_times_is_stored_once(app, engine):
    client = app.test_client()
    body = json.dumps([hook("contact.creation", 501)]).encode()
    signed = headers(body)

    answers = [client.post(HOOK_URL, data=body, content_type="application/json",
                           headers=signed).status_code for _ in range(6)]

    assert answers == [204] * 6
    assert len(inbox(engine)) == 1
    # A new delivery (HubSpot's own retry is signed anew) is stored.
    assert deliver(client, [hook("contact.creation", 502)]).status_code == 204
    assert len(inbox(engine)) == 2


@pytest.mark.parametrize("sent", [
    {},
    {"X-HubSpot-Signature-v3": "c2lnbmVk"},
    {"X-HubSpot-Signature-v3": "c2lnbmVk", "X-HubSpot-Request-Timestamp": "yesterday"},
    {"X-HubSpot-Signature-v3": "c2lnbmVk",
     "X-HubSpot-Request-Timestamp": str(int((time.time() - 600) * 1000))},
], ids=["no-headers", "no-timestamp", "bad-timestamp", "stale-timestamp"])
def test_a_delivery_without_fresh_signature_headers_is_refused_unread(app, engine, sent):
    Untouchable.read_from = False

    response = app.test_client().post(
        HOOK_URL, input_stream=Untouchable(60 * 1024 * 1024),
        content_type="application/json", headers=sent)

    assert response.status_code == 401
    assert "X-HubSpot-Signature-v3" in response.get_json()["detail"]
    assert Untouchable.read_from is False
    assert inbox(engine) == []


def test_a_delivery_over_the_size_limit_is_refused_unread(app, engine):
    Untouchable.read_from = False

    response = app.test_client().post(
        HOOK_URL, input_stream=Untouchable(4097),
        content_type="application/json", headers=headers(b"x" * 4097))

    assert response.status_code == 413
    assert response.mimetype == "application/problem+json"
    assert "GUARD_HUBSPOT_WEBHOOK_MAX_BYTES" in response.get_json()["detail"]
    assert Untouchable.read_from is False
    assert inbox(engine) == []


def test_a_chunked_delivery_is_read_no_further_than_the_limit(app, engine):
    body = json.dumps([hook("contact.creation", 501, note="n" * 5000)]).encode()

    # Chunked: no Content-Length, the server marks the end of the input instead.
    response = app.test_client().post(
        HOOK_URL, input_stream=io.BytesIO(body), headers=headers(body),
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": "", "wsgi.input_terminated": True})

    assert response.status_code == 413
    assert inbox(engine) == []
