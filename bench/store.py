"""Store figures: a committed check against a bare one-row write transaction on the same store.

Per backend, three shapes of committed checks, each taking turns, round by
round, with its floor in the same process layout on the same engine (same
database, same settings, same connection pool):
- serial: one caller, ``Guard.check`` in a loop (one transaction each) against
  one caller committing one-row write transactions;
- batched: ``Guard.check_many``, 100 attempts a transaction, against the same
  one-row transactions: the time per check when callers hand many at once;
- 2proc: two processes of eight threads each calling ``Guard.check`` at once
  (the Procfile's gunicorn workers without HTTP; concurrent checks of a process
  share transactions) against the same processes and threads each committing
  one-row write transactions.
The figure is the time per committed check ÷ the time per bare commit.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time

import sqlalchemy as sa

from bench.figure import Figure, NotMeasured, Spread, Target, ratio_figure, rounds, timed
from bench.loader import replicate, store, template_store
from bench.population import EPOCH, attempts

BACKENDS = ("sqlite", "postgresql")
PROCESSES = 2
THREADS = 8
BATCH = 100
SHAPES = ("", ".batched", f".{PROCESSES}proc")
TARGETS = {"sqlite": Target("<=", 2.5), "postgresql": Target("<=", 2)}
FIGURES = {f"store_commit_ratio.{b}{shape}": ("×", TARGETS[b])
           for b in BACKENDS for shape in SHAPES}
WARM_UP = 50
FLOOR = ("a bare one-row write transaction (update one settings row, commit) on the same "
         "engine, in the same process layout, taking turns with the checks round by round")


def measure(size) -> list[Figure]:
    """Time committed checks and bare commits on each backend, round by round."""
    from policies import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    figures = []
    template = template_store(policy, size.store_template)
    for backend in BACKENDS:
        names = [f"store_commit_ratio.{backend}{shape}" for shape in SHAPES]
        try:
            with store(backend) as engine:
                replicate(template, engine, size.store_people)
                url = engine.url.render_as_string(hide_password=False)
                figures.extend(_measure(engine, url, backend, names, policy, size))
        except NotMeasured as exc:
            figures.extend(Figure(name, *FIGURES[name], reason=str(exc)) for name in names)
    return figures


def _measure(engine, url: str, backend: str, names: list[str], policy, size) -> list[Figure]:
    count, people, n = size.store_checks, size.store_people, size.rounds
    guard = _guard(engine, policy)
    floor = BareCommits(engine)
    committed = Checks(guard, people, WARM_UP + 2 * n * count, seed=23)
    dry = Checks(guard, people, WARM_UP + n * count, seed=24, commit=False)
    for checks in (committed, dry):
        checks.run(WARM_UP)
    floor.run(WARM_UP)
    floor_s, check_s, dry_s = rounds([timed(lambda: floor.run(count)),
                                      timed(lambda: committed.run(count)),
                                      timed(lambda: dry.run(count))], n)
    floor_b, batch_s = rounds([timed(lambda: floor.run(count)),
                               timed(lambda: committed.run(count, batch=BATCH))], n)
    with Processes(url, people, count, n) as both:
        floor_p, parallel_s = rounds([lambda: both.run("floor"), lambda: both.run("check")], n)
    base = {"backend": backend, "people": people, "checks_per_round": count, "rounds": n,
            "commit": True}

    def us(times: list[float], per: int = count) -> Spread:
        return Spread.of([t / per * 1e6 for t in times], "µs per check", 1)

    def rate(times: list[float], per: int = count) -> Spread:
        return Spread.of([per / t for t in times], "per s", 0)

    def ratios(a: list[float], b: list[float]) -> list[float]:
        return [x / y for x, y in zip(a, b, strict=True)]

    total = PROCESSES * count
    return [
        ratio_figure(names[0], FIGURES[names[0]], ratios(check_s, floor_s), floor=FLOOR,
                     absolute={"checks_per_s": rate(check_s), "check_us": us(check_s),
                               "floor_commits_per_s": rate(floor_s), "floor_us": us(floor_s),
                               "dry_run_per_s": rate(dry_s), "dry_run_us": us(dry_s)},
                     params={**base, "shape": "one caller, one check per transaction"},
                     note="dry_run: the same checks with commit false (read, decide, record "
                          "the decision uncounted), in the same rounds"),
        ratio_figure(names[1], FIGURES[names[1]], ratios(batch_s, floor_b), floor=FLOOR,
                     absolute={"checks_per_s": rate(batch_s), "check_us": us(batch_s),
                               "floor_commits_per_s": rate(floor_b), "floor_us": us(floor_b)},
                     params={**base, "batch": BATCH,
                             "shape": f"Guard.check_many, {BATCH} attempts per transaction"}),
        ratio_figure(names[2], FIGURES[names[2]], ratios(parallel_s, floor_p), floor=FLOOR,
                     absolute={"checks_per_s": rate(parallel_s, total),
                               "floor_commits_per_s": rate(floor_p, total)},
                     params={**base, "processes": PROCESSES, "threads_per_process": THREADS,
                             "shape": f"{PROCESSES} processes × {THREADS} threads call "
                                      "Guard.check at once; total ÷ time from the common "
                                      "start to the last one's end"}),
    ]


def _guard(engine, policy):
    from guard.checks.service import Guard
    from guard.collector import freeze_start_up_heap

    guard = Guard(engine, policy, clock=lambda: EPOCH)
    freeze_start_up_heap()  # as create_app does in every served process
    return guard


class Checks:
    """A seeded stream of attempts, checked a slice at a time."""

    def __init__(self, guard, people: int, total: int, *, seed: int, commit: bool = True):
        self.guard, self.commit = guard, commit
        self.bodies = list(attempts(total, people, seed=seed))
        self.next = 0

    def take(self, count: int) -> list[dict]:
        if self.next + count > len(self.bodies):
            raise NotMeasured("ran out of seeded attempts")
        part = self.bodies[self.next:self.next + count]
        self.next += count
        return part

    def run(self, count: int, batch: int = 1) -> None:
        part = self.take(count)
        if batch == 1:
            for body in part:
                self.guard.check(body, commit=self.commit)
        else:
            for i in range(0, count, batch):
                self.guard.check_many(part[i:i + batch], commit=self.commit)


_ROWS = itertools.count()


class BareCommits:
    """One-row write transactions on an engine: each thread updates its own settings row."""

    def __init__(self, engine):
        from guard.store.tables import settings

        self.engine = engine
        self.update = sa.update(settings).where(settings.c.name == sa.bindparam("row"))
        self.insert = sa.insert(settings)
        self.local = threading.local()

    def run(self, count: int) -> None:
        row = getattr(self.local, "row", None)
        if row is None:
            row = self.local.row = f"bench-{os.getpid()}-{next(_ROWS)}"
            with self.engine.begin() as conn:
                conn.execute(self.insert.values(name=row, value="0"))
        for i in range(count):
            with self.engine.begin() as conn:
                conn.execute(self.update, {"row": row, "value": str(i)})


class Processes:
    """PROCESSES processes of THREADS threads, each told per round to check or to commit bare."""

    def __init__(self, url: str, people: int, count: int, rounds_: int):
        context = multiprocessing.get_context("spawn")
        self.ready = context.Barrier(PROCESSES + 1)
        self.ends = context.Queue()
        self.commands = [context.Queue() for _ in range(PROCESSES)]
        self.workers = [context.Process(target=_serve, args=(
            url, people, count, rounds_, 100 + p, self.commands[p], self.ready, self.ends))
            for p in range(PROCESSES)]

    def __enter__(self) -> Processes:
        for worker in self.workers:
            worker.start()
        try:
            self.ready.wait(timeout=300)  # every process imported, connected and warmed up
        except threading.BrokenBarrierError:
            self.__exit__()
            raise NotMeasured("a parallel checking process failed to start") from None
        return self

    def run(self, what: str) -> float:
        """Have every thread of every process do one round of ``what``; return the seconds."""
        for queue in self.commands:
            queue.put(what)
        try:
            self.ready.wait(timeout=300)
        except threading.BrokenBarrierError:
            raise NotMeasured("a parallel checking process failed") from None
        start = time.time()
        last = max(self.ends.get(timeout=600) for _ in self.workers)
        return last - start

    def __exit__(self, *exc) -> None:
        for queue in self.commands:
            queue.put(None)
        for worker in self.workers:
            worker.join(timeout=60)
            if worker.is_alive():
                worker.terminate()
        if any(worker.exitcode != 0 for worker in self.workers):
            raise NotMeasured("a parallel checking process failed")


def _serve(url: str, people: int, count: int, rounds_: int, seed: int, commands, ready,
           ends) -> None:
    from guard.store.engine import make_engine
    from policies import default_policy_path, load_policy

    engine = make_engine(url)
    guard = _guard(engine, load_policy(default_policy_path()))
    checks = Checks(guard, people, WARM_UP + rounds_ * count, seed=seed)
    checks.run(WARM_UP)
    floor = BareCommits(engine)
    ready.wait(timeout=300)
    while (what := commands.get()) is not None:
        if what == "check":
            part = checks.take(count)
            work = [(_check_all, (guard, part[t::THREADS])) for t in range(THREADS)]
        else:
            work = [(floor.run, (len(range(t, count, THREADS)),)) for t in range(THREADS)]
        threads = [threading.Thread(target=target, args=args) for target, args in work]
        ready.wait(timeout=300)
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        ends.put(time.time())
    engine.dispose()


def _check_all(guard, bodies: list[dict]) -> None:
    for body in bodies:
        guard.check(body)
