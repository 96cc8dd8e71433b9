"""A worker whose store is restarting or out of reach waits for it instead of exiting."""

from __future__ import annotations

import logging
import threading

import sqlalchemy as sa

from guard import create_app, worker
from guard.checks.service import Guard


def test_a_worker_cycle_without_its_store_logs_and_goes_on(policy, caplog):
    unreachable = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    app = create_app({"GUARD": Guard(unreachable, policy), "TESTING": True})
    stop, cycles = threading.Event(), []

    def report(counts) -> None:
        cycles.append(counts)

    timer = threading.Timer(1.5, stop.set)
    try:
        timer.start()
        with caplog.at_level(logging.WARNING, logger="guard.worker"):
            worker.run(app, interval=0.2, stop=stop, report=report)
    finally:
        timer.cancel()
        unreachable.dispose()
    warnings = [r.getMessage() for r in caplog.records if r.name == "guard.worker"]
    assert len(warnings) >= 2, warnings  # it kept cycling
    assert all(w.startswith("store unavailable") for w in warnings)
