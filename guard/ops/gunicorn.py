"""Gunicorn settings for the guard's web processes (``gunicorn -c python:guard.ops.gunicorn``).

- Graceful shutdown: on SIGTERM gunicorn stops accepting, and each worker
  finishes the requests it holds (up to ``graceful_timeout`` seconds) before
  it exits; a send in flight is answered, not cut off.
- Logs: gunicorn's own lines are JSON, as the guard's are (``logconfig_dict``).
- Prometheus multi-process mode: with ``PROMETHEUS_MULTIPROC_DIR`` set, every
  worker writes its counters to files there and ``GET /metrics`` adds them up.
  The directory is emptied when gunicorn starts, so counters begin at zero
  with the server, as Prometheus expects of a restart.
"""

from __future__ import annotations

import os
from pathlib import Path

# Seconds a worker has on SIGTERM to finish its requests: a send retried with backoff
# (GUARD_FORWARD_ATTEMPTS, GUARD_FORWARD_WAIT_MAX) fits.
graceful_timeout = int(os.environ.get("GUARD_GRACEFUL_TIMEOUT", "30"))

# Gunicorn's own lines (workers booting, timing out, exiting) in the guard's format: one
# JSON object a line on stderr, so a log pipeline reads the web process with one parser.
logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": {"()": "guard.ops.logs.JsonFormatter"}},
    "handlers": {"stderr": {"class": "guard.ops.logs.StderrHandler", "formatter": "json"}},
    "loggers": {name: {"level": "INFO", "handlers": ["stderr"], "propagate": False}
                for name in ("gunicorn.error", "gunicorn.access")},
    # Gunicorn merges this over its defaults, whose root logger names a handler this
    # replaces; the guard's loggers have their own (guard.ops.logs.configure).
    "root": {"level": "WARNING", "handlers": []},
}


def on_starting(server) -> None:
    """Empty the metrics directory before the first worker writes to it."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for entry in path.glob("*.db"):
        entry.unlink()


def child_exit(server, worker) -> None:
    """Let the metrics of a worker that exited stop counting as live."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
