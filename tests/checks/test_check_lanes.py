"""Batches in several lanes: a free lane runs a check at once, and caps stay exact."""

from __future__ import annotations

import gc
import threading
import time
from collections import Counter

import pytest

from guard import create_app
from guard.checks.batching import Batcher, Job
from guard.services import services

NEWSLETTER = {"channel": "email", "purpose": "newsletter", "sender": "oem"}


def _wait_for(condition) -> None:
    deadline = time.monotonic() + 5
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.001)


def test_a_job_that_finds_a_lane_free_runs_beside_the_running_batch():
    release = threading.Event()
    batches: list[list[str]] = []

    def run(jobs):
        batches.append([job.items[0] for job in jobs])
        if jobs[0].items[0] == "a":
            release.wait(5)
        for job in jobs:
            job.result = job.items[0].upper()

    batcher = Batcher(run, lanes=2)
    answers = {}

    def submit(name):
        answers[name] = batcher.submit(Job([name]))

    first = threading.Thread(target=submit, args=("a",))
    first.start()
    _wait_for(lambda: batches)
    second = threading.Thread(target=submit, args=("b",))
    second.start()
    second.join(5)
    # "b" did not wait for "a": the second lane ran it while "a" still runs.
    assert answers == {"b": "B"} and batches == [["a"], ["b"]]
    # A lane is free again, so "c" runs at once too; with "a" held, "d" and "e" wait...
    blocker = threading.Event()

    def run_blocking(jobs):
        run(jobs)
        if jobs[0].items[0] == "c":
            blocker.wait(5)

    batcher._run = run_blocking
    third = threading.Thread(target=submit, args=("c",))
    third.start()
    _wait_for(lambda: len(batches) == 3)
    later = [threading.Thread(target=submit, args=(n,)) for n in "de"]
    for t in later:
        t.start()
    _wait_for(lambda: len(batcher._queue) == 2)
    assert len(batches) == 3
    # ...and share one batch when a lane frees.
    release.set()
    for t in [first, *later]:
        t.join(5)
    blocker.set()
    third.join(5)
    assert sorted(batches[3]) == ["d", "e"] and len(batches) == 4
    assert answers == {"a": "A", "b": "B", "c": "C", "d": "D", "e": "E"}


def test_every_job_is_answered_once_with_at_most_lanes_batches_at_a_time():
    lanes = 3
    lock = threading.Lock()
    running = 0
    most = 0
    seen: Counter[int] = Counter()

    def run(jobs):
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.001)
        for job in jobs:
            seen.update(job.items)
            job.result = [item * 2 for item in job.items]
        with lock:
            running -= 1

    batcher = Batcher(run, limit=7, lanes=lanes)
    answers: dict[int, list[int]] = {}

    def caller(base: int) -> None:
        for n in range(25):
            number = base * 100 + n
            answers[number] = batcher.submit(Job([number]))

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert answers == {n: [2 * n] for n in answers} and len(answers) == 300
    assert set(seen.values()) == {1} and len(seen) == 300
    assert 1 <= most <= lanes
    assert batcher._running == 0 and not batcher._queue


def test_a_batcher_needs_a_lane():
    with pytest.raises(ValueError, match="lanes"):
        Batcher(lambda jobs: None, lanes=0)


def test_the_app_takes_its_start_up_heap_out_of_the_collectors_reach(db_url):
    app = create_app({"DATABASE_URL": db_url, "TESTING": True})
    services(app).engine.dispose()  # its SQLite writer lock file closes with it
    assert gc.get_freeze_count() > 0
