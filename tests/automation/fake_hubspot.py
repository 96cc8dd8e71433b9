"""A fake of HubSpot's Automation Actions API v4 on 127.0.0.1, for the real client over HTTP.

Routes and shapes as HubSpot documents them (developers.hubspot.com, "Automation
Actions V4": definitions and callbacks):

- ``GET /automation/v4/actions/{appId}?hapikey=`` → ``{"results": [...], "paging"?}``
- ``POST /automation/v4/actions/{appId}?hapikey=`` → the created definition with ``id``
- ``PATCH /automation/v4/actions/{appId}/{definitionId}?hapikey=`` → the definition
- ``POST /automation/v4/actions/callbacks/{callbackId}/complete`` (``Authorization:
  Bearer``) with ``{"outputFields": {…}}`` → 204, no body

Definitions are managed with the app's developer API key (``hapikey`` query
parameter), callbacks with a portal's access token, as the generated client's
``auth_settings`` say. Each request body is checked against the documented
shape; ``problems`` lists what did not fit.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

VALUE_TYPES = {"STATIC_VALUE", "OBJECT_PROPERTY"}
STATES = {"SUCCESS", "FAIL_CONTINUE"}


def definition_problems(body) -> list[str]:
    """Check an action definition against the documented fields."""
    found = []
    if not isinstance(body, dict):
        return ["definition: not an object"]
    if not str(body.get("actionUrl", "")).startswith("https://"):
        found.append(f"actionUrl: HubSpot calls https URLs only, got {body.get('actionUrl')!r}")
    if not isinstance(body.get("objectTypes"), list) or not body["objectTypes"]:
        found.append("objectTypes: a non-empty list is required")
    for i, field in enumerate(body.get("inputFields", [])):
        spec = field.get("typeDefinition") or {}
        if not {"name", "type", "fieldType"} <= set(spec):
            found.append(f"inputFields[{i}].typeDefinition: name, type, fieldType required")
        if not set(field.get("supportedValueTypes") or ()) <= VALUE_TYPES:
            found.append(f"inputFields[{i}].supportedValueTypes: {field['supportedValueTypes']}")
        if spec.get("type") == "enumeration" and not spec.get("options"):
            found.append(f"inputFields[{i}]: an enumeration needs options")
    for i, field in enumerate(body.get("outputFields", [])):
        spec = field.get("typeDefinition") or {}
        if not {"name", "type"} <= set(spec):
            found.append(f"outputFields[{i}].typeDefinition: name and type required")
    labels = (body.get("labels") or {}).get("en") or {}
    if not labels.get("actionName"):
        found.append("labels.en.actionName: required")
    for rule in body.get("executionRules", []):
        if rule.get("labelName") not in (labels.get("executionRules") or {}):
            found.append(f"executionRules: no labels.en.executionRules for {rule}")
    return found


def answered(definition: dict) -> dict:
    """A definition as HubSpot answers it: the fields its response model requires, filled.

    hubspot-api-client's ``PublicActionDefinition`` requires ``functions`` and
    ``published``; its ``FieldTypeDefinition`` requires ``options`` and
    ``externalOptions``: a definition created without them comes back with them.
    """
    fields = [{**field, "typeDefinition": {"options": [], "externalOptions": False,
                                           **field.get("typeDefinition", {})}}
              for field in definition.get("inputFields", [])]
    return {"functions": [], "published": False, **definition, "inputFields": fields}


class FakeAutomation:
    """The fake server; ``completed`` holds each completed callback's body by callbackId."""

    def __init__(self, *, token: str = "pat-test", developer_key: str = "dev-key",
                 app_id: int = 4321, upstream: str | None = None):
        self.token, self.developer_key, self.app_id = token, developer_key, app_id
        # Another fake (the CRM's) that serves every other path, so one base URL serves both.
        self.upstream = upstream
        self.definitions: dict[str, dict] = {}
        self.changes = 0  # definitions created or updated
        self.completed: dict[str, list[dict]] = {}
        self.requests: list[tuple[str, str]] = []
        self.problems: list[str] = []
        self.fail_next: list[int] = []  # statuses to answer the next completions with
        self.page_size = 1
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeAutomation:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handler(self):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _reply(self, status: int, body=None) -> None:
                data = b"" if body is None else json.dumps(body).encode()
                self.send_response(status)
                if body is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _body(self):
                length = int(self.headers.get("Content-Length") or 0)
                return json.loads(self.rfile.read(length) or b"null")

            def do_GET(self) -> None:
                fake._route(self, "GET")

            def do_POST(self) -> None:
                fake._route(self, "POST")

            def do_PATCH(self) -> None:
                fake._route(self, "PATCH")

        return Handler

    def _route(self, handler, method: str) -> None:
        parts = urlsplit(handler.path)
        query = parse_qs(parts.query)
        with self._lock:
            self.requests.append((method, parts.path))
        complete = re.fullmatch(r"/automation/v4/actions/callbacks/([^/]+)/complete", parts.path)
        if complete:
            if handler.headers.get("Authorization") != f"Bearer {self.token}":
                return handler._reply(401, {"status": "error", "category": "INVALID_AUTHENTICATION",
                                            "message": "Authentication credentials not found."})
            body = handler._body()
            outputs = body.get("outputFields") if isinstance(body, dict) else None
            if not isinstance(outputs, dict) or not all(
                    isinstance(v, str) for v in outputs.values()):
                self.problems.append(f"complete: outputFields must map names to text: {body}")
            elif outputs.get("hs_execution_state") not in STATES:
                self.problems.append(f"complete: hs_execution_state {outputs!r}")
            if self.fail_next:
                status = self.fail_next.pop(0)
                return handler._reply(status, {"status": "error", "message": "try later",
                                               "category": "INTERNAL_ERROR"})
            with self._lock:
                self.completed.setdefault(complete.group(1), []).append(body)
            return handler._reply(204)
        if self.upstream and not parts.path.startswith("/automation/"):
            return self._forward(handler, method)
        match = re.fullmatch(r"/automation/v4/actions/(\d+)(?:/(\d+))?", parts.path)
        if not match or int(match.group(1)) != self.app_id:
            return handler._reply(404, {"status": "error", "message": "no such app"})
        if query.get("hapikey") != [self.developer_key]:
            return handler._reply(401, {"status": "error", "category": "INVALID_AUTHENTICATION",
                                        "message": "The developer API key is invalid."})
        definition_id = match.group(2)
        if method == "GET" and definition_id is None:
            ordered = sorted(self.definitions.values(), key=lambda d: int(d["id"]))
            start = int((query.get("after") or ["0"])[0])
            page = ordered[start:start + self.page_size]
            body = {"results": page}
            if start + self.page_size < len(ordered):
                body["paging"] = {"next": {"after": str(start + self.page_size)}}
            return handler._reply(200, body)
        if method == "POST" and definition_id is None:
            body = handler._body()
            self.problems += definition_problems(body)
            new_id = str(1000 + len(self.definitions))
            self.definitions[new_id] = answered({**body, "id": new_id, "revisionId": "1"})
            self.changes += 1
            return handler._reply(200, self.definitions[new_id])
        if method == "PATCH" and definition_id in self.definitions:
            body = handler._body()
            merged = {**self.definitions[definition_id], **body}
            self.problems += definition_problems(merged)
            merged["revisionId"] = str(int(merged["revisionId"]) + 1)
            self.definitions[definition_id] = answered(merged)
            self.changes += 1
            return handler._reply(200, self.definitions[definition_id])
        return handler._reply(404, {"status": "error", "message": "not found"})

    def _forward(self, handler, method: str) -> None:
        """Pass a request on to the upstream fake and its answer back."""
        length = int(handler.headers.get("Content-Length") or 0)
        data = handler.rfile.read(length) if length else None
        headers = {k: v for k, v in handler.headers.items()
                   if k.lower() in ("authorization", "content-type", "accept")}
        request = urllib.request.Request(self.upstream + handler.path, data=data,
                                         headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                status, body, kind = reply.status, reply.read(), reply.headers.get("Content-Type")
        except urllib.error.HTTPError as exc:
            status, body, kind = exc.code, exc.read(), exc.headers.get("Content-Type")
        handler.send_response(status)
        handler.send_header("Content-Type", kind or "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
