"""``/hooks/sfmc/…``: a Marketing Cloud Journey Builder custom split activity (RestDecision).

Journey Builder reads the activity's ``config.json`` (developer.salesforce.com,
"Custom Activity Configuration": ``workflowApiVersion``, ``metaData``, ``type``
``RestDecision``, ``lang``, ``arguments.execute``, ``configurationArguments``
``save`` / ``publish`` / ``validate`` / ``stop``, ``userInterfaces``,
``schema``, ``outcomes``), shows its configuration page in an iframe, and per
contact POSTs to ``execute``. With ``useJwt`` the body is a JWT signed with
the installed package's JWT signing secret ("Encode Custom Activities Using a
JWT"); only HS256 with ``GUARD_SFMC_JWT_SECRET`` is accepted. The decoded
body carries ``inArguments`` (a list of objects, merged here) and the
contact key ``keyValue``. The answer ``{"branchResult": "<verdict>"}`` picks
the outcome whose ``arguments.branchResult`` matches ("Define a Custom Split
Activity with Multiple Outcomes").
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

import jwt
from flask import Blueprint, current_app, jsonify, render_template_string, request

from guard.automation import via
from guard.errors import GuardError, InvalidField, TooLarge, Unauthorized
from guard.http.openapi import PROBLEMS, problem, register_path
from guard.proxy.idempotency import AlreadyAnswered, Answer, Claimed
from guard.services import services
from policies.model import VERDICTS

bp = Blueprint("sfmc", __name__, url_prefix="/hooks/sfmc", static_folder="static")

PREFIX = "/hooks/sfmc"
# The inArguments of the activity: the names of POST /v1/check.
ARGUMENTS = ("to", "channel", "purpose", "sender", "campaign", "template", "product")
LIFECYCLE = ("save", "validate", "publish", "stop")
LABELS = {"allow": "Allow", "block": "Block", "defer": "Defer", "reroute": "Reroute"}
# A journey sends one contact per request: a few KiB of JWT.
MAX_BYTES = 64 * 1024
# Salesforce's Postmonger library (npm postmonger 0.0.16, BSD/MIT, licence beside it),
# shipped in the package: the page loads nothing from a third party's CDN.
POSTMONGER = f"{PREFIX}/static/postmonger.js"
# Journey Builder waits at most this long (ms) for execute; checks answer in milliseconds.
TIMEOUT_MS = 10_000
# The key id under which execute calls' answers are kept (``idempotency_keys``): Journey
# Builder signs with the package's secret, not with an API key.
EXECUTIONS = "sfmc-journey"


class JourneysNotConfigured(GuardError):
    """The activity has no secret to check Journey Builder's JWTs with."""

    status = 503
    title = "Service Unavailable"


def _base_url() -> str:
    public = current_app.config.get("PUBLIC_URL")
    return (str(public).rstrip("/") if public else request.url_root.rstrip("/")) + PREFIX


def activity_config(base: str) -> dict:
    """Return the activity's config.json for the guard's ``base`` URL of /hooks/sfmc."""
    jwt_call = {"useJwt": True, "timeout": TIMEOUT_MS}
    in_arguments = [{"channel": "email"}, {"purpose": ""}, {"sender": ""}]
    return {
        "workflowApiVersion": "1.1",
        "metaData": {"category": "flow", "configOnDrop": True, "isConfigured": False},
        "type": "RestDecision",
        "lang": {"en-US": {
            "name": "Contact Guard check",
            "description": "Branch on Contact Guard's verdict: allow, block, defer or reroute."}},
        "arguments": {"execute": {
            "inArguments": in_arguments, "outArguments": [],
            "url": f"{base}/execute", "verb": "POST", "format": "json", **jwt_call}},
        "configurationArguments": {
            name: {"url": f"{base}/{name}", "verb": "POST", **jwt_call} for name in LIFECYCLE},
        "wizardSteps": [{"label": "What is sent", "key": "step1"}],
        "userInterfaces": {"configModal": {"height": 520, "width": 640, "fullscreen": False}},
        "schema": {"arguments": {"execute": {
            "inArguments": [{name: {"dataType": "Text", "isNullable": name != "channel",
                                    "direction": "in"}} for name in ARGUMENTS],
            "outArguments": []}}},
        "outcomes": [{"arguments": {"branchResult": verdict},
                      "metaData": {"label": LABELS[verdict]}} for verdict in VERDICTS],
    }


