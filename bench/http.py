"""HTTP figures: ``POST /v1/check`` latency under gunicorn against a minimal route of the same app.

The floor is ``POST /bench/minimal`` (bench/app.py): the same app, gunicorn
settings (the Procfile's two workers of eight threads), connections and load
generator, but no key look-up, store or decision. First the minimal route's
own maximum rate on this machine is found (closed loop, every client thread
sending as fast as it can); then both routes take turns, round by round, at
half that rate, so the load scales with the machine. The figure is the
check's p99 ÷ the minimal route's p99 in the same round (the median of the
rounds); the p50 ratio and every absolute latency ride along.

The load is open-loop: request i is due at start + i / rate, and its
latency counts from when it was due, so a slow server cannot hide its
backlog by slowing the client down (no coordinated omission).
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from bench.app import MINIMAL
from bench.figure import Figure, NotMeasured, Spread, Target, percentile, ratio_figure, rounds
from bench.population import attempts
from bench.serving import guard_server, upstream

FIGURES = {"http_check_p99_ratio": ("×", Target("<=", 3)),
           "http_check_p99_ratio.postgresql": ("×", Target("<=", 3))}
CLIENTS = 16
SHARE = 0.5  # of the minimal route's maximum rate, the rate both routes are measured at
BACKENDS = {"http_check_p99_ratio": "sqlite", "http_check_p99_ratio.postgresql": "postgresql"}


def measure(size) -> list[Figure]:
    """Measure each backend's check against the minimal route, at half the latter's maximum."""
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
    with upstream() as upstream_url, \
            guard_server(people, upstream_url, policy, backend) as (url, key):
        local = threading.local()

        def session() -> requests.Session:
            if not hasattr(local, "session"):
                local.session = requests.Session()
                local.session.headers["Authorization"] = f"Bearer {key}"
            return local.session

        bodies = attempts(10**7, people, seed=31)
        lock = threading.Lock()

        def check(_i: int) -> requests.Response:
            with lock:
                body = next(bodies)
            return session().post(f"{url}/v1/check", json=body, timeout=10)

        minimal_body = {"to": "person1@example.com", "channel": "email", "purpose": "newsletter"}

        def minimal(_i: int) -> requests.Response:
            return session().post(url + MINIMAL, json=minimal_body, timeout=10)

        with ThreadPoolExecutor(CLIENTS) as pool:
            # Warm through the client threads that will measure: each opens its own
            # connection now, and those spread over both workers, so no worker's first
            # checks (compiling statements, opening store connections) and no connection's
            # set-up are measured.
            _warm(pool, check)
            _warm(pool, minimal)
            top = _max_rate(pool, minimal, size.http_probe_seconds)
            rate = max(1, round(top * SHARE))
            floor, guarded = rounds([lambda: _load(pool, rate, size.http_seconds, minimal),
                                     lambda: _load(pool, rate, size.http_seconds, check)],
                                    size.rounds)
    for (_, statuses, _), route in [*((r, MINIMAL) for r in floor),
                                    *((r, "/v1/check") for r in guarded)]:
        if set(statuses) != {200}:
            raise NotMeasured(f"{route} answered {statuses}; expected only 200")

    def ms(results: list, p: float) -> list[float]:
        return [percentile(r[0], p) for r in results]

    def spread(values: list[float]) -> Spread:
        return Spread.of(values, "ms", 2)

    p99, p99_floor = ms(guarded, 99), ms(floor, 99)
    p50, p50_floor = ms(guarded, 50), ms(floor, 50)
    return ratio_figure(
        name, FIGURES[name], [a / b for a, b in zip(p99, p99_floor, strict=True)],
        floor=f"POST {MINIMAL} on the same app, server and client, at the same rate, "
              "taking turns with /v1/check round by round",
        absolute={"p99_ms": spread(p99), "p50_ms": spread(p50),
                  "floor_p99_ms": spread(p99_floor), "floor_p50_ms": spread(p50_floor),
                  "p50_ratio": Spread.of([a / b for a, b in zip(p50, p50_floor, strict=True)]),
                  "achieved_per_s": Spread.of([r[2] for r in guarded], "per s", 0)},
        params={"rate_per_s": rate, "floor_max_per_s": round(top), "share_of_max": SHARE,
                "seconds_per_round": size.http_seconds, "rounds": size.rounds,
                "people": people, "store": backend, "commit": True,
                "server": "gunicorn, 2 workers × 8 threads (the Procfile's)",
                "client_threads": CLIENTS})


def _warm(pool: ThreadPoolExecutor, send, rounds_: int = 3) -> None:
    """Have every thread of ``pool`` call ``send`` ``rounds_`` times."""
    together = threading.Barrier(CLIENTS)

    def each(i: int) -> None:
        together.wait(30)  # holds each thread until all have a task: one task per thread
        for n in range(rounds_):
            send(i * rounds_ + n)

    list(pool.map(each, range(CLIENTS)))


def _max_rate(pool: ThreadPoolExecutor, send, seconds: float) -> float:
    """Return the requests/s every thread of ``pool`` achieves sending back to back."""
    deadline = time.perf_counter() + seconds
    counts = [0] * CLIENTS

    def each(i: int) -> None:
        while time.perf_counter() < deadline:
            send(i)
            counts[i] += 1

    start = time.perf_counter()
    list(pool.map(each, range(CLIENTS)))
    return sum(counts) / (time.perf_counter() - start)


def _load(pool: ThreadPoolExecutor, rate: int, seconds: float, send
          ) -> tuple[list[float], dict[int, int], float]:
    """Call ``send(i)`` at ``rate`` per second for ``seconds``; return latencies in ms."""
    total = max(1, int(rate * seconds))
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    start = time.perf_counter() + 0.05

    def one(i: int) -> None:
        due = start + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        reply = send(i)
        done = time.perf_counter()
        with lock:
            latencies.append((done - due) * 1000)
            statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1

    list(pool.map(one, range(total)))
    return latencies, statuses, total / (time.perf_counter() - start)
