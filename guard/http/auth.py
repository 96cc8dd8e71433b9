"""Who is calling: ``Authorization: Bearer <key>`` or HTTP Basic with the key as password.

Scopes are ``check``, ``send``, ``events`` and ``admin`` (which implies all
of them). No key, or a key we do not know (or that was revoked), is a 401; a
known key without the scope is a 403, and so is a request for a sender or
purpose outside the key's allow-lists (``ApiKey.permit``, called by each endpoint).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from flask import g, request

from guard.errors import Forbidden, Unauthorized
from guard.http import keys
from guard.http.keys import ApiKey
from guard.services import services

F = TypeVar("F", bound=Callable)


def presented_key() -> str | None:
    """Read the key from a Bearer header or, as Twilio clients send it, a Basic password."""
    header = request.headers.get("Authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    if scheme.lower() == "basic" and request.authorization is not None:
        return request.authorization.password or None
    return None


def authenticate_request(required_scope: str) -> ApiKey:
    """Return the caller's key if it has ``required_scope``; raise Unauthorized or Forbidden."""
    token = presented_key()
    if token is None:
        raise Unauthorized(
            "Authorization: missing; send 'Authorization: Bearer <api key>'", field="Authorization"
        )
    key = keys.authenticate(services().engine, token)
    if key is None:
        raise Unauthorized("Authorization: unknown or revoked API key", field="Authorization")
    if not key.allows(required_scope):
        raise Forbidden(
            f"Authorization: key {key.name!r} lacks the {required_scope!r} scope "
            f"(it has: {', '.join(sorted(key.scopes))})",
            field="Authorization",
        )
    g.api_key = key
    return key


def requires(scope: str) -> Callable[[F], F]:
    """Guard a view: authenticate the caller with ``scope``; the key is in ``g.api_key``."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            authenticate_request(scope)
            return view(*args, **kwargs)

        wrapper.required_scope = scope  # read by the OpenAPI builder
        return wrapper  # type: ignore[return-value]

    return decorate