@bp.get("/config.json")
def config_json():
    """Serve the activity's configuration for Journey Builder."""
    return jsonify(activity_config(_base_url()))


@bp.get("/")
@bp.get("/index.html")
def config_page():
    """Serve the activity's configuration page (shown by Journey Builder in an iframe)."""
    policy = services().guard.policy
    return render_template_string(_PAGE, channels=policy.channels,
                                  purposes=sorted(policy.purposes), senders=policy.senders,
                                  arguments=ARGUMENTS, postmonger=POSTMONGER)


def _claims() -> dict:
    """Return the verified claims of a JWT body; raise Unauthorized before deciding anything."""
    secret = current_app.config.get("SFMC_JWT_SECRET")
    if not secret:
        raise JourneysNotConfigured(
            "GUARD_SFMC_JWT_SECRET: not set; Journey Builder activities need the installed "
            "package's JWT signing secret", field="GUARD_SFMC_JWT_SECRET")
    if request.content_length is not None and request.content_length > MAX_BYTES:
        raise TooLarge(f"body: at most {MAX_BYTES} bytes", field="body")
    token = request.stream.read(MAX_BYTES + 1).strip()
    if len(token) > MAX_BYTES:
        raise TooLarge(f"body: at most {MAX_BYTES} bytes", field="body")
    try:
        # The algorithm is pinned: a token naming "none", or RS256 to have the secret taken
        # for a public key, is refused, whatever its header says.
        claims = jwt.decode(token, secret, algorithms=["HS256"],
                            options={"require": [], "verify_aud": False})
    except jwt.InvalidTokenError as exc:
        raise Unauthorized(f"body: not a JWT signed with GUARD_SFMC_JWT_SECRET (HS256): {exc}",
                           field="body") from None
    if not isinstance(claims, Mapping):
        raise Unauthorized("body: the JWT holds no object", field="body")
    return dict(claims)


def _in_arguments(claims: Mapping[str, Any]) -> dict:
    """Merge the activity's ``inArguments`` (a list of objects) into one object."""
    raw = claims.get("inArguments")
    if raw is None:
        raw = ((claims.get("arguments") or {}).get("execute") or {}).get("inArguments") \
            if isinstance(claims.get("arguments"), Mapping) else None
    if raw in (None, []):
        return {}
    if isinstance(raw, Mapping):
        raw = [raw]
    if not isinstance(raw, list) or not all(isinstance(item, Mapping) for item in raw):
        raise InvalidField("inArguments", "expected a list of objects")
    merged: dict = {}
    for item in raw:
        merged.update(item)
    return merged


def read_check(claims: Mapping[str, Any], contact_key_kind: str) -> dict:
    """Return the check body of an execute call; the contact key is the recipient without ``to``."""
    arguments = _in_arguments(claims)
    check = {name: arguments[name] for name in ARGUMENTS
             if arguments.get(name) not in (None, "")}
    if "to" not in check:
        key = claims.get("keyValue")
        if not isinstance(key, str) or not key.strip():
            raise InvalidField("to", "required: give inArguments.to, or the journey's contact "
                                     "key (keyValue)")
        check["to"] = {"salesforce": key.strip()} if contact_key_kind == "salesforce" \
            else key.strip()
    return check


def execution(claims: Mapping[str, Any], check: Mapping[str, Any]) -> Claimed | None:
    """Return the key a retried execute call of the same contact shares (None: none given)."""
    # Journey Builder names each contact's pass through an activity (activityInstanceId)
    # and the contact (keyValue); a retry after a timeout or an error carries both again,
    # in a freshly signed token.
    instance, contact = claims.get("activityInstanceId"), claims.get("keyValue")
    if not isinstance(instance, str) or not instance.strip():
        return None
    name = f"{instance.strip()}\0{contact if isinstance(contact, str) else ''}"
    body = json.dumps(check, sort_keys=True, default=str)
    return Claimed(EXECUTIONS, hashlib.sha256(name.encode()).hexdigest(),
                   hashlib.sha256(body.encode()).hexdigest(), f"activityInstanceId {instance}")


