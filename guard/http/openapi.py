"""The OpenAPI 3 document: the guard's own endpoints plus whatever other areas register.

Schemas come from ``guard.schemas`` through apispec's marshmallow plugin.
Other areas (the SendGrid/Twilio proxy) describe their routes with
``register_path`` when they are imported; the document is built once per app.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask

from guard.http import schemas

OPENAPI_VERSION = "3.0.3"

# path (OpenAPI style, "/v1/decisions/{decision_id}") -> {method: operation}
_PATHS: dict[str, dict[str, Any]] = {}
# component name -> marshmallow schema class or a plain JSON schema dict
_SCHEMAS: dict[str, Any] = {}


def register_path(
    path: str,
    operations: Mapping[str, Mapping[str, Any]],
    *,
    components: Mapping[str, Any] | None = None,
) -> None:
    """Describe a route in the document: ``operations`` maps a lower-case method to an operation.

    ``components`` are schemas the operations refer to by name: marshmallow
    schema classes or JSON schema dicts. Registering the same path again
    replaces it, so importing a module twice is harmless.
    """
    _PATHS[path] = {method.lower(): dict(op) for method, op in operations.items()}
    for name, schema in (components or {}).items():
        _SCHEMAS[name] = schema


def _json(schema: str) -> dict:
    return {"application/json": {"schema": schema}}


def problem(description: str) -> dict:
    return {"description": description, "content": {"application/problem+json":
                                                     {"schema": "Problem"}}}


PROBLEMS = {
    "400": problem("Bad input; `detail` names the field."),
    "401": problem("No API key, or an unknown or revoked one."),
    "403": problem("The API key lacks the scope, or may not use that sender or purpose."),
    "413": problem("The body is larger than the limit."),
    "415": problem("The body is not JSON."),
}


def _secured(scope: str, op: dict, *, errors: tuple[str, ...] = ("400", "401", "403")) -> dict:
    op = dict(op)
    op["security"] = [{"bearer": []}]
    op["description"] = (op.get("description", "") + f"\n\nScope: `{scope}` (or `admin`).").strip()
    op["responses"] = {**op["responses"], **{code: PROBLEMS[code] for code in errors}}
    return op


_BODY_ERRORS = ("400", "401", "403", "413", "415")

register_path("/healthz", {"get": {
    "operationId": "health",
    "summary": "Liveness, store reachability and migration state, policy version.",
    "responses": {
        "200": {"description": "Healthy.", "content": _json("Health")},
        "503": {"description": "The store is unreachable or not migrated.",
                "content": _json("Health")},
    },
}})
register_path("/openapi.json", {"get": {
    "operationId": "openapi",
    "summary": "This document.",
    "responses": {"200": {"description": "The OpenAPI 3 document.",
                          "content": {"application/json": {"schema": {"type": "object"}}}}},
}})
register_path("/v1/events", {"post": _secured("events", {
    "operationId": "ingestEvents",
    "summary": "Ingest a batch of events; idempotent per source.",
    "description": "Valid events are stored; invalid ones are listed under `rejected`.",
    "requestBody": {"required": True, "content": _json("Events")},
    "responses": {"200": {"description": "What was stored and what was rejected.",
                          "content": _json("EventsResult")}},
}, errors=_BODY_ERRORS)})
register_path("/v1/check", {"post": _secured("check", {
    "operationId": "check",
    "summary": "Decide one contact attempt.",
    "description": "With `commit` (default) an allowed attempt is written to the ledger at "
                   "once; `commit: false` is a dry run. Sender and purpose default to the "
                   "API key's.",
    "parameters": [{"name": "X-Guard-Via", "in": "header", "required": False,
                    "schema": {"type": "string", "pattern": "^[a-z][a-z0-9_.-]{0,31}$"},
                    "description": "The integration the check comes through (e.g. `braze`), "
                                   "recorded with the decision as `via`."}],
    "requestBody": {"required": True, "content": _json("Check")},
    "responses": {"200": {"description": "The decision.", "content": _json("Decision")}},
}, errors=_BODY_ERRORS)})
register_path("/v1/screen", {"post": _secured("check", {
    "operationId": "screen",
    "summary": "Decide one attempt template for many recipients (list scrubbing).",
    "description": "Takes at least 100,000 recipients; the response is streamed.",
    "requestBody": {"required": True, "content": _json("Screen")},
    "responses": {"200": {"description": "One result per recipient, in order, and counts.",
                          "content": _json("ScreenResponse")}},
}, errors=_BODY_ERRORS)})
register_path("/v1/keys", {"post": _secured("admin", {
    "operationId": "createKey",
    "summary": "Create an API key; the key is shown once and stored hashed.",
    "description": "`sender` and `purpose` are defaults; `senders` and `purposes` are "
                   "limits: every endpoint answers a request outside them with a 403 naming "
                   "the field.",
    "requestBody": {"required": True, "content": _json("KeyCreate")},
    "responses": {"201": {"description": "The new key.", "content": _json("KeyCreated")}},
}, errors=_BODY_ERRORS), "get": _secured("admin", {
    "operationId": "listKeys",
    "summary": "List every API key, revoked ones included (never a secret or hash).",
    "responses": {"200": {"description": "The keys, oldest first.",
                          "content": _json("KeyList")}},
}, errors=("401", "403"))})
_ID = {"in": "path", "required": True, "schema": {"type": "string"}}
register_path("/v1/keys/{key_id}", {"delete": _secured("admin", {
    "operationId": "revokeKey",
    "summary": "Revoke an API key (idempotent); the outbox drops what it queued.",
    "description": "The key stops working at once on this replica and within 5 seconds on "
                   "the others. The `GUARD_ADMIN_KEY` key (`key_admin`) is replaced through "
                   "its setting, not here (409).",
    "parameters": [{"name": "key_id", **_ID}],
    "responses": {"200": {"description": "The revoked key.", "content": _json("Key")},
                  "404": problem("No such key."),
                  "409": problem("The GUARD_ADMIN_KEY key, which its setting owns.")},
}, errors=("401", "403"))})
register_path("/v1/decisions/{decision_id}", {"get": _secured("check", {
    "operationId": "getDecision",
    "summary": "A recorded decision with its attempt.",
    "parameters": [{"name": "decision_id", **_ID}],
    "responses": {"200": {"description": "The decision.", "content": _json("RecordedDecision")},
                  "404": problem("No such decision.")},
}, errors=("401", "403"))})
register_path("/v1/people/{person_id}", {"get": _secured("admin", {
    "operationId": "getPerson",
    "summary": "A person's merged profile, current flags, recent ledger and owner tasks.",
    "parameters": [{"name": "person_id", **_ID}],
    "responses": {"200": {"description": "The person.", "content": _json("Person")},
                  "404": problem("No such person.")},
}, errors=("401", "403"))})

_CORE_SCHEMAS = {
    "Problem": schemas.ProblemSchema,
    "Health": schemas.HealthSchema,
    "Events": schemas.EventsSchema,
    "EventsResult": schemas.EventsResultSchema,
    "Check": schemas.CheckSchema,
    "Decision": schemas.DecisionSchema,
    "RecordedDecision": schemas.RecordedDecisionSchema,
    "Screen": schemas.ScreenSchema,
    "ScreenResponse": schemas.ScreenResponseSchema,
    "KeyCreate": schemas.KeyCreateSchema,
    "KeyCreated": schemas.KeyCreatedSchema,
    "Key": schemas.KeySchema,
    "KeyList": schemas.KeyListSchema,
    "Person": schemas.PersonSchema,
}


def _schema_name_resolver(schema: Any) -> str | None:
    """Name nested schemas after their class, without the 'Schema' suffix."""
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__
    return name[: -len("Schema")] if name.endswith("Schema") and name != "Schema" else name


def build(app: Flask) -> dict:
    """Build the OpenAPI document from the registered paths and schemas."""
    try:
        release = version("contact-guard")
    except PackageNotFoundError:
        release = "0"
    spec = APISpec(
        title="Contact Guard",
        version=release,
        openapi_version=OPENAPI_VERSION,
        plugins=[MarshmallowPlugin(schema_name_resolver=_schema_name_resolver)],
        info={"description": "Checks every outbound contact against cross-system customer "
                             "data at the moment it is sent. Errors are "
                             "application/problem+json (RFC 9457)."},
    )
    spec.components.security_scheme("bearer", {"type": "http", "scheme": "bearer"})
    spec.components.security_scheme("basic", {"type": "http", "scheme": "basic",
                                               "description": "Twilio-style: the password is "
                                                              "the guard API key."})
    for name, schema in {**_CORE_SCHEMAS, **_SCHEMAS}.items():
        if isinstance(schema, Mapping):
            spec.components.schema(name, dict(schema))
        else:
            spec.components.schema(name, schema=schema)
    for path, operations in _PATHS.items():
        spec.path(path=path, operations=operations)
    return spec.to_dict()


def document(app: Flask) -> dict:
    """Return the app's OpenAPI document, built on first use."""
    cached = app.extensions.get("guard.openapi")
    if cached is None:
        cached = app.extensions["guard.openapi"] = build(app)
    return cached
