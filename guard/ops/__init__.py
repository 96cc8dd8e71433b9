"""Running the guard in production: readiness, structured logs, metrics.

    readiness.py  GET /readyz: the store reachable and migrated, the policy loaded
    logs.py       one JSON line per request, send and sync; personal data masked
    metrics.py    GET /metrics: Prometheus counters, histograms and store gauges
    observe.py    the hooks other rooms call (a send, a sync run)
    describe.py   /readyz and /metrics in the OpenAPI document
    gunicorn.py   gunicorn settings: graceful shutdown, Prometheus multi-process mode
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register /readyz, the request log and, unless ``METRICS`` is off, /metrics."""
    from guard.ops import describe, logs, metrics, readiness

    describe.describe()
    logs.init_app(app)
    readiness.init_app(app)
    metrics.init_app(app)
