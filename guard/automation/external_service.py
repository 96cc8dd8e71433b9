"""The check operation as a Salesforce External Service: the guard's OpenAPI, trimmed.

Salesforce External Services read an OpenAPI 3.0 document and make each
operation a Flow action ("Schema Definitions", help.salesforce.com): security
settings, tags and external documentation are ignored (the Named Credential
carries the key), response headers are not supported, every parameter and
property needs a name and a type, and ``allOf`` / ``oneOf`` / ``anyOf`` are
read only with a ``discriminator``. The document here keeps ``POST /v1/check``
alone, with plain typed properties: ``to`` is text (an email address or phone
number), a free-form map becomes its known properties, and keywords External
Services does not read are left out.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from flask import Flask

from guard.http import openapi

OPERATION = "check"
PATH = "/v1/check"
# What a schema keeps: the keywords External Services reads.
KEPT = ("type", "format", "description", "enum", "properties", "items", "required", "$ref")
# Objects the API describes as free-form maps, with the properties they hold.
KNOWN_PROPERTIES = {
    "reroute": {"owner": {"type": "string", "description": "Who carries the contact instead."},
                "channel": {"type": "string", "description": "The channel to use instead."}},
}
# What a choice of forms keeps: the plain form, described.
PLAIN_FORMS = {"to": "An email address or a phone number (E.164, or national in the policy's "
                     "region)."}
# Properties left out: a map External Services cannot type (Problem.errors).
LEFT_OUT = {"errors"}
# A decision always has these; the rest may be null.
DECISION_REQUIRED = ["decision_id", "verdict", "reasons"]


def document(app: Flask | None = None) -> dict:
    """Return the External Services document of ``POST /v1/check`` (of ``app``, if given)."""
    # The API's document is built from what its modules register, not from an app's state.
    full = openapi.document(app) if app is not None else openapi.build(Flask(__name__))
    operation = copy.deepcopy(full["paths"][PATH]["post"])
    schemas = full["components"]["schemas"]
    trimmed_operation = {
        "operationId": OPERATION,
        "summary": "Contact Guard: check",
        "description": "Decide one contact attempt: allow, block, defer or reroute, with reasons.",
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": _ref_of(operation["requestBody"]["content"]["application/json"])}}},
        "responses": {
            "200": {"description": "The decision.", "content": {"application/json": {
                "schema": _ref_of(operation["responses"]["200"]["content"]["application/json"])}}},
            "400": {"description": "Bad input; detail names the field.", "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/Problem"}}}},
        },
    }
    used: dict[str, Any] = {}
    _collect(trimmed_operation, schemas, used)
    components = {name: _trim(name, schema) for name, schema in sorted(used.items())}
    components["Decision"]["required"] = DECISION_REQUIRED
    return {
        "openapi": "3.0.3",
        "info": {"title": "Contact Guard", "version": full["info"]["version"],
                 "description": "The Contact Guard check, for Flows (External Services)."},
        "paths": {PATH: {"post": trimmed_operation}},
        "components": {"schemas": components},
    }


def _ref_of(media: Mapping[str, Any]) -> dict:
    return {"$ref": media["schema"]["$ref"]}


def _collect(node: Any, schemas: Mapping[str, Any], used: dict[str, Any]) -> None:
    """Gather every component schema ``node`` refers to, directly or through others."""
    if isinstance(node, Mapping):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            name = ref.rsplit("/", 1)[1]
            if name not in used:
                used[name] = schemas[name]
                _collect(schemas[name], schemas, used)
        for value in node.values():
            _collect(value, schemas, used)
    elif isinstance(node, list):
        for value in node:
            _collect(value, schemas, used)


def _trim(name: str | None, schema: Mapping[str, Any]) -> dict:
    """Return ``schema`` in External Services' subset (see the module's description)."""
    if "oneOf" in schema or "anyOf" in schema:
        # A choice of forms: the plain one (``to``: an address rather than a CRM reference).
        choices = schema.get("oneOf") or schema.get("anyOf")
        plain = next(c for c in choices if c.get("type") in ("string", "integer", "number"))
        return {**_trim(None, plain), "description": PLAIN_FORMS.get(name, "")}
    if name in KNOWN_PROPERTIES:
        properties = KNOWN_PROPERTIES[name]
        return {"type": "object", "properties": copy.deepcopy(properties)}
    trimmed = {key: copy.deepcopy(value) for key, value in schema.items() if key in KEPT}
    if "properties" in schema:
        trimmed["properties"] = {
            prop: _trim(prop, value) for prop, value in schema["properties"].items()
            if prop not in LEFT_OUT}
        required = [r for r in schema.get("required", []) if r in trimmed["properties"]]
        if required:
            trimmed["required"] = required
        else:
            trimmed.pop("required", None)
    if "items" in schema:
        trimmed["items"] = _trim(None, schema["items"])
    return trimmed
