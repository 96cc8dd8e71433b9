"""/readyz and /metrics in the guard's OpenAPI document."""

from __future__ import annotations

from guard.http.openapi import PROBLEMS, register_path


def describe() -> None:
    """Add GET /readyz and GET /metrics to the OpenAPI document."""
    readiness = {"application/json": {"schema": {"$ref": "#/components/schemas/Readiness"}}}
    register_path("/readyz", {"get": {
        "operationId": "readiness",
        "summary": "Ready for traffic: the store reachable and migrated, the policy loaded.",
        "description": "`/healthz` is liveness; point a readiness probe here.",
        "responses": {"200": {"description": "Ready.", "content": readiness},
                      "503": {"description": "Not ready; `store.detail` or `policy.detail` "
                                             "says why.", "content": readiness}},
    }}, components={"Readiness": {"type": "object", "required": ["ready", "store", "policy"],
                                  "properties": {"ready": {"type": "boolean"},
                                                 "store": {"type": "object"},
                                                 "policy": {"type": "object"}}}})
    register_path("/metrics", {"get": {
        "operationId": "metrics",
        "summary": "Prometheus metrics (text format); names start `contact_guard_`.",
        "description": "Scope: `metrics` (or `admin`), as a Bearer token.",
        "security": [{"bearer": []}],
        "responses": {"200": {"description": "Prometheus text exposition format.",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      "401": PROBLEMS["401"], "403": PROBLEMS["403"]},
    }})
