"""The HTTP API of SPEC §5: health, the OpenAPI document, and the /v1 endpoints."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
from sqlalchemy.exc import SQLAlchemyError

from guard.automation import via
from guard.errors import Conflict, GuardError, InvalidField
from guard.http import keys, openapi
from guard.http.auth import requires
from guard.http.schemas import CheckSchema, EventsSchema, KeyCreateSchema, ScreenSchema, load_body
from guard.services import services
from policies.model import VERDICTS

site = Blueprint("site", __name__)
v1 = Blueprint("v1", __name__, url_prefix="/v1")

# Built once: constructing a schema deep-copies its fields; loading through one instance
# from many threads is safe, a load keeps no state on the schema.
_CHECK = CheckSchema()
_SCREEN = ScreenSchema()
_EVENTS = EventsSchema()
_KEY_CREATE = KeyCreateSchema()


def current_guard():
    """The app's ``Guard`` façade."""
    return services().guard


def _with_defaults(attempt: dict, prefix: str = "") -> dict:
    """Fill sender and purpose from the caller's key; both must end up set and allowed."""
    key = g.api_key
    for name, value in key.defaults.items():
        attempt.setdefault(name, value)
    for name in ("purpose", "sender"):
        if not attempt.get(name):
            raise InvalidField(f"{prefix}{name}", "required (the API key has no default "
                                                  f"{name})")
    key.permit(attempt["sender"], attempt["purpose"], sender_field=f"{prefix}sender",
               purpose_field=f"{prefix}purpose")
    return attempt


@site.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Report liveness, whether the store is reachable and migrated, and the policy version."""
    store = store_status(current_app)
    policy = current_guard().policy
    body = {
        "status": "ok" if store["ok"] else "degraded",
        "store": store,
        "policy": {"version": policy.version, "rules": len(policy.rules)},
    }
    return jsonify(body), 200 if store["ok"] else 503


def store_status(app: Flask) -> dict[str, Any]:
    """Say whether the store answers and is at the newest migration."""
    from guard.store.migrate import current_revision, head_revision

    engine = services(app).engine
    status: dict[str, Any] = {"backend": engine.dialect.name, "ok": False}
    try:
        current = current_revision(engine)
    except SQLAlchemyError as exc:
        status["detail"] = f"unreachable: {exc.__class__.__name__}"
        return status
    head = head_revision()
    status.update(revision=current, head=head)
    if current != head:
        status["detail"] = "not migrated: run `guard db upgrade`"
    else:
        status["ok"] = True
    return status


@site.get("/openapi.json")
def openapi_document() -> Response:
    """Serve the OpenAPI 3 document of every route of this app."""
    return jsonify(openapi.document(current_app))


@v1.post("/events")
@requires("events")
def ingest_events() -> Response:
    """Ingest a batch of events (SPEC §6); invalid ones are listed, the rest stored."""
    events = load_body(request, _EVENTS)["events"]
    limit = current_app.config["EVENTS_MAX_BATCH"]
    if len(events) > limit:
        raise InvalidField("events", f"at most {limit} events per request, got {len(events)}")
    return jsonify(current_guard().ingest(events))


@v1.post("/check")
@requires("check")
def check() -> Response:
    """Decide one attempt (SPEC §4 decision JSON)."""
    body = load_body(request, _CHECK)
    commit = body.pop("commit")
    attempt = _with_defaults(body)
    decision = current_guard().check(attempt, commit=commit, defaults=g.api_key.defaults,
                                     via=via.from_headers(request.headers))
    return jsonify(decision.to_dict())


@v1.post("/screen")
@requires("check")
def screen() -> Response:
    """Decide one attempt template for many recipients, streaming the results."""
    body = load_body(request, _SCREEN)
    attempt = _with_defaults(body["attempt"], prefix="attempt.")
    recipients = body["recipients"]
    limit = current_app.config["SCREEN_MAX_RECIPIENTS"]
    if len(recipients) > limit:
        raise InvalidField("recipients", f"at most {limit} per request, got {len(recipients)}")
    results = current_guard().screen(attempt, recipients, commit=body["commit"])
    try:
        # A bad attempt fails on the first recipient: answer 400 before streaming starts.
        first = next(results, None)
    except InvalidField as exc:
        raise _attempt_error(exc) from None
    if first is not None and isinstance(first[1], InvalidField) and first[1].field != "to":
        raise _attempt_error(first[1])
    chunk = current_app.config["SCREEN_CHUNK"]
    logger = current_app.logger
    return Response(_stream_screen(first, results, chunk, logger), mimetype="application/json")


def _attempt_error(exc: InvalidField) -> InvalidField:
    """Name the attempt's field as the screen body spells it (``attempt.channel``)."""
    field = exc.field or "attempt"
    message = exc.detail.partition(": ")[2] or exc.detail
    return InvalidField(field if field.startswith("attempt") else f"attempt.{field}", message)