@bp.post("/execute")
def execute():
    """Decide for one contact of a journey once, however often it asks; answer the branch."""
    claims = _claims()
    check = read_check(claims, current_app.config["SFMC_CONTACT_KEY"])
    answers = services().answers
    claimed = execution(claims, check)
    replayed = answers.replay(claimed)
    if replayed is not None:
        return replayed.response()

    def remember(conn, outcomes: list) -> None:
        # In the decision's transaction: the answer is kept exactly when the decision is.
        [decided] = outcomes
        if not isinstance(decided, InvalidField):
            answers.remember_in(conn, claimed, _branch(decided.verdict),
                                decision_ids=[decided.decision_id])

    try:
        [decided] = services().guard.check_many([check], then=remember, via=via.SFMC_JOURNEY)
    except AlreadyAnswered:
        # The same execution, sent twice at once: the one stored first is the one counted.
        return answers.replay(claimed).response()
    if isinstance(decided, InvalidField):
        raise decided
    return _branch(decided.verdict).response()


def _branch(verdict: str) -> Answer:
    return Answer(200, body=json.dumps({"branchResult": verdict}))


def lifecycle():
    """Acknowledge a signed save, publish or stop of the activity in a journey."""
    _claims()
    return jsonify({"success": True})


for _step in ("save", "publish", "stop"):
    bp.add_url_rule(f"/{_step}", f"lifecycle_{_step}", lifecycle, methods=["POST"])


