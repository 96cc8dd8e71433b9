"""Real ``guard worker`` processes: killed mid-batch, restarted, or two at once; nothing twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from guard.proxy.outbox import Item, Outbox
from guard.store.engine import make_engine
from guard.store.migrate import upgrade

from .upstream import Upstream

GUARD = str(Path(sys.executable).parent / "guard")


@pytest.fixture
def store_url(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()
    return db_url


def due_messages(url: str, count: int) -> list[str]:
    """Hold ``count`` deferred mails whose time has come; return their recipients."""
    engine = make_engine(url)
    box = Outbox(engine)
    recipients = [f"person{n:03d}@example.com" for n in range(count)]
    for n, to in enumerate(recipients):
        box.hold(Item(
            "sendgrid", "mail",
            {"personalizations": [{"to": [{"email": to}]}], "from": {"email": "o@oem.example"},
             "subject": "Your invoice", "content": [{"type": "text/plain", "value": "Hi"}]},
            f"message-{n}", recipients=[to],
            checks=[{"channel": "email", "to": to, "purpose": "transactional"}],
            defaults={"sender": "oem"}, not_before=box.clock() - timedelta(minutes=1),
            needs_check=True))
    engine.dispose()
    return recipients


def start_worker(url: str, upstream_url: str, tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "GUARD_DATABASE_URL": url, "GUARD_SENDGRID_URL": upstream_url,
           "GUARD_SENDGRID_API_KEY": "SG.guard", "GUARD_OUTBOX_LEASE_SECONDS": "1",
           "GUARD_OUTBOX_RETRY_SECONDS": "0", "GUARD_FORWARD_WAIT": "0.01"}
    log = tmp_path / f"worker-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        process = subprocess.Popen([GUARD, "worker", "--interval", "0.1"], env=env,
                                   cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT)
    process.log = log
    return process


def settle(url: str, *, timeout: float = 60) -> dict:
    """Wait until no row is held, claimed or sending; return the counts per status."""
    engine = make_engine(url)
    box = Outbox(engine)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            counts = box.counts()
            if not {"held", "claimed", "sending"} & set(counts):
                return counts
            time.sleep(0.1)
        return box.counts()
    finally:
        engine.dispose()


def stop(process: subprocess.Popen) -> str:
    """Stop a worker as a supervisor would (SIGTERM) and return its output."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    return process.log.read_text()


def delivered(upstream: Upstream) -> Counter:
    """Count, per recipient, the sends the provider received and did not refuse."""
    return Counter(r.json()["personalizations"][0]["to"][0]["email"] for r in upstream.received
                   if r.answered is None or r.answered < 300)


def test_worker_killed_mid_batch_and_restarted_delivers_each_message_once(
        store_url, upstream, tmp_path):
    recipients = due_messages(store_url, 12)
    upstream.hold_from = 5  # the 5th send hangs at the provider: kill the worker then
    first = start_worker(store_url, upstream.url, tmp_path)
    try:
        assert upstream.holding.wait(60), first.log.read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(30)
        upstream.hold_from = None
        upstream.release.set()
    in_flight = upstream.received[4].json()["personalizations"][0]["to"][0]["email"]

    second = start_worker(store_url, upstream.url, tmp_path)
    try:
        counts = settle(store_url)
    finally:
        errors = stop(second)

    # Every message reached the provider exactly once, the one in flight at the kill included.
    assert delivered(upstream) == Counter(recipients), errors
    # The one the provider had when the worker died was not resent: a human confirms it.
    assert counts == {"sent": 11, "unknown": 1}, errors
    engine = make_engine(store_url)
    [unknown] = Outbox(engine).rows("unknown")
    engine.dispose()
    assert unknown["recipients"] == [in_flight]


def test_503_then_202_from_a_worker_process_is_delivered_once(store_url, upstream, tmp_path):
    [to] = due_messages(store_url, 1)
    upstream.script.append((503, {}, b""))
    worker = start_worker(store_url, upstream.url, tmp_path)
    try:
        counts = settle(store_url)
    finally:
        errors = stop(worker)
    assert counts == {"sent": 1}, errors
    assert delivered(upstream) == Counter([to])
    assert len(upstream.received) == 2


def test_two_workers_on_one_outbox_send_nothing_twice(store_url, upstream, tmp_path):
    recipients = due_messages(store_url, 30)
    upstream.delay = 0.02  # long enough for the two workers to interleave
    workers = [start_worker(store_url, upstream.url, tmp_path) for _ in range(2)]
    try:
        counts = settle(store_url)
    finally:
        errors = [stop(w) for w in workers]
    assert counts == {"sent": 30}, errors
    assert delivered(upstream) == Counter(recipients)
