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

from bench.figure import (
    Figure,
    NotMeasured,
    Spread,
    Target,
    percentile,
    ratio_figure,
    rounds,
    timed,
)
from bench.population import email_of
from bench.serving import guard_server, upstream

FIGURES = {
    "proxy_added_p50_ratio": ("×", Target("<=", 1.5)),
    "proxy_throughput_ratio": ("×", Target(">=", 0.8)),
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

        def one_by_one() -> tuple[float, float]:
            # Alternating send by send, so both paths see the same machine load.
            through_ms, straight_ms = [], []
            for _ in range(sends):
                body = mail(next_person())
                through_ms.append(guarded.send(body) * 1000)
                straight_ms.append(direct.send(body) * 1000)
            return percentile(through_ms, 50), percentile(straight_ms, 50)

        # Concurrent: CLIENTS threads send a block each way.
        block = max(CLIENTS * 10, sends)

        def burst(client: _Client, fixed: bool) -> Callable[[], float]:
            def go() -> None:
                bodies = [mail(0 if fixed else next_person()) for _ in range(block)]
                with ThreadPoolExecutor(CLIENTS) as pool:
                    list(pool.map(client.send, bodies))
            return timed(go)

        p50s, through_s, straight_s = rounds(
            [one_by_one, burst(guarded, False), burst(direct, True)], size.rounds)
    statuses = {**guarded.statuses}
    if set(statuses) != {202}:
        raise NotMeasured(f"/v3/mail/send through the guard answered {statuses}; expected 202")
    if guarded.held:
        raise NotMeasured(f"{guarded.held} sends were not forwarded (blocked or deferred)")
    params = {"sends_per_round": sends, "rounds": size.rounds, "people": people,
              "store": "sqlite", "purpose": "transactional",
              "server": "gunicorn, 2 workers × 8 threads (the Procfile's)",
              "upstream": "bench.upstream (http.server, threaded)"}
    through, straight = [p[0] for p in p50s], [p[1] for p in p50s]
    return [
        ratio_figure(
            "proxy_added_p50_ratio", FIGURES["proxy_added_p50_ratio"],
            [(t - s) / s for t, s in p50s],
            floor="the same send straight to the upstream, alternating send by send",
            absolute={"added_p50_ms": Spread.of([t - s for t, s in p50s], "ms", 2),
                      "through_p50_ms": Spread.of(through, "ms", 2),
                      "straight_p50_ms": Spread.of(straight, "ms", 2)},
            params=params,
            note="one send at a time: (p50 through the guard − p50 straight) ÷ p50 straight"),
        ratio_figure(
            "proxy_throughput_ratio", FIGURES["proxy_throughput_ratio"],
            [s / t for t, s in zip(through_s, straight_s, strict=True)],
            floor=f"the same block of sends straight to the upstream from {CLIENTS} client "
                  "threads, taking turns round by round",
            absolute={"through_per_s": Spread.of([block / t for t in through_s], "per s", 0),
                      "straight_per_s": Spread.of([block / t for t in straight_s], "per s", 0)},
            params={**params, "client_threads": CLIENTS, "burst_sends": block},
            note="sends/s through the guard ÷ straight; the clients share the machine's cores "
                 "with the guard and the upstream"),
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
