"""``POST /v1/preferences/link``: a person's preference link, for a tool to put in its mail.

A key with the ``send`` scope may ask: whoever may mail a person may give them
the page that governs what they receive.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Blueprint, Response, jsonify, request

from guard.errors import Conflict, InvalidField, NotFound
from guard.http.auth import requires
from guard.http.openapi import PROBLEMS, problem, register_path
from guard.preferences.settings import signer as link_signer
from guard.services import services

bp = Blueprint("preferences_links", __name__)

PATH = "/v1/preferences/link"


@bp.post(PATH)
@requires("send")
def preference_link() -> Response:
    """Return the preference page link of the person a recipient or reference names."""
    body = request.get_json(silent=True)
    if not isinstance(body, Mapping) or body.get("to") in (None, ""):
        raise InvalidField("to", "required: an email address, a phone number or a reference")
    conf = services().preferences
    signer = link_signer(conf, services().engine) if conf.links else None
    if signer is None:
        raise Conflict("GUARD_PUBLIC_URL is not set: the guard makes no links",
                       field="GUARD_PUBLIC_URL")
    guard = services().guard
    person_id = guard.resolve(body["to"])
    if person_id is None:
        raise NotFound("to: no person matches this recipient", field="to")
    now = guard.clock()
    expires = now + signer.lifetime
    return jsonify({"person": person_id,
                    "url": f"{conf.public_url}/preferences/{signer.person(person_id, now)}",
                    "expires": expires.isoformat()})


register_path(PATH, {"post": {
    "operationId": "getPreferenceLink",
    "summary": "A person's preference page link (signed, no login), to put in a message.",
    "tags": ["preferences"],
    "security": [{"bearer": []}],
    "description": "Scope: `send` (or `admin`).",
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["to"], "properties": {"to": {
            "description": "An email address, a phone number, or a reference such as "
                           "{\"salesforce\": \"003…\"} or {\"person\": \"per_…\"}."}}}}}},
    "responses": {"200": {"description": "The link.", "content": {"application/json": {
        "schema": {"type": "object", "properties": {
            "person": {"type": "string"}, "url": {"type": "string"},
            "expires": {"type": "string", "format": "date-time"}}}}}},
                  "400": PROBLEMS["400"], "401": PROBLEMS["401"], "403": PROBLEMS["403"],
                  "404": problem("No person matches the recipient."),
                  "409": problem("GUARD_PUBLIC_URL is not set.")},
}})