def _screen_row(recipient: Any, outcome: Any) -> dict:
    if isinstance(outcome, GuardError):
        return {"to": recipient, "verdict": None, "rules": [], "decision_id": None,
                "error": outcome.detail}
    return {"to": recipient, "verdict": outcome.verdict, "rules": list(outcome.rules),
            "decision_id": outcome.decision_id}


def _stream_screen(first: tuple | None, rest: Iterator[tuple], chunk: int,
                   logger: Any) -> Iterator[str]:
    """Yield the screen response JSON piece by piece, never holding all results at once."""
    summary: Counter[str] = Counter({v: 0 for v in VERDICTS})
    summary["invalid"] = 0
    yield '{"results": ['
    pending: list[str] = []
    separator = ""
    items = iter(()) if first is None else _chain(first, rest)
    try:
        for recipient, outcome in items:
            row = _screen_row(recipient, outcome)
            summary[row["verdict"] or "invalid"] += 1
            pending.append(json.dumps(row, separators=(",", ":")))
            if len(pending) >= chunk:
                yield separator + ",".join(pending)
                separator = ","
                pending.clear()
    except Exception:
        # The status line is sent; a truncated body is how the client learns of the failure.
        logger.exception("screen failed while streaming")
        raise
    if pending:
        yield separator + ",".join(pending)
    counts = {name: summary[name] for name in (*VERDICTS, "invalid")}
    yield '], "summary": ' + json.dumps(counts) + "}\n"


def _chain(first: tuple, rest: Iterator[tuple]) -> Iterator[tuple]:
    yield first
    yield from rest


@v1.post("/keys")
@requires("admin")
def create_key() -> tuple[Response, int]:
    """Create an API key; the secret is in this response only."""
    body = load_body(request, _KEY_CREATE)
    key, token = keys.create_key(
        services().engine, body["name"], body["scopes"],
        sender=body.get("sender"), purpose=body.get("purpose"), senders=body.get("senders"),
        purposes=body.get("purposes"), policy=current_guard().policy,
    )
    return jsonify(_key_json(key, token)), 201


def _key_json(key: keys.ApiKey, token: str) -> Mapping[str, Any]:
    return {"id": key.id, "key": token, "name": key.name, "scopes": sorted(key.scopes),
            "sender": key.sender, "purpose": key.purpose,
            "senders": list(key.senders) or None, "purposes": list(key.purposes) or None}


@v1.get("/keys")
@requires("admin")
def list_keys() -> Response:
    """List every API key, revoked ones included; never a key's secret or hash."""
    return jsonify({"keys": keys.list_keys(services().engine)})


@v1.delete("/keys/<key_id>")
@requires("admin")
def revoke_key(key_id: str) -> Response:
    """Revoke an API key at once; what it queued in the outbox is not sent."""
    if key_id == keys.BOOTSTRAP_ID:
        # The bootstrap key belongs to the server's settings: revoked here, the next start
        # with the same setting would refuse to run, and every admin could be locked out.
        raise Conflict(f"id: {key_id} is the GUARD_ADMIN_KEY key; set a new GUARD_ADMIN_KEY "
                       "and restart to replace it, or run `guard keys revoke key_admin` on "
                       "the server", field="id")
    return jsonify(keys.revoke_key(services().engine, key_id))


@v1.get("/decisions/<decision_id>")
@requires("check")
def decision(decision_id: str) -> Response:
    """Return a recorded decision with its attempt."""
    return jsonify(current_guard().decision(decision_id))


@v1.get("/people/<person_id>")
@requires("admin")
def person(person_id: str) -> Response:
    """Return a person's merged profile, current flags, recent ledger and owner tasks."""
    return jsonify(current_guard().person(person_id))


def init_app(app: Flask) -> None:
    """Register the API blueprints."""
    app.register_blueprint(site)
    app.register_blueprint(v1)
