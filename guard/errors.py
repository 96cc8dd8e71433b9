"""Errors the service reports to its callers, each with a field to name.

    GuardError                 every error the service means to report
    ├── InvalidField           400: a request or event field is wrong (names the field)
    ├── Unauthorized           401: no key, or a key we do not know
    ├── Forbidden              403: the key lacks the scope
    ├── NotFound               404
    ├── Conflict               409
    ├── TooLarge               413: a body over the size limit (once decompressed, too)
    └── UnsupportedMedia       415: a body in a content type the endpoint does not take

One Flask handler renders them all as ``application/problem+json``
(RFC 9457); the CLI prints ``detail``.
"""

from __future__ import annotations


class GuardError(Exception):
    """An error with an HTTP status, a title and a detail for the caller."""

    status = 400
    title = "Bad Request"

    def __init__(self, detail: str, *, field: str | None = None):
        super().__init__(detail)
        self.detail = detail
        self.field = field

    def to_problem(self) -> dict:
        problem = {"type": "about:blank", "title": self.title, "status": self.status,
                   "detail": self.detail}
        if self.field:
            problem["field"] = self.field
        return problem


class InvalidField(GuardError):
    """A field of a request or event is missing or wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}", field=field)


class Unauthorized(GuardError):
    status = 401
    title = "Unauthorized"


class Forbidden(GuardError):
    status = 403
    title = "Forbidden"


class NotFound(GuardError):
    status = 404
    title = "Not Found"


class Conflict(GuardError):
    status = 409
    title = "Conflict"


class TooLarge(GuardError):
    status = 413
    title = "Payload Too Large"


class UnsupportedMedia(GuardError):
    status = 415
    title = "Unsupported Media Type"
