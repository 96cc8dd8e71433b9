"""HTTP figure: ``POST /v1/check`` latency under gunicorn at a steady request rate."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.figure import Figure, NotMeasured, Target, percentile
from bench.population import attempts
from bench.serving import guard_server, upstream

FIGURES = {"http_check_p99_ms": ("ms", Target("<=", 10)),
           "http_check_p99_ms.postgresql": ("ms", Target("<=", 10))}
CLIENTS = 16
BACKENDS = {"http_check_p99_ms": "sqlite", "http_check_p99_ms.postgresql": "postgresql"}


def measure(size) -> list[Figure]:
    """Send checks at ``http_rate`` per second for ``http_seconds``; report the 99th percentile.

    The load is open-loop: request i is due at start + i / rate, and its
    latency counts from when it was due, so a slow server cannot hide its
    backlog by slowing the client down (no coordinated omission). The same
    load against a path that does not exist (a 404: no store, no decision)
    gives the floor that the client, gunicorn and HTTP add on these cores.
    """
    from policies import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    figures = []
    for name, backend in BACKENDS.items():
        try:
            figures.append(_measure(name, backend, size, policy))
        except NotMeasured as exc:
            figures.append(Figure(name, *FIGURES[name], reason=str(exc)))
    return figures


def _measure(name: str, backend: str, size, policy) -> Figure:
    people = size.store_people
    total = int(size.http_rate * size.http_seconds)
    bodies = list(attempts(total + 20, people, seed=31))
    with upstream() as upstream_url, \
            guard_server(people, upstream_url, policy, backend) as (url, key):
        local = threading.local()

        def session() -> requests.Session:
            if not hasattr(local, "session"):
                local.session = requests.Session()
                local.session.headers["Authorization"] = f"Bearer {key}"
            return local.session

        with ThreadPoolExecutor(CLIENTS) as pool:
            # Warm through the client threads that will measure: each opens its own
            # connection now, and those spread over both workers, so no worker's first
            # checks (compiling statements, opening store connections) and no connection's
            # set-up are measured. Warming from one thread reached one worker only.
            _warm(pool, lambda i: session().post(f"{url}/v1/check", json=bodies[i % 20],
                                                 timeout=10))
            ms, statuses, achieved = _load(pool, size, lambda i: session().post(
                f"{url}/v1/check", json=bodies[20 + i], timeout=10))
            floor, _, _ = _load(pool, size, lambda i: session().get(
                f"{url}/v1/no-such-path", timeout=10), share=4)
    if set(statuses) != {200}:
        raise NotMeasured(f"/v1/check answered {statuses}; expected only 200")
    return Figure(name, *FIGURES[name], value=round(percentile(ms, 99), 2),
                  params={"rate_per_s": size.http_rate, "seconds": size.http_seconds,
                          "requests": len(ms), "achieved_per_s": achieved,
                          "p50_ms": round(percentile(ms, 50), 2),
                          "p90_ms": round(percentile(ms, 90), 2),
                          "floor_404_p50_ms": round(percentile(floor, 50), 2),
                          "floor_404_p99_ms": round(percentile(floor, 99), 2),
                          "people": people, "store": backend, "commit": True,
                          "server": "gunicorn, 2 workers × 8 threads (the Procfile's)",
                          "client_threads": CLIENTS})


def _warm(pool: ThreadPoolExecutor, send, rounds: int = 3) -> None:
    """Have every thread of ``pool`` call ``send`` ``rounds`` times."""
    together = threading.Barrier(CLIENTS)

    def each(i: int) -> None:
        together.wait(30)  # holds each thread until all have a task: one task per thread
        for n in range(rounds):
            send(i * rounds + n)

    list(pool.map(each, range(CLIENTS)))


def _load(pool: ThreadPoolExecutor, size, send, share: int = 1
          ) -> tuple[list[float], dict[int, int], int]:
    """Call ``send(i)`` at the size's rate (``1/share`` of its duration); return latencies in ms."""
    total = int(size.http_rate * size.http_seconds / share)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start = time.perf_counter() + 0.05

    def one(i: int) -> None:
        due = start + i / size.http_rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        reply = send(i)
        done = time.perf_counter()
        with lock:
            latencies.append((done - due) * 1000)
            statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1

    list(pool.map(one, range(total)))
    elapsed = time.perf_counter() - start
    return latencies, statuses, round(total / elapsed)
