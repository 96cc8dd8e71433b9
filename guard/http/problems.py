"""Render every error as ``application/problem+json`` (RFC 9457) with a detail naming the field.

Our own errors (``guard.errors``), Werkzeug's HTTP errors (404, 405, 413,
415 …), marshmallow validation errors and store outages each get a problem
document; anything else is a 500 with a generic detail, logged with its
traceback. Bad input must never reach the last case.

A path with a control character (``/v1/decisions/x%00%0A…``) is a 404
before any view runs: no id, name or route holds one, PostgreSQL text cannot
hold a NUL, and request fields written to the log are escaped
(``loggable``), so a request cannot forge a log line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, json, request
from marshmallow import ValidationError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from guard.errors import GuardError

MEDIA_TYPE = "application/problem+json"


def problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    """Build a problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    body.update({k: v for k, v in extra.items() if v is not None})
    response = current_app.response_class(
        json.dumps(body) + "\n", status=status, mimetype=MEDIA_TYPE
    )
    if status == 401:
        # RFC 9110: a 401 names the scheme it wants; Twilio clients use Basic.
        response.headers["WWW-Authenticate"] = 'Bearer realm="guard", Basic realm="guard"'
    return response


def flatten(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn marshmallow's nested messages into ``{"field.path": [messages]}``."""
    out: dict[str, list[str]] = {}
    if isinstance(messages, Mapping):
        for key, value in messages.items():
            name = prefix if key == "_schema" else f"{prefix}.{key}" if prefix else str(key)
            for path, texts in flatten(value, name).items():
                out.setdefault(path, []).extend(texts)
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        out[prefix or "body"] = list(messages)
    elif isinstance(messages, list):
        for item in messages:
            for path, texts in flatten(item, prefix).items():
                out.setdefault(path, []).extend(texts)
    else:
        out[prefix or "body"] = [str(messages)]
    return out


def validation_problem(exc: ValidationError) -> Response:
    """Answer a marshmallow error: the first field in ``detail``, all in ``errors``."""
    errors = flatten(exc.messages)
    field, texts = next(iter(errors.items()))
    return problem(400, "Bad Request", f"{field}: {' '.join(texts)}", field=field, errors=errors)


def _guard_error(exc: GuardError) -> Response:
    extra = {k: v for k, v in exc.to_problem().items() if k not in ("type", "title", "status",
                                                                      "detail")}
    return problem(exc.status, exc.title, exc.detail, **extra)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 404:
        detail = f"path: no endpoint at {request.path}"
    elif status == 405:
        allowed = ", ".join(sorted(m for m in (exc.valid_methods or ()) if m != "OPTIONS"))
        detail = f"method: {request.method} is not allowed on {request.path} (allowed: {allowed})"
    elif status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        detail = f"body: larger than the limit of {limit} bytes"
    else:
        detail = exc.description or exc.name
    response = problem(status, exc.name, detail)
    for name, value in exc.get_headers():
        if name.lower() == "allow":
            response.headers["Allow"] = value
    return response


# C0 and C1 control characters (NUL, CR, LF, ESC …).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# What must not reach a log line as it is: control characters and Unicode line separators.
_UNSAFE_IN_LOGS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def loggable(text: str) -> str:
    """Escape control characters and line separators so a logged value stays on its line."""
    return _UNSAFE_IN_LOGS.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"),
                               text)


def refuse_control_characters() -> Response | None:
    """Answer a path holding a control character with a 404, before the view or store."""
    if _CONTROL.search(request.path):
        return problem(404, "Not Found",
                       "path: contains a control character (such as NUL or a line break); "
                       "no resource has one")
    return None


def _store_error(exc: SQLAlchemyError) -> Response:
    current_app.logger.exception("store error on %s %s", loggable(request.method),
                                 loggable(request.path))
    return problem(
        503, "Service Unavailable",
        "store: unavailable or not migrated (run `guard db upgrade`); see /healthz",
    )


def _unexpected(exc: Exception) -> Response:
    current_app.logger.exception("unexpected error on %s %s", loggable(request.method),
                                 loggable(request.path))
    return problem(500, "Internal Server Error", "server: unexpected error; it has been logged")


def init_app(app: Flask) -> None:
    """Register the problem+json handlers, and the refusal of control characters in paths."""
    app.before_request(refuse_control_characters)
    app.register_error_handler(GuardError, _guard_error)
    app.register_error_handler(ValidationError, validation_problem)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(SQLAlchemyError, _store_error)
    app.register_error_handler(Exception, _unexpected)