@bp.post("/validate")
def validate():
    """Check the activity's fixed values (channel, purpose, sender) against the policy."""
    claims = _claims()
    arguments = _in_arguments(claims)
    policy = services().guard.policy
    # A value bound to journey data ({{Contact.Attribute…}}) is judged per contact.
    fixed = {name: arguments[name] for name in ("channel", "purpose", "sender")
             if isinstance(arguments.get(name), str) and arguments[name]
             and "{{" not in arguments[name]}
    if "channel" in fixed and fixed["channel"] not in policy.channels:
        raise InvalidField("channel", f"unknown channel {fixed['channel']!r}")
    if "purpose" in fixed and policy.category(fixed["purpose"]) is None:
        raise InvalidField("purpose", f"unknown purpose {fixed['purpose']!r}")
    if "sender" in fixed and not policy.knows_sender(fixed["sender"]):
        raise InvalidField("sender", f"unknown sender {fixed['sender']!r}")
    return jsonify({"success": True})


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Contact Guard check</title>
<style>
body{font:15px/1.4 system-ui,sans-serif;margin:1.5rem;color:#1b1b1b;max-width:36rem}
label{display:block;margin:.8rem 0 .2rem;font-weight:600}
input,select{width:100%;padding:.4rem;box-sizing:border-box;font:inherit}
p.hint{color:#555;font-size:13px;margin:.2rem 0}
</style></head>
<body>
<h1>Contact Guard check</h1>
<p>Each contact is checked as it reaches this step; the journey branches on the verdict:
<strong>allow</strong>, <strong>block</strong>, <strong>defer</strong> or
<strong>reroute</strong>.</p>
<form id="guard">
<label for="channel">Channel</label>
<select id="channel" name="channel">{% for c in channels %}<option>{{ c }}</option>{% endfor %}
</select>
<label for="purpose">Purpose</label>
<select id="purpose" name="purpose">{% for p in purposes %}<option>{{ p }}</option>{% endfor %}
</select>
<label for="sender">Sender</label>
<input id="sender" name="sender" list="senders" placeholder="oem, dealer:munich …">
<datalist id="senders">{% for s in senders %}<option>{{ s }}</option>{% endfor %}</datalist>
<label for="campaign">Campaign</label><input id="campaign" name="campaign">
<label for="template">Template</label><input id="template" name="template">
<label for="product">Product</label><input id="product" name="product">
<label for="to">Recipient</label>
<input id="to" name="to" placeholder="empty: the contact key">
<p class="hint">Empty: the journey's contact key. Or bind an attribute, e.g.
<code>{{ '{{' }}Contact.Attribute.Customers.Email{{ '}}' }}</code>.</p>
</form>
<script>
(function () {
  var names = {{ arguments|tojson }};
  var form = document.getElementById("guard");
  function values() {
    var args = [];
    names.forEach(function (name) {
      var value = form.elements[name].value.trim();
      if (value) { var item = {}; item[name] = value; args.push(item); }
    });
    return args;
  }
  function connect() {
  var connection = new window.Postmonger.Session();
  var activity = {};
  connection.on("initActivity", function (data) {
    activity = data || {};
    var execute = ((activity.arguments || {}).execute || {});
    (execute.inArguments || []).forEach(function (item) {
      Object.keys(item).forEach(function (name) {
        if (form.elements[name]) { form.elements[name].value = item[name]; }
      });
    });
  });
  connection.on("clickedNext", function () {
    activity.arguments = activity.arguments || {};
    activity.arguments.execute = activity.arguments.execute || {};
    activity.arguments.execute.inArguments = values();
    activity.metaData = activity.metaData || {};
    activity.metaData.isConfigured = true;
    connection.trigger("updateActivity", activity);
  });
  connection.trigger("ready");
  }
  // Postmonger carries the messages between this iframe and Journey Builder.
  var script = document.createElement("script");
  script.src = "{{ postmonger }}";
  script.onload = connect;
  document.head.appendChild(script);
})();
</script>
</body></html>
"""

_JWT_BODY = {"required": True, "content": {"application/jwt": {"schema": {
    "type": "string", "description": "A JWT (HS256) signed with GUARD_SFMC_JWT_SECRET."}}}}
_SIGNED_ERRORS = {
    "401": problem("Not a JWT signed with GUARD_SFMC_JWT_SECRET using HS256; nothing decided."),
    "413": problem("Body over 64 KiB."),
    "503": problem("GUARD_SFMC_JWT_SECRET is not set."),
}
register_path(f"{PREFIX}/config.json", {"get": {
    "operationId": "sfmcActivityConfig",
    "summary": "The Journey Builder custom activity's config.json (RestDecision).",
    "responses": {"200": {"description": "config.json, its URLs on GUARD_PUBLIC_URL.",
                          "content": {"application/json": {"schema": {"type": "object"}}}}},
}})
register_path(f"{PREFIX}/", {"get": {
    "operationId": "sfmcActivityPage",
    "summary": "The activity's configuration page, shown by Journey Builder.",
    "responses": {"200": {"description": "HTML.", "content": {"text/html": {
        "schema": {"type": "string"}}}}},
}})
register_path(f"{PREFIX}/static/{{filename}}", {"get": {
    "operationId": "sfmcActivityStatic",
    "summary": "The configuration page's script (Postmonger) and its licence.",
    "parameters": [{"in": "path", "name": "filename", "required": True,
                    "schema": {"type": "string"}}],
    "responses": {"200": {"description": "The file."}, "404": {"description": "No such file."}},
}})
register_path(f"{PREFIX}/index.html", {"get": {
    "operationId": "sfmcActivityPageFile",
    "summary": "The activity's configuration page, by its file name.",
    "responses": {"200": {"description": "HTML.", "content": {"text/html": {
        "schema": {"type": "string"}}}}},
}})
register_path(f"{PREFIX}/execute", {"post": {
    "operationId": "sfmcExecute",
    "summary": "Decide for one contact of a journey; answer the branch.",
    "description": "The JWT's `inArguments` are named as in `/v1/check`; without `to` the "
                   "contact key (`keyValue`) is the recipient, an email address or, with "
                   "`GUARD_SFMC_CONTACT_KEY=salesforce`, a Salesforce id. Recorded with "
                   "`via: sfmc_journey`. A call with the same `activityInstanceId` and "
                   "`keyValue` as an earlier one (Journey Builder retrying after a timeout) "
                   "gets the earlier answer and decides nothing, for "
                   "`GUARD_IDEMPOTENCY_HOURS`.",
    "requestBody": _JWT_BODY,
    "responses": {"200": {"description": "`{\"branchResult\": verdict}`.", "content": {
        "application/json": {"schema": {"type": "object", "properties": {
            "branchResult": {"type": "string", "enum": list(VERDICTS)}}}}}},
        "400": PROBLEMS["400"], **_SIGNED_ERRORS},
}})
for _step in LIFECYCLE:
    register_path(f"{PREFIX}/{_step}", {"post": {
        "operationId": f"sfmc{_step.capitalize()}",
        "summary": f"Journey Builder's {_step} call for the activity (signed JWT).",
        "requestBody": _JWT_BODY,
        "responses": {"200": {"description": "`{\"success\": true}`.", "content": {
            "application/json": {"schema": {"type": "object"}}}},
            "400": PROBLEMS["400"], **_SIGNED_ERRORS},
    }})
