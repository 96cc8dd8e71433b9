"""Store figure: the service's check path (store read, decide, ledger write), no HTTP."""

from __future__ import annotations

import time

import sqlalchemy as sa

from bench.figure import Figure, NotMeasured, Target
from bench.loader import replicate, store, template_store
from bench.population import EPOCH, attempts

BACKENDS = ("sqlite", "postgresql")
FIGURES = {f"store_decisions_per_s.{b}": ("decisions/s", Target(">=", 5_000)) for b in BACKENDS}
WARM_UP = 50


def measure(size) -> list[Figure]:
    """Time committed checks through ``Guard.check`` on each backend."""
    from guard.service import Guard
    from policies import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    figures = []
    template = template_store(policy, size.store_template)
    for backend in BACKENDS:
        name = f"store_decisions_per_s.{backend}"
        try:
            with store(backend) as engine:
                replicate(template, engine, size.store_people)
                guard = Guard(engine, policy, clock=lambda: EPOCH)
                rate, params = checks_per_second(guard, size.store_people,
                                                 size.store_checks)
                params["commit_floor_per_s"] = commit_floor(engine, size.store_checks)
        except NotMeasured as exc:
            figures.append(Figure(name, *FIGURES[name], reason=str(exc)))
            continue
        figures.append(Figure(
            name, *FIGURES[name], value=round(rate), params={
                "backend": backend, "people": size.store_people, **params},
            note="commit_floor_per_s: one-row write transactions per second on the same "
                 "store, the ceiling for one committed check per transaction"))
    return figures


def checks_per_second(guard, people: int, count: int) -> tuple[float, dict]:
    """Run ``count`` committed checks after a warm-up; return checks/s and the parameters."""
    bodies = list(attempts(WARM_UP + count, people, seed=23))
    for body in bodies[:WARM_UP]:
        guard.check(body)
    start = time.perf_counter()
    for body in bodies[WARM_UP:]:
        guard.check(body)
    elapsed = time.perf_counter() - start
    return count / elapsed, {"checks": count, "commit": True,
                             "ms_per_check": round(elapsed / count * 1000, 3)}


def commit_floor(engine, count: int) -> int:
    """Return how many one-row write transactions per second the store commits."""
    from guard.db import settings

    with engine.begin() as conn:
        conn.execute(sa.insert(settings).values(name="bench", value="0"))
    start = time.perf_counter()
    for i in range(count):
        with engine.begin() as conn:
            conn.execute(sa.update(settings).where(settings.c.name == "bench")
                         .values(value=str(i)))
    return round(count / (time.perf_counter() - start))
