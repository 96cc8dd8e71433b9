"""Group commit: checks that arrive together share one transaction.

A store commits only so many transactions a second (an SQLite WAL write, a
PostgreSQL WAL flush), and every check used to be one. Under load the
service's threads submit checks here; whichever thread finds no batch
running becomes the leader, takes everything queued (up to ``limit``
items), runs it as one batch and, when done, hands the lead to the oldest
thread still waiting. A thread alone runs its own check at once, so a quiet
service adds no wait; a busy one turns a queue of commits into one. A batch
that fails is run again job by job, so one caller's error is only theirs.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any


class Job:
    """One caller's work for a batch: its items, and what the batch made of them."""

    __slots__ = ("items", "then", "result", "error", "finished", "_wake")

    def __init__(self, items: list, then: Callable[..., Any] | None = None,
                 result: list | None = None):
        self.items = items
        self.then = then
        # One slot per item (by the item's ``index``), filled in by the batch.
        self.result: Any = result if result is not None else [None] * len(items)
        self.error: BaseException | None = None
        self.finished = False
        self._wake = threading.Event()

    def outcome(self) -> Any:
        """Return the job's result, or raise what failed it."""
        if self.error is not None:
            raise self.error
        return self.result


class Batcher:
    """Run jobs submitted by many threads in batches, one batch at a time per batcher."""

    def __init__(self, run: Callable[[list[Job]], None], limit: int = 256):
        self._run = run
        self.limit = limit
        self._lock = threading.Lock()
        self._queue: deque[Job] = deque()
        self._busy = False

    def submit(self, job: Job) -> Any:
        """Queue ``job``, wait until a batch has run it, and return its outcome."""
        with self._lock:
            self._queue.append(job)
            lead = not self._busy
            self._busy = True
        if not lead:
            job._wake.wait()
            if job.finished:
                return job.outcome()
            # Woken unfinished: the previous leader handed this thread the lead.
        self._lead()
        return job.outcome()

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

    def _lead(self) -> None:
        with self._lock:
            batch = [self._queue.popleft()]
            size = len(batch[0].items)
            while self._queue and size + len(self._queue[0].items) <= self.limit:
                size += len(self._queue[0].items)
                batch.append(self._queue.popleft())
        try:
            self._run_apart_on_failure(batch)
        except BaseException as exc:  # noqa: BLE001 - every waiter must hear of it
            for job in batch:
                if job.error is None:
                    job.error = exc
        finally:
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._busy = False
            for job in batch:
                job.finished = True
                job._wake.set()
            if successor is not None:
                successor._wake.set()
