"""SIGTERM: a gunicorn web process answers the request it holds, a worker settles its send."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from guard.store.engine import make_engine
from guard.store.migrate import upgrade
from tests.proxy.test_crash import due_messages, settle, start_worker
from tests.proxy.upstream import Serving, Upstream

BIN = Path(sys.executable).parent
ADMIN = "a" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(base: str, process: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text()
        try:
            if requests.get(base + "/readyz", timeout=5).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass  # still booting (or a loaded machine): ask again
        time.sleep(0.1)
    raise AssertionError(f"not ready in {timeout}s: {log.read_text()}")


def gunicorn(url: str, upstream_url: str, tmp_path: Path, *, workers: int = 1,
             threads: int = 4, env: dict | None = None) -> tuple[subprocess.Popen, str, Path]:
    """Start the Procfile's web process on a free loopback port; return it, its URL, its log."""
    port = free_port()
    environ = {**os.environ, "GUARD_DATABASE_URL": url, "GUARD_ADMIN_KEY": ADMIN,
               "GUARD_SENDGRID_URL": upstream_url, "GUARD_SENDGRID_API_KEY": "SG.guard",
               **(env or {})}
    log = tmp_path / f"web-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BIN / "gunicorn"), "-c", "python:guard.ops.gunicorn", "--bind",
             f"127.0.0.1:{port}", "--workers", str(workers), "--threads", str(threads),
             "guard:create_app()"], env=environ, cwd=tmp_path, stdout=out,
            stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, process, log)
    except BaseException:
        process.kill()
        process.wait(10)
        raise
    return process, base, log


def wait_for(condition, log: Path, timeout: float = 30) -> None:
    """Wait until ``condition()`` holds; fail with the log after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)


@pytest.fixture
def store_url(db_url):
    engine = make_engine(db_url)
    upgrade(engine)
    engine.dispose()
    return db_url


MAIL = {"personalizations": [{"to": [{"email": "eve@example.com"}]}],
        "from": {"email": "service@oem.example"}, "subject": "Your car is ready",
        "content": [{"type": "text/plain", "value": "Pick it up today."}],
        "custom_args": {"guard_purpose": "transactional", "guard_sender": "service"}}


def test_sigterm_lets_the_web_process_answer_the_send_it_holds(store_url, tmp_path):
    upstream = Upstream(hold_from=1)
    with Serving(upstream) as serving:
        web, base, log = gunicorn(store_url, serving.url, tmp_path)
        answers: list = []
        sending = threading.Thread(target=lambda: answers.append(requests.post(
            base + "/v3/mail/send", json=MAIL, headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=60)))
        try:
            sending.start()
            assert upstream.holding.wait(30), log.read_text()
            web.send_signal(signal.SIGTERM)
            wait_for(lambda: "Handling signal: term" in log.read_text(), log)
            # The master has told its worker to stop, and the send is still held.
            assert web.poll() is None, log.read_text()
            upstream.release.set()
            sending.join(30)
            assert web.wait(30) == 0, log.read_text()
        finally:
            upstream.release.set()
            if web.poll() is None:
                web.kill()
                web.wait(10)
    [answer] = answers
    assert answer.status_code == 202, answer.text
    assert len(upstream.received) == 1
    assert settle(store_url, timeout=5) == {"sent": 1}


def test_sigterm_lets_a_worker_finish_the_send_in_hand(store_url, tmp_path):
    due_messages(store_url, 3)
    upstream = Upstream(hold_from=2)
    with Serving(upstream) as serving:
        worker = start_worker(store_url, serving.url, tmp_path)
        try:
            assert upstream.holding.wait(60), worker.log.read_text()
            worker.send_signal(signal.SIGTERM)
            time.sleep(0.5)  # time for the signal to land; the assertions below hold later too
            upstream.release.set()
            assert worker.wait(30) == 0, worker.log.read_text()
        finally:
            upstream.release.set()
            if worker.poll() is None:
                worker.kill()
                worker.wait(10)
    # The send the provider held was answered and recorded as sent, not left for a human,
    # and the worker stopped after it (on a machine so loaded that the signal landed only
    # after the answer, after the next one); nothing went twice.
    sent = len(upstream.received)
    assert sent in (2, 3)
    counts = settle(store_url, timeout=0.1)
    assert counts == ({"sent": 2, "held": 1} if sent == 2 else {"sent": 3})
