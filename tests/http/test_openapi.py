"""GET /openapi.json describes every route of the app, with resolvable schemas."""

from __future__ import annotations

import re

from guard.http import openapi


def _shape(path: str) -> str:
    """A path with its parameters unnamed: Flask's <account> is OpenAPI's {AccountSid}."""
    return re.sub(r"\{[^{}]+\}", "{}", re.sub(r"<(?:[^:<>]+:)?[^<>]+>", "{}", path))


def test_every_route_and_method_is_documented(app, client):
    spec = client.get("/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    documented = {_shape(path): operations for path, operations in spec["paths"].items()}
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if method.lower() not in documented.get(_shape(rule.rule), {}):
                missing.append(f"{method} {rule.rule}")
    assert missing == []


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def test_every_reference_resolves(client):
    spec = client.get("/openapi.json").get_json()
    for ref in _refs(spec):
        node = spec
        for part in ref.removeprefix("#/").split("/"):
            assert part in node, f"unresolved {ref}"
            node = node[part]


def test_v1_operations_say_how_to_authenticate_and_their_errors(client):
    spec = client.get("/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, operation in operations.items():
            assert operation["security"], f"{method} {path}"
            assert "401" in operation["responses"] and "403" in operation["responses"]
            content = operation["responses"]["401"]["content"]
            assert "application/problem+json" in content


def test_the_decision_schema_matches_the_spec_contract(client):
    spec = client.get("/openapi.json").get_json()
    decision = spec["components"]["schemas"]["Decision"]
    assert {"decision_id", "verdict", "person", "reasons", "reroute", "not_before",
            "monitored", "policy_version"} <= set(decision["required"])


def test_other_areas_register_their_paths(store):
    from guard import create_app

    openapi.register_path("/test/registered", {"post": {
        "operationId": "registeredForTest", "responses": {"204": {"description": "ok"}}}},
        components={"Thing": {"type": "object"}})
    try:
        spec = create_app({"GUARD": store}).test_client().get("/openapi.json").get_json()
        assert "post" in spec["paths"]["/test/registered"]
        assert spec["components"]["schemas"]["Thing"] == {"type": "object"}
    finally:
        openapi._PATHS.pop("/test/registered")
        openapi._SCHEMAS.pop("Thing")
