"""A worker whose store is restarting or out of reach waits for it instead of exiting."""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa

from guard import create_app, worker
from guard.checks.service import Guard


class StopAfter(logging.Handler):
    """Collect the worker's warnings; stop it after ``count`` of them."""

    def __init__(self, stop: threading.Event, count: int):
        super().__init__(logging.WARNING)
        self.stop, self.count, self.messages = stop, count, []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())
        if len(self.messages) >= self.count:
            self.stop.set()


def test_a_worker_cycle_without_its_store_logs_and_goes_on(policy):
    unreachable = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    app = create_app({"GUARD": Guard(unreachable, policy), "TESTING": True})
    stop = threading.Event()
    seen = StopAfter(stop, 3)
    logger = logging.getLogger("guard.worker")
    logger.addHandler(seen)
    finished = threading.Event()

    def cycle() -> None:
        worker.run(app, interval=0.01, stop=stop)
        finished.set()

    running = threading.Thread(target=cycle, daemon=True)
    try:
        running.start()
        # Three cycles in a row met no store, and the worker was still there for a fourth.
        assert finished.wait(60), seen.messages
    finally:
        stop.set()
        logger.removeHandler(seen)
        unreachable.dispose()
    assert len(seen.messages) >= 3
    assert all(m.startswith("store unavailable") for m in seen.messages), seen.messages
