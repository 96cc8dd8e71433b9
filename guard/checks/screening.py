"""Screen a long list with several processes, answering in the list's order.

Deciding is CPU work in Python, so one process uses one core however many
the machine has. ``screen_in_processes`` hands chunks of the list to worker
processes (each with its own Guard on the same store) and yields their
outcomes in the order of the list, keeping only a few chunks in flight so
memory stays flat however long the list is.
"""

from __future__ import annotations

import multiprocessing
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from guard import collector
from guard.errors import GuardError

CHUNK = 5_000
# Chunks in flight per worker: enough that none waits for work, few enough for memory.
AHEAD = 2


# One screened row: verdict, rules joined with ";", decision id, error, field in error.
Row = tuple[str, str, str, str, str | None]

_worker: dict[str, Any] = {}


def outcome_row(outcome: Any) -> Row:
    """Flatten a decision, or the error a recipient got, into a screened row."""
    if isinstance(outcome, GuardError):
        return "", "", "", outcome.detail, outcome.field
    return outcome.verdict, ";".join(outcome.rules), outcome.decision_id or "", "", None


def screen_rows(guard, attempt: Mapping, recipients: Iterable[Any], commit: bool
                ) -> Iterator[Row]:
    """Screen ``recipients`` in this process, yielding one row per recipient in order."""
    for _, outcome in guard.screen(attempt, recipients, commit=commit):
        yield outcome_row(outcome)


def screen_in_processes(chunks: Iterable[list[Any]], attempt: Mapping, commit: bool,
                        workers: int, config: Mapping | None = None) -> Iterator[list[Row]]:
    """Screen each chunk in a pool of ``workers`` processes; yield their rows in chunk order."""
    context = multiprocessing.get_context("spawn")  # no engine or lock state is inherited
    with context.Pool(workers, initializer=_start_worker,
                      initargs=(dict(attempt), commit, dict(config or {}))) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append(pool.apply_async(_screen_chunk, (chunk,)))
            while len(pending) >= workers * AHEAD:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def _start_worker(attempt: dict, commit: bool, config: dict) -> None:
    from guard import create_app
    from guard.services import services

    config.setdefault("WARN_MISSING_PROVIDERS", False)
    _worker.update(guard=services(create_app(config)).guard, attempt=attempt,
                   commit=commit)
    # A worker only screens: it keeps the raised threshold for its life.
    collector.collect_rarely_from_now()


def _screen_chunk(recipients: list[Any]) -> list[Row]:
    return list(screen_rows(_worker["guard"], _worker["attempt"], recipients,
                            _worker["commit"]))
