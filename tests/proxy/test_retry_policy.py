"""Forwarding: what is retried, what never is, and how Retry-After is honoured."""

from __future__ import annotations

import socket
import threading
from datetime import UTC, datetime

import pytest

from guard.proxy.transport import (
    FAILED,
    REJECTED,
    SENT,
    UNKNOWN,
    Forwarder,
    UpstreamRequest,
    parse_retry_after,
)


def make_forwarder(sleeps: list, **kwargs) -> Forwarder:
    return Forwarder(wait_initial=0.01, wait_max=0.05, sleep=sleeps.append, **kwargs)


def post(url: str) -> UpstreamRequest:
    return UpstreamRequest("POST", url + "/v3/mail/send",
                           {"Content-Type": "application/json"}, b'{"x": 1}')


@pytest.mark.parametrize(
    ("script", "state", "requests_made"),
    [
        ([], SENT, 1),
        ([(503, {}, b"")], SENT, 2),
        ([(500, {}, b""), (502, {}, b"")], SENT, 3),
        ([(429, {}, b"")], SENT, 2),
        ([(503, {}, b"")] * 3, FAILED, 3),
        ([(400, {}, {"errors": [{"message": "bad"}]})], REJECTED, 1),
        ([(401, {}, b"")], REJECTED, 1),
        ([(413, {}, b"")], REJECTED, 1),
    ],
    ids=["ok", "503-then-ok", "500-502-then-ok", "429-then-ok", "503-exhausted",
         "400-never-retried", "401-never-retried", "413-never-retried"],
)
def test_retries_only_429_and_5xx(upstream, script, state, requests_made):
    upstream.script.extend(script)
    outcome = make_forwarder([]).send(post(upstream.url))
    assert outcome.state == state
    assert len(upstream.received) == requests_made
    assert outcome.attempts == requests_made


def test_rejected_reply_is_handed_back_unchanged(upstream):
    upstream.script.append((400, {}, {"errors": [{"message": "bad from", "field": "from"}]}))
    outcome = make_forwarder([]).send(post(upstream.url))
    assert outcome.reply.status == 400
    assert b"bad from" in outcome.reply.body


def test_retry_after_seconds_is_waited_for(upstream):
    sleeps: list[float] = []
    upstream.script.append((429, {"Retry-After": "2"}, b""))
    outcome = make_forwarder(sleeps).send(post(upstream.url))
    assert outcome.state == SENT
    assert sleeps == [2.0]


def test_retry_after_beyond_the_limit_is_left_to_the_outbox(upstream):
    sleeps: list[float] = []
    upstream.script.append((503, {"Retry-After": "600"}, b""))
    outcome = make_forwarder(sleeps, retry_after_max=30).send(post(upstream.url))
    assert outcome.state == FAILED
    assert outcome.retry_after == 600
    assert sleeps == []
    assert len(upstream.received) == 1


def test_backoff_grows_between_tries(upstream):
    sleeps: list[float] = []
    upstream.script.extend([(503, {}, b"")] * 4)
    Forwarder(attempts=4, wait_initial=1, wait_max=100, sleep=sleeps.append).send(
        post(upstream.url))
    assert len(sleeps) == 3
    # Exponential: 1, 2, 4 plus up to 1 s of jitter each.
    assert [int(s) for s in sleeps] == [1, 2, 4]


def test_connection_refused_is_retried_then_failed():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    sleeps: list[float] = []
    outcome = make_forwarder(sleeps).send(post(f"http://127.0.0.1:{port}"))
    assert outcome.state == FAILED
    assert outcome.attempts == 3
    assert len(sleeps) == 2


def test_connection_dropped_after_sending_is_unknown_and_not_retried():
    """The provider may have acted on it: sending again could send twice."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    accepted = []

    def serve():
        conn, _ = server.accept()
        accepted.append(conn.recv(65536))
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        outcome = make_forwarder([]).send(post(url))
    finally:
        server.close()
        thread.join(2)
    assert outcome.state == UNKNOWN
    assert len(accepted) == 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("120", 120.0), ("Mon, 23 Nov 2026 10:01:00 GMT", 60.0), ("soon", None), (None, None)],
    ids=["seconds", "http-date", "garbage", "absent"],
)
def test_parse_retry_after(value, seconds):
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == seconds
