"""GET /readyz: whether this process should get traffic (SPEC §11).

``/healthz`` says the process lives; ``/readyz`` says it can do its job: the
store answers and is at the newest migration, and a policy is loaded. An
orchestrator takes a process that is not ready out of rotation instead of
restarting it.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify

bp = Blueprint("readiness", __name__)


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Answer 200 when the store is reachable and migrated and the policy loaded, else 503."""
    body = readiness(current_app)
    return jsonify(body), 200 if body["ready"] else 503


def readiness(app: Flask) -> dict[str, Any]:
    """Say whether ``app`` is ready, and what is not when it is not."""
    from guard.http.api import store_status
    from guard.services import services

    store = store_status(app)
    policy = policy_status(getattr(services(app).guard, "policy", None))
    return {"ready": bool(store["ok"] and policy["ok"]), "store": store, "policy": policy}


def policy_status(policy: Any) -> dict[str, Any]:
    """Say whether ``policy`` is a loaded policy (a version and its rules)."""
    version = getattr(policy, "version", None)
    rules = getattr(policy, "rules", None)
    if not version or rules is None:
        return {"ok": False, "detail": "no policy loaded: see GUARD_POLICY"}
    return {"ok": True, "version": version, "rules": len(rules)}


def init_app(app: Flask) -> None:
    """Register GET /readyz."""
    app.register_blueprint(bp)
