"""Structured logs: every line one JSON object; one line per request, send and sync run.

E-mail addresses and phone numbers are masked in every line (message,
fields, tracebacks) unless ``LOG_PERSONAL_DATA`` is set for debugging: logs
travel to places the right to erasure does not reach. The level comes from
``LOG_LEVEL``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import uuid
from datetime import UTC, datetime
from time import perf_counter
from typing import Any

from flask import Flask, Response, g, request

log = logging.getLogger("guard.requests")

# The loggers whose lines the guard writes as JSON: its own and its connectors'.
LOGGERS = ("guard", "connectors")
EMAIL = re.compile(r"[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
# E.164 and spaced international numbers, and national numbers with a leading 0; dates
# (2026-11-23) and ids do not start that way.
PHONE = re.compile(r"(?<![\w])(?:\+|00)\d[\d \-().]{5,18}\d|(?<![\w.])0\d[\d \-/]{6,14}\d(?![\w])")
# A caller's X-Request-Id is echoed and logged only when it is this tame.
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_MAX_BODY_TO_READ = 64 * 1024


# Fields whose values the guard makes itself (ids, route templates, states, counts): never
# personal data, so not scanned.
SAFE_FIELDS = frozenset({
    "event", "method", "route", "status", "duration_ms", "key_id",
    "decision_ids", "outbox_id", "provider", "resource", "outcome", "upstream_status",
    "attempts", "crm", "result", "records", "rejected"})


def mask(text: str) -> str:
    """Replace e-mail addresses and phone numbers in ``text``."""
    return PHONE.sub("[phone]", EMAIL.sub("[email]", text))


def _masked(value: Any) -> Any:
    """Mask a field's value: text as text, anything else as its JSON text."""
    if isinstance(value, str):
        return mask(value)
    return json.loads(mask(json.dumps(value, default=str, ensure_ascii=False)))


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON line: time, level, logger, message and its ``fields``."""

    def __init__(self, personal_data: bool = False):
        super().__init__()
        self.personal_data = personal_data

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        fields = getattr(record, "fields", None) or {}
        if not self.personal_data:
            line["msg"] = mask(line["msg"])
            if "exc" in line:
                line["exc"] = mask(line["exc"])
            # Fields the guard fills with ids, names of routes and numbers are left as they
            # are; any other (an error text, a caller's value) is masked.
            fields = {k: v if k in SAFE_FIELDS or isinstance(v, int | float | None)
                      else _masked(v) for k, v in fields.items()}
        line.update(fields)
        return json.dumps(line, default=str, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):
    """Write to whatever ``sys.stderr`` is at the time (a test's capture, gunicorn's)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def configure(level: str = "INFO", personal_data: bool = False) -> None:
    """Send the guard's loggers to stderr as JSON at ``level`` (once per process)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        for handler in [h for h in logger.handlers if isinstance(h, StderrHandler)]:
            logger.removeHandler(handler)
        handler = StderrHandler()
        handler.setFormatter(JsonFormatter(personal_data))
        logger.addHandler(handler)
        logger.setLevel(level)


def request_id() -> str:
    """Return the caller's X-Request-Id when it is tame, else a new one."""
    given = request.headers.get("X-Request-Id", "")
    return given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def _start() -> None:
    g.ops_started = perf_counter()
    g.request_id = request_id()


def _finish(response: Response) -> Response:
    started = g.pop("ops_started", None)
    if started is None:
        return response
    seconds = perf_counter() - started
    response.headers["X-Request-Id"] = g.request_id
    route = request.url_rule.rule if request.url_rule is not None else "<unmatched>"
    key = g.get("api_key")
    fields = {
        "event": "request", "request_id": g.request_id, "method": request.method,
        "route": route, "status": response.status_code,
        # Of a streamed answer (a screen), the time to its first byte.
        "duration_ms": round(seconds * 1000, 2),
        "key_id": key.id if key is not None else None,
        "decision_ids": decision_ids(response),
    }
    log.info("%s %s %d", request.method, route, response.status_code, extra={"fields": fields})
    from guard.ops import metrics

    metrics.observe_request(route, request.method, response.status_code, seconds)
    return response


def decision_ids(response: Response) -> list[str]:
    """Read the decisions an answer names: the proxy's header, or a check's JSON body."""
    header = response.headers.get("X-Guard-Decisions")
    if header:
        return [i.strip() for i in header.split(",") if i.strip()]
    if response.is_streamed or not response.is_json:
        return []
    if (response.content_length or 0) > _MAX_BODY_TO_READ:
        return []
    body = response.get_json(silent=True)
    found = body.get("decision_id") if isinstance(body, dict) else None
    return [found] if isinstance(found, str) else []


def init_app(app: Flask) -> None:
    """Log as JSON at ``LOG_LEVEL``; log every request and echo its X-Request-Id."""
    configure(app.config["LOG_LEVEL"], bool(app.config["LOG_PERSONAL_DATA"]))
    app.before_request(_start)
    app.after_request(_finish)
