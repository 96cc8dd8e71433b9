"""The hooks other rooms call: one log line and the counters for a send and for a sync run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from time import perf_counter
from typing import Any

from guard.ops import metrics

sends = logging.getLogger("guard.sends")
syncs = logging.getLogger("guard.syncs")


def sent(claim: Any, outcome: Any, status: str, started: float) -> None:
    """Log and count one outbox send (``started``: its ``perf_counter()`` before the send)."""
    seconds = perf_counter() - started
    metrics.observe_forward(claim.provider, outcome.state, seconds)
    reply = getattr(outcome, "reply", None)
    fields = {"event": "send", "outbox_id": claim.id, "provider": claim.provider,
              "resource": claim.resource, "outcome": outcome.state, "status": status,
              "upstream_status": getattr(reply, "status", None), "attempts": outcome.attempts,
              "duration_ms": round(seconds * 1000, 2), "decision_ids": list(claim.decision_ids),
              "error": outcome.error}
    level = logging.INFO if outcome.state == "sent" else logging.WARNING
    sends.log(level, "outbox %s %s: %s", claim.id, claim.provider, status,
              extra={"fields": fields})


class SyncRun:
    """What one sync run found, filled in by the run."""

    def __init__(self, crm: str):
        self.crm = crm
        self.records = 0
        self.rejected = 0
        self.result = "ok"
        self.error: str | None = None
        self.seconds = 0.0

    def finished(self, summary: Any, rejected: list) -> None:
        self.records = sum(getattr(summary, "counts", {}).values())
        self.rejected = len(rejected)


@contextmanager
def sync_run(crm: str) -> Iterator[SyncRun]:
    """Log and count the sync run inside: its records, rejections, error and time."""
    run, started = SyncRun(crm), perf_counter()
    try:
        yield run
    except Exception as exc:
        run.result, run.error = "error", f"{exc.__class__.__name__}: {exc}"
        raise
    finally:
        run.seconds = perf_counter() - started
        metrics.observe_sync(crm, run.result, run.records, run.rejected)
        fields = {"event": "sync", "crm": crm, "result": run.result, "records": run.records,
                  "rejected": run.rejected, "duration_ms": round(run.seconds * 1000, 2),
                  "error": run.error}
        # A failed run's error is logged by whoever handles it (the worker's CRM job); this
        # line is the run's record.
        syncs.log(logging.INFO if run.error is None else logging.WARNING, "%s sync %s", crm,
                  run.result, extra={"fields": fields})
