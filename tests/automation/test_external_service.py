"""The External Services document: within their schema rules, and it round-trips the guard.

Salesforce External Services ("Schema Definitions", help.salesforce.com) read
OpenAPI 3.0: GET/PATCH/PUT/POST/DELETE operations, every parameter and
property named and typed, request headers but no response headers; security
objects, tags and external docs are ignored (the Named Credential carries the
key); ``allOf`` / ``oneOf`` / ``anyOf`` only with a discriminator. The
document keeps to the plain subset: one operation, typed properties, JSON.
"""

from __future__ import annotations

import json
import re

from guard.automation.external_service import document
from tests.automation.conftest import customer, decisions
from tests.conftest import accepted, purchase

TYPES = {"string", "boolean", "integer", "number", "array", "object"}
FORMATS = {"date-time", "date", "int32", "int64", "float", "double", "binary", "byte"}
LEFT_OUT = {"oneOf", "anyOf", "allOf", "not", "discriminator", "nullable",
            "additionalProperties", "security", "securitySchemes", "tags", "externalDocs",
            "servers", "headers", "default"}
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def rule_breaks(doc: dict) -> list[str]:
    """List where ``doc`` leaves External Services' plain OpenAPI 3.0 subset."""
    found = []
    if not re.fullmatch(r"3\.0\.\d", doc["openapi"]):
        found.append(f"openapi: {doc['openapi']} is not 3.0.x")
    schemas = doc.get("components", {}).get("schemas", {})

    def walk(node, where):
        if isinstance(node, dict):
            for key in node:
                if key in LEFT_OUT:
                    found.append(f"{where}: {key}")
            if "$ref" in node:
                target = node["$ref"].removeprefix("#/components/schemas/")
                if target not in schemas:
                    found.append(f"{where}: $ref {node['$ref']} resolves to nothing")
            for key, value in node.items():
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(doc, "$")

    def schema(node, where):
        if "$ref" in node:
            return
        kind = node.get("type")
        if kind not in TYPES:
            found.append(f"{where}: type {kind!r}")
        if "format" in node and node["format"] not in FORMATS:
            found.append(f"{where}: format {node['format']!r}")
        if kind == "object":
            if not node.get("properties"):
                found.append(f"{where}: an object without properties")
            for name, prop in node.get("properties", {}).items():
                if not NAME.fullmatch(name):
                    found.append(f"{where}.{name}: not a plain name")
                schema(prop, f"{where}.{name}")
            missing = set(node.get("required", ())) - set(node.get("properties", {}))
            if missing:
                found.append(f"{where}: required {sorted(missing)} not among its properties")
        if kind == "array":
            if "items" not in node:
                found.append(f"{where}: an array without items")
            else:
                schema(node["items"], f"{where}[]")

    for name, node in schemas.items():
        schema(node, name)
    operations = [(path, method, op) for path, item in doc["paths"].items()
                  for method, op in item.items()]
    for path, method, op in operations:
        if method not in ("get", "patch", "put", "post", "delete"):
            found.append(f"{path}: method {method}")
        if not NAME.fullmatch(op.get("operationId", "")):
            found.append(f"{path}: operationId {op.get('operationId')!r}")
        media = [m for body in [op.get("requestBody", {}), *op["responses"].values()]
                 for m in body.get("content", {})]
        if set(media) - {"application/json"}:
            found.append(f"{path}: media types {sorted(set(media))}")
    return found


def test_the_document_keeps_to_the_external_services_schema_rules():
    doc = document()
    assert rule_breaks(doc) == []
    assert list(doc["paths"]) == ["/v1/check"]
    assert doc["paths"]["/v1/check"]["post"]["operationId"] == "check"
    check = doc["components"]["schemas"]["Check"]["properties"]
    assert check["to"]["type"] == "string"
    assert check["channel"]["enum"] == ["email", "sms", "call", "mail", "push"]
    decision = doc["components"]["schemas"]["Decision"]["properties"]
    assert decision["verdict"]["enum"] == ["allow", "defer", "reroute", "block"]
    assert set(decision["reroute"]["properties"]) == {"owner", "channel"}


def test_the_rules_catch_what_the_full_api_document_has(app):
    from guard.http import openapi

    breaks = rule_breaks(openapi.document(app))
    assert any("oneOf" in b for b in breaks) and any("securitySchemes" in b for b in breaks)


def conforms(value, node, schemas, where="$") -> list[str]:
    """Check a JSON value against a document schema: types, enums, required, no strangers."""
    if "$ref" in node:
        return conforms(value, schemas[node["$ref"].rsplit("/", 1)[1]], schemas, where)
    if value is None:
        return []
    kind = node["type"]
    expected = {"string": str, "boolean": bool, "integer": int, "number": (int, float),
                "array": list, "object": dict}[kind]
    if not isinstance(value, expected) or (kind in ("integer", "number")
                                           and isinstance(value, bool)):
        return [f"{where}: {value!r} is not {kind}"]
    if "enum" in node and value not in node["enum"]:
        return [f"{where}: {value!r} not in {node['enum']}"]
    problems = []
    if kind == "object":
        properties = node["properties"]
        problems += [f"{where}.{name}: required" for name in node.get("required", ())
                     if value.get(name) is None]
        problems += [f"{where}.{name}: not in the document" for name in value
                     if name not in properties]
        for name, item in value.items():
            if name in properties:
                problems += conforms(item, properties[name], schemas, f"{where}.{name}")
    if kind == "array":
        for i, item in enumerate(value):
            problems += conforms(item, node["items"], schemas, f"{where}[{i}]")
    return problems


def test_the_operation_round_trips_against_the_guard(client, guard, engine, key):
    customer(guard)
    accepted(guard.ingest([purchase("SO-1", "anna@example.com")]))
    doc = document()
    schemas = doc["components"]["schemas"]
    # A Flow's inputs, as the External Service sends them, with the headers the External
    # Credential adds.
    body = {"channel": "email", "to": "anna@example.com", "purpose": "price_offer",
            "sender": "oem", "product": "audi-a4", "commit": True}
    assert conforms(body, {"$ref": "#/components/schemas/Check"}, schemas) == []
    answer = client.post("/v1/check", data=json.dumps(body), content_type="application/json",
                         headers={"Authorization": f"Bearer {key}",
                                  "X-Guard-Via": "salesforce_flow"})
    assert answer.status_code == 200
    assert conforms(answer.get_json(), {"$ref": "#/components/schemas/Decision"}, schemas) == []
    assert answer.get_json()["verdict"] == "block"
    assert [d["via"] for d in decisions(engine)] == ["salesforce_flow"]
    refused = client.post("/v1/check", data=json.dumps({**body, "channel": "fax"}),
                          content_type="application/json",
                          headers={"Authorization": f"Bearer {key}"})
    assert refused.status_code == 400
    assert conforms(refused.get_json(), {"$ref": "#/components/schemas/Problem"}, schemas) == []
