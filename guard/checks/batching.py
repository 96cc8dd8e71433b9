"""Group commit: checks that arrive together share one transaction.

A store commits only so many transactions a second (an SQLite WAL write, a
PostgreSQL WAL flush), so checks do not each take one. Under load the
service's threads submit checks here. Up to ``lanes`` batches run at once;
a thread that finds a lane free runs its own check at once (so a quiet
service adds no wait), and threads that find every lane busy queue. When a
batch is done, its leader takes everything queued (up to ``limit`` items)
as the next batch and hands it to the oldest thread in it, so a busy
service turns a queue of commits into one. One lane suits a store with one
writer at a time (SQLite); a store that runs transactions side by side
(PostgreSQL) can overlap their round trips in several. A batch that fails
is run again job by job, so one caller's error is only theirs.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class Job:
    """One caller's work for a batch: its items, and what the batch made of them."""

    __slots__ = ("items", "then", "result", "error", "finished", "_wake", "_batch")

    def __init__(self, items: list, then: Callable[..., Any] | None = None,
                 result: list | None = None):
        self.items = items
        self.then = then
        # One slot per item (by the item's ``index``), filled in by the batch.
        self.result: Any = result if result is not None else [None] * len(items)
        self.error: BaseException | None = None
        self.finished = False
        self._wake = threading.Event()
        # The batch this job's thread is handed to run, when it is handed the lead.
        self._batch: list[Job] | None = None

    def outcome(self) -> Any:
        """Return the job's result, or raise what failed it."""
        if self.error is not None:
            raise self.error
        return self.result


class Batcher:
    """Run jobs submitted by many threads in batches, at most ``lanes`` batches at a time."""

    def __init__(self, run: Callable[[list[Job]], None], limit: int = 256, lanes: int = 1):
        if lanes < 1:
            raise ValueError(f"lanes must be at least 1, got {lanes}")
        self._run = run
        self.limit = limit
        self.lanes = lanes
        self._lock = threading.Lock()
        # Jobs waiting for a lane. Invariant: only while every lane is busy, because a
        # lane is given up only when nothing waits.
        self._queue: deque[Job] = deque()
        self._running = 0

    def submit(self, job: Job) -> Any:
        """Queue ``job``, wait until a batch has run it, and return its outcome."""
        with self._lock:
            if self._running < self.lanes:
                self._running += 1
                batch = [job]
            else:
                self._queue.append(job)
                batch = None
        if batch is None:
            job._wake.wait()
            if job.finished:
                return job.outcome()
            # Woken unfinished: a leader that finished handed this thread the next batch.
            batch = job._batch
            job._batch = None
        self._lead(batch)
        return job.outcome()

    def _take(self) -> list[Job]:
        """Take the oldest queued jobs, up to ``limit`` items (called holding the lock)."""
        batch = [self._queue.popleft()]
        size = len(batch[0].items)
        while self._queue and size + len(self._queue[0].items) <= self.limit:
            size += len(self._queue[0].items)
            batch.append(self._queue.popleft())
        return batch

    def _run_apart_on_failure(self, batch: list[Job]) -> None:
        """Run the batch; if it fails, run each job alone, so one's failure is not all's."""
        try:
            self._run(batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].error = exc
                return
            for job in batch:
                try:
                    self._run([job])
                except Exception as alone:  # noqa: BLE001 - handed to that job's caller
                    job.error = alone

    def _lead(self, batch: list[Job]) -> None:
        try:
            self._run_apart_on_failure(batch)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            for job in batch:
                if job.error is None:
                    job.error = exc
        finally:
            with self._lock:
                # Taken here, under the lock, so two finishing leaders never hand on
                # the same jobs; the lane passes to the next batch's oldest thread.
                following = self._take() if self._queue else None
                if following is None:
                    self._running -= 1
            for job in batch:
                job.finished = True
                job._wake.set()
            if following is not None:
                following[0]._batch = following
                following[0]._wake.set()
