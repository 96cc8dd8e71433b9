"""Proxy figures: what the guard adds to a SendGrid send, against the same send straight upstream.

Both paths end at the same local SendGrid stand-in (``bench.upstream``) in the
same run: straight there, and through the guard under gunicorn (the
Procfile's two workers of eight threads), which checks the recipient, commits
the contact, records the send in the outbox and forwards it. Every send is
``transactional`` (it passes every rule), so every guarded send is forwarded
and pays the whole path; a blocked one would be cheaper.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.figure import Figure, NotMeasured, Target, percentile, side_by_side
from bench.population import email_of
from bench.serving import guard_server, upstream

FIGURES = {
    "proxy_added_p50_ms": ("ms", Target("<=", 3)),
    "proxy_throughput_ratio": ("×", Target(">=", 0.5)),
}
CLIENTS = 8
WARM_UP = 20


def mail(i: int) -> dict:
    """Return a one-recipient Mail Send body for person i, as a marketing tool sends it."""
    return {
        "personalizations": [{"to": [{"email": email_of(i), "name": f"Person {i}"}]}],
        "from": {"email": "news@oem.example", "name": "OEM"},
        "subject": "Your service appointment",
        "content": [{"type": "text/plain", "value": "Your car is booked in on Monday."}],
        "custom_args": {"guard_purpose": "transactional", "guard_sender": "oem"},
    }


def measure(size) -> list[Figure]:
    """Time sends through the guard and straight upstream, one by one and concurrently."""
    from policies import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    people = size.store_people
    sends = size.proxy_sends
    with upstream() as upstream_url, guard_server(people, upstream_url, policy) as (url, key):
        guarded = _Client(f"{url}/v3/mail/send", key)
        direct = _Client(f"{upstream_url}/v3/mail/send", "SG.bench")
        counter = iter(range(10**9))

        def next_person() -> int:
            # Each send goes to the next person, so no one reaches a cap.
            return next(counter) % people

        for _ in range(WARM_UP):
            guarded.send(mail(next_person()))
            direct.send(mail(0))
        # One by one, alternating, so both paths see the same machine load.
        through_ms, straight_ms = [], []
        for _ in range(sends):
            body = mail(next_person())
            through_ms.append(guarded.send(body) * 1000)
            straight_ms.append(direct.send(body) * 1000)
        # Concurrent: CLIENTS threads send a block each way, alternately, size.rounds times.
        block = max(CLIENTS * 10, sends // 2)

        def burst(client: _Client, fixed: bool) -> Callable[[], None]:
            def go() -> None:
                bodies = [mail(0 if fixed else next_person()) for _ in range(block)]
                with ThreadPoolExecutor(CLIENTS) as pool:
                    list(pool.map(client.send, bodies))
            return go

        through_s, straight_s, slowdown = side_by_side(burst(guarded, False),
                                                       burst(direct, True), size.rounds)
    statuses = {**guarded.statuses}
    if set(statuses) != {202}:
        raise NotMeasured(f"/v3/mail/send through the guard answered {statuses}; expected 202")
    if guarded.held:
        raise NotMeasured(f"{guarded.held} sends were not forwarded (blocked or deferred)")
    added = percentile(through_ms, 50) - percentile(straight_ms, 50)
    params = {"sends": sends, "people": people, "store": "sqlite", "purpose": "transactional",
              "server": "gunicorn, 2 workers × 8 threads (the Procfile's)",
              "upstream": "bench.upstream (http.server, threaded)"}
    return [
        Figure("proxy_added_p50_ms", *FIGURES["proxy_added_p50_ms"], value=round(added, 2),
               params={**params,
                       "through_p50_ms": round(percentile(through_ms, 50), 2),
                       "through_p99_ms": round(percentile(through_ms, 99), 2),
                       "straight_p50_ms": round(percentile(straight_ms, 50), 2),
                       "straight_p99_ms": round(percentile(straight_ms, 99), 2)},
               note="one send at a time, guarded and straight alternately; p50 through the "
                    "guard minus p50 straight"),
        Figure("proxy_throughput_ratio", *FIGURES["proxy_throughput_ratio"],
               value=round(1 / slowdown, 3),
               params={**params, "client_threads": CLIENTS, "sends_per_round": block,
                       "rounds": size.rounds,
                       "through_per_s": round(block / through_s),
                       "straight_per_s": round(block / straight_s)},
               note="sends/s through the guard ÷ straight, median of per-round ratios; the "
                    "clients share the machine's cores with the guard and the upstream"),
    ]


class _Client:
    """A SendGrid client on one session per thread; counts statuses and held recipients."""

    def __init__(self, url: str, key: str):
        self.url, self.key = url, key
        self.local = threading.local()
        self.lock = threading.Lock()
        self.statuses: dict[int, int] = {}
        self.held = 0

    def send(self, body: dict) -> float:
        """POST one Mail Send; return its latency in seconds."""
        if not hasattr(self.local, "session"):
            self.local.session = requests.Session()
            self.local.session.headers["Authorization"] = f"Bearer {self.key}"
        start = time.perf_counter()
        reply = self.local.session.post(self.url, json=body, timeout=10)
        elapsed = time.perf_counter() - start
        held = sum(int(reply.headers.get(f"X-Guard-{h}", 0))
                   for h in ("Blocked", "Deferred", "Rerouted"))
        with self.lock:
            self.statuses[reply.status_code] = self.statuses.get(reply.status_code, 0) + 1
            self.held += held
        return elapsed
