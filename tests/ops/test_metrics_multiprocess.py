"""Gunicorn with two workers and PROMETHEUS_MULTIPROC_DIR: either worker's /metrics counts both."""

from __future__ import annotations

import signal
import threading

import requests

from tests.proxy.upstream import Serving, Upstream

from .conftest import samples
from .test_shutdown import ADMIN, MAIL, gunicorn, store_url  # noqa: F401 - fixture

AUTH = {"Authorization": f"Bearer {ADMIN}"}
CHECK = {"channel": "email", "to": "frank@example.com", "purpose": "newsletter", "sender": "oem"}


def count(base: str, route: str) -> float:
    found = samples(requests.get(base + "/metrics", headers=AUTH, timeout=10).text)
    return found.get(("contact_guard_request_duration_seconds_count",
                      (("method", "POST"), ("route", route), ("status", "2xx"))), 0.0)


def test_two_workers_count_into_one_set_of_metrics(store_url, tmp_path):  # noqa: F811
    folder = tmp_path / "prometheus"
    folder.mkdir()
    (folder / "counter_1.db").write_bytes(b"left from a previous run")
    upstream = Upstream(hold_from=1)
    with Serving(upstream) as serving:
        web, base, log = gunicorn(store_url, serving.url, tmp_path, workers=2,
                                  threads=1, env={"PROMETHEUS_MULTIPROC_DIR": str(folder)})
        try:
            # One worker (one thread each: gunicorn's sync worker, which accepts nothing while it
            # works) holds a send at the provider; the other answers.
            sending = threading.Thread(target=lambda: requests.post(
                base + "/v3/mail/send", json=MAIL, headers=AUTH, timeout=60))
            sending.start()
            assert upstream.holding.wait(30), log.read_text()
            for _ in range(5):
                assert requests.post(base + "/v1/check", json=CHECK, headers=AUTH,
                                     timeout=30).status_code == 200
            upstream.release.set()
            sending.join(30)
            # Whichever worker answers the scrape, it reports both workers' requests.
            for _ in range(4):
                assert count(base, "/v1/check") == 5
                assert count(base, "/v3/mail/send") == 1
            pids = {path.stem.rsplit("_", 1)[-1] for path in folder.glob("*.db")}
            assert len(pids) >= 2 and "1" not in pids, sorted(folder.iterdir())
        finally:
            upstream.release.set()
            web.send_signal(signal.SIGTERM)
            web.wait(30)
