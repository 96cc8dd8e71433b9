"""Store figures: the service's check path (store read, decide, ledger write), no HTTP.

Per backend, three shapes of committed checks in the same run:
- one caller, one check per transaction (``Guard.check`` in a loop): the
  latency-bound floor, with the same checks as dry runs beside it and the
  store's one-row commit floor, which caps it;
- batches (``Guard.check_many``, 100 attempts a transaction): what a
  100-recipient Mail Send, a committed screen or a busy service pays per check;
- the service's shape: two processes of eight threads each calling
  ``Guard.check`` at once (the Procfile's gunicorn workers without HTTP), whose
  concurrent checks share transactions (group commit).
"""

from __future__ import annotations

import multiprocessing
import threading
import time

import sqlalchemy as sa

from bench.figure import Figure, NotMeasured, Target
from bench.loader import replicate, store, template_store
from bench.population import EPOCH, attempts

BACKENDS = ("sqlite", "postgresql")
PROCESSES = 2
THREADS = 8
BATCH = 100
FIGURES = {
    **{f"store_decisions_per_s.{b}{shape}": ("decisions/s", Target(">=", 5_000))
       for b in BACKENDS for shape in ("", ".batched", f".{PROCESSES}proc")},
}
WARM_UP = 50
NOTE = ("commit_floor_per_s: one-row write transactions per second on the same store, serially, "
        "the ceiling for one committed check per transaction; dry_run_per_s: the same checks "
        "with commit false (read, decide, record the decision uncounted), in the same run")


def measure(size) -> list[Figure]:
    """Time committed and dry-run checks through ``Guard.check`` on each backend."""
    from policies import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    figures = []
    template = template_store(policy, size.store_template)
    for backend in BACKENDS:
        name = f"store_decisions_per_s.{backend}"
        parallel = f"{name}.{PROCESSES}proc"
        batched = f"{name}.batched"
        try:
            with store(backend) as engine:
                replicate(template, engine, size.store_people)
                guard = _guard(engine, policy)
                rate, params = checks_per_second(guard, size.store_people, size.store_checks)
                dry_rate, _ = checks_per_second(guard, size.store_people, size.store_checks,
                                                commit=False, seed=24)
                params.update(dry_run_per_s=round(dry_rate),
                              committed_to_dry_time=round(dry_rate / rate, 2),
                              commit_floor_per_s=commit_floor(engine, size.store_checks))
                in_batches = batched_per_second(guard, size.store_people, size.store_checks)
                url = engine.url.render_as_string(hide_password=False)
                both = parallel_checks(url, size.store_people, size.store_checks)
        except NotMeasured as exc:
            for figure in (name, batched, parallel):
                figures.append(Figure(figure, *FIGURES[figure], reason=str(exc)))
            continue
        figures.append(Figure(
            name, *FIGURES[name], value=round(rate), params={
                "backend": backend, "people": size.store_people, **params}, note=NOTE))
        figures.append(Figure(
            batched, *FIGURES[batched], value=round(in_batches), params={
                "backend": backend, "people": size.store_people, "checks": size.store_checks,
                "batch": BATCH, "commit": True, "serial_per_s": round(rate)},
            note=f"Guard.check_many with {BATCH} attempts per transaction, one caller"))
        figures.append(Figure(
            parallel, *FIGURES[parallel], value=round(both), params={
                "backend": backend, "people": size.store_people, "processes": PROCESSES,
                "threads_per_process": THREADS, "checks_per_process": size.store_checks,
                "commit": True, "serial_per_s": round(rate)},
            note=f"{PROCESSES} processes × {THREADS} threads call Guard.check at once on the "
                 "same store (concurrent checks of a process share a transaction); total checks "
                 "÷ time from the common start to the last one's end"))
    return figures


def _guard(engine, policy):
    from guard.checks.service import Guard
    from guard.collector import freeze_start_up_heap

    guard = Guard(engine, policy, clock=lambda: EPOCH)
    freeze_start_up_heap()  # as create_app does in every served process
    return guard


def checks_per_second(guard, people: int, count: int, *, commit: bool = True,
                      seed: int = 23) -> tuple[float, dict]:
    """Run ``count`` checks after a warm-up; return checks/s and the parameters."""
    bodies = list(attempts(WARM_UP + count, people, seed=seed))
    for body in bodies[:WARM_UP]:
        guard.check(body, commit=commit)
    start = time.perf_counter()
    for body in bodies[WARM_UP:]:
        guard.check(body, commit=commit)
    elapsed = time.perf_counter() - start
    return count / elapsed, {"checks": count, "commit": commit,
                             "ms_per_check": round(elapsed / count * 1000, 3)}


def batched_per_second(guard, people: int, count: int, seed: int = 25) -> float:
    """Run ``count`` committed checks in batches of BATCH after a warm-up; return checks/s."""
    bodies = list(attempts(BATCH + count, people, seed=seed))
    guard.check_many(bodies[:BATCH])
    start = time.perf_counter()
    for i in range(BATCH, BATCH + count, BATCH):
        guard.check_many(bodies[i:i + BATCH])
    return count / (time.perf_counter() - start)


def parallel_checks(url: str, people: int, count: int) -> float:
    """Run ``count`` committed checks in each of PROCESSES processes at once; return checks/s."""
    context = multiprocessing.get_context("spawn")
    warm = context.Barrier(PROCESSES + 1)
    ends = context.Queue()
    workers = [context.Process(target=_check_from_process,
                               args=(url, people, count, 100 + p, warm, ends))
               for p in range(PROCESSES)]
    for worker in workers:
        worker.start()
    try:
        warm.wait(timeout=300)  # every process imported, connected and warmed up
        start = time.time()
        last = max(ends.get(timeout=600) for _ in workers)
    finally:
        for worker in workers:
            worker.join(timeout=60)
    if any(worker.exitcode != 0 for worker in workers):
        raise NotMeasured("a parallel checking process failed")
    return PROCESSES * count / (last - start)


def _check_from_process(url: str, people: int, count: int, seed: int, warm, ends) -> None:
    from guard.store.engine import make_engine
    from policies import default_policy_path, load_policy

    engine = make_engine(url)
    guard = _guard(engine, load_policy(default_policy_path()))
    bodies = list(attempts(WARM_UP + count, people, seed=seed))
    for body in bodies[:WARM_UP]:
        guard.check(body)
    threads = [threading.Thread(target=_check_all, args=(guard, bodies[WARM_UP + t::THREADS]))
               for t in range(THREADS)]
    warm.wait(timeout=300)
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ends.put(time.time())
    engine.dispose()


def _check_all(guard, bodies: list[dict]) -> None:
    for body in bodies:
        guard.check(body)


def commit_floor(engine, count: int) -> int:
    """Return how many one-row write transactions per second the store commits."""
    from guard.store.tables import settings

    with engine.begin() as conn:
        conn.execute(sa.insert(settings).values(name="bench", value="0"))
    update = sa.update(settings).where(settings.c.name == "bench")
    start = time.perf_counter()
    for i in range(count):
        with engine.begin() as conn:
            conn.execute(update, {"value": str(i)})
    return round(count / (time.perf_counter() - start))
