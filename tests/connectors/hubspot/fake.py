"""A stateful fake of the HubSpot API on 127.0.0.1, spoken to by the real hubspot-api-client.

It serves the wire protocol the connector uses: CRM search (filter groups,
one sort, ``paging.next.after`` offsets, the 10,000-result limit answered
with HTTP 400 like HubSpot), object listing with ``archived=true``, batch
read / update / create (100 per call; a create is validated whole, so one
invalid input fails the batch), v4 association batch reads paged per object,
properties and property groups, pipelines, v4 subscription statuses
(``SUBSCRIBED`` / ``UNSUBSCRIBED`` / ``NOT_SPECIFIED``), the OAuth token
endpoint, 429 bursts with or without ``Retry-After``, and answers lost
after a request was applied (a dropped connection or a gateway 5xx).
Every exchange is kept in ``exchanges`` for the conformance check.
"""

from __future__ import annotations

import base64
import json
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

SINGULAR = {
    "contact": "contacts", "company": "companies", "deal": "deals", "ticket": "tickets",
    "line_item": "line_items", "product": "products", "task": "tasks", "email": "emails",
    "call": "calls", "meeting": "meetings", "0-1": "contacts", "0-2": "companies",
    "0-3": "deals", "0-5": "tickets", "0-8": "line_items", "0-27": "tasks",
}  # fmt: skip
MODIFIED = {"contacts": "lastmodifieddate"}  # every other type uses hs_lastmodifieddate
DATETIMES = {"createdate", "lastmodifieddate", "hs_lastmodifieddate", "closedate", "hs_timestamp"}
NUMBERS = {"hs_object_id", "amount", "price", "quantity"}
# Standard properties the fake knows without install; writes to others fail like HubSpot.
STANDARD = {
    "contacts": {
        "email", "hs_additional_emails", "firstname", "lastname", "phone", "mobilephone",
        "lifecyclestage", "hubspot_owner_id", "associatedcompanyid", "hs_timezone",
    },
}  # fmt: skip
BATCH_LIMIT = 100
ASSOCIATIONS_LIMIT = 1000  # v4 association batch reads, since February 2025
OWNERS = {"5", "77", "78", "99"}  # the portal's users, by owner id


def iso(ms: int) -> str:
    """Format epoch milliseconds the way HubSpot returns datetimes."""
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


@cache
def to_ms(value) -> int:
    """Read a datetime filter or property value (epoch ms or ISO) as epoch ms."""
    text = str(value).strip()
    if text.lstrip("-").isdigit():
        return int(text)
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


@dataclass
class Exchange:
    """One request the fake answered, and its answer, as seen on the wire."""

    method: str
    path: str
    query: dict[str, list[str]]
    body: object  # parsed JSON, or the form fields of the OAuth endpoint
    status: int | None  # None: the connection was dropped without an answer
    answer: object


def opaque(offset: int) -> str:
    """Encode a paging offset the way HubSpot's cursors look: opaque text."""
    return base64.urlsafe_b64encode(f"o{offset}".encode()).decode().rstrip("=")


def offset_of(cursor: str) -> int:
    """Decode a cursor made by ``opaque``."""
    padded = cursor + "=" * (-len(cursor) % 4)
    return int(base64.urlsafe_b64decode(padded.encode()).decode()[1:])


class ApiFailure(Exception):
    """An error response the fake sends."""

    def __init__(self, status: int, category: str, message: str) -> None:
        super().__init__(message)
        self.status, self.category, self.message = status, category, message


class FakeHubSpot:
    """HubSpot's state and HTTP API; start() serves it on a free local port."""

    def __init__(self, token: str = "pat-test", search_limit: int = 10_000) -> None:
        self.tokens = {token}
        self.search_limit = search_limit
        self.now_ms = to_ms("2026-11-01T09:00:00Z")
        self.objects: dict[str, dict[str, dict]] = defaultdict(dict)
        self.links: dict[tuple[str, str], dict[str, set[str]]] = defaultdict(
            lambda: defaultdict(set)
        )
        self.property_defs: dict[str, dict[str, dict]] = defaultdict(dict)
        self.groups: dict[str, dict[str, dict]] = defaultdict(dict)
        self.pipelines: dict[str, list[dict]] = {
            "tickets": [
                {
                    "id": "0",
                    "label": "Support Pipeline",
                    "stages": [
                        {"id": "1", "label": "New", "metadata": {"ticketState": "OPEN"}},
                        {"id": "2", "label": "Waiting", "metadata": {"ticketState": "OPEN"}},
                        {"id": "4", "label": "Closed", "metadata": {"ticketState": "CLOSED"}},
                    ],
                }
            ]
        }
        self.statuses: dict[str, list[dict]] = {}
        self.wide_statuses: dict[str, list[dict]] = {}
        self.refresh_tokens: dict[str, int] = {}  # refresh token -> access token lifetime (s)
        self.issued = 0
        # Pending 429s: (their Retry-After or None, the path part they wait for or None: any).
        self.throttled: list[tuple[str | None, str | None]] = []
        # Lost answers: (path part, 5xx status or None to drop, whether the request applies).
        self.lost: list[tuple[str, int | None, bool]] = []
        self.owners = set(OWNERS)
        self.association_page = 500  # associations per object per page (HubSpot's choice)
        self.log: list[tuple[str, str]] = []
        self.exchanges: list[Exchange] = []
        self._next_id = 1000
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        # Search answers by query, valid until a record changes: a sync pages through one
        # query 200 records at a time, and filtering and sorting every record for every
        # page made the fake, not the connector, the slow side of a large sync.
        self._changes = 0
        self._searches: dict[tuple, list[dict]] = {}

    # -- setting up state -----------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the fake's clock forward (record modification times come from it)."""
        self.now_ms += int(seconds * 1000)

    def add(self, object_type: str, properties: dict | None = None, *, id=None, modified=None):
        """Create a record; returns its id."""
        with self._lock:
            object_type = SINGULAR.get(object_type, object_type)
            if id is None:
                self._next_id += 1
                id = self._next_id
            record_id = str(id)
            at = self.now_ms if modified is None else to_ms(modified)
            props = {k: (None if v is None else str(v)) for k, v in (properties or {}).items()}
            props.update(
                {"hs_object_id": record_id, "createdate": props.get("createdate") or iso(at)}
            )
            props[MODIFIED.get(object_type, "hs_lastmodifieddate")] = iso(at)
            self._changes += 1
            self.objects[object_type][record_id] = {
                "id": record_id,
                "properties": props,
                "createdAt": props["createdate"],
                "updatedAt": iso(at),
                "archived": False,
            }
            return record_id

    def update(self, object_type: str, record_id, properties: dict, *, modified=None) -> None:
        """Change a record's properties as a HubSpot user would."""
        with self._lock:
            object_type = SINGULAR.get(object_type, object_type)
            record = self.objects[object_type][str(record_id)]
            self._changes += 1
            at = self.now_ms if modified is None else to_ms(modified)
            for key, value in properties.items():
                record["properties"][key] = None if value is None else str(value)
            record["properties"][MODIFIED.get(object_type, "hs_lastmodifieddate")] = iso(at)
            record["updatedAt"] = iso(at)

    def archive(self, object_type: str, record_id) -> None:
        """Archive (delete) a record."""
        with self._lock:
            record = self.objects[SINGULAR.get(object_type, object_type)][str(record_id)]
            self._changes += 1
            record["archived"] = True
            record["archivedAt"] = iso(self.now_ms)

    def associate(self, from_type: str, from_id, to_type: str, to_id) -> None:
        """Associate two records (both directions, as HubSpot does)."""
        a, b = SINGULAR.get(from_type, from_type), SINGULAR.get(to_type, to_type)
        with self._lock:
            self.links[(a, b)][str(from_id)].add(str(to_id))
            self.links[(b, a)][str(to_id)].add(str(from_id))

    def throttle(self, count: int, retry_after: str | None = None,
                 path_part: str | None = None) -> None:
        """Answer the next ``count`` requests (to ``path_part``, if given) with 429."""
        self.throttled.extend([(retry_after, path_part)] * count)

    def lose_answer(self, path_part: str, status: int | None = None, *,
                    applied: bool = True) -> None:
        """Lose the answer to the next request whose path contains ``path_part``.

        ``status`` answers with that 5xx instead (a gateway timing out); None
        drops the connection unanswered. ``applied`` says whether HubSpot
        carried the request out before its answer was lost.
        """
        self.lost.append((path_part, status, applied))

    def record(self, object_type: str, record_id) -> dict:
        return self.objects[SINGULAR.get(object_type, object_type)][str(record_id)]

    def calls(self, method: str, path_part: str) -> int:
        """Count requests with this method whose path contains ``path_part``."""
        return sum(1 for m, p in self.log if m == method and path_part in p)

    # -- serving --------------------------------------------------------------

    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # small JSON answers, no 40 ms delayed-ACK stalls

            def log_message(self, *args) -> None:
                pass

            def _serve(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body, headers = fake.handle(method, self.path, self.headers, raw)
                if status is None:
                    self.close_connection = True  # the answer is lost on the way back
                    return
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                self._serve("GET")

            def do_POST(self) -> None:
                self._serve("POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self.url

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def handle(self, method: str, target: str, headers, raw: bytes):
        """Answer one request: (status or None to drop the connection, JSON body, headers)."""
        url = urlsplit(target)
        query = parse_qs(url.query)
        with self._lock:
            try:
                body = json.loads(raw) if raw and url.path != "/oauth/v1/token" else None
            except ValueError:
                body = None
            if url.path == "/oauth/v1/token":
                body = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            lost = next((item for item in self.lost if item[0] in url.path), None)
            if lost is None or lost[2]:
                status, answer, extra = self._answer(method, url.path, query, headers, raw, body)
            else:
                self.log.append((method, url.path))
                status = None
            if lost is not None and (status is None or status < 300):
                self.lost.remove(lost)
                status, answer, extra = lost[1], None, {}
                if status is not None:
                    answer = {"status": "error", "message": "upstream request timeout",
                              "category": "SERVICE_UNAVAILABLE", "correlationId": "fake"}
            self.exchanges.append(Exchange(method, url.path, query, body, status, answer))
            return status, answer, extra

    def _answer(self, method: str, path: str, query: dict, headers, raw: bytes, body):
        self.log.append((method, path))
        pending = next((t for t in self.throttled if t[1] is None or t[1] in path), None)
        if pending is not None:
            self.throttled.remove(pending)
            retry_after = pending[0]
            extra = {"Retry-After": retry_after} if retry_after is not None else {}
            return (
                429,
                {
                    "status": "error",
                    "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT",
                    "correlationId": "fake",
                    "policyName": "TEN_SECONDLY_ROLLING",
                    "groupName": "publicapi:private-app:fake",
                },
                extra,
            )
        try:
            if path == "/oauth/v1/token":
                return 200, self._token(raw), {}
            auth = headers.get("Authorization") or ""
            if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
                raise ApiFailure(
                    401, "INVALID_AUTHENTICATION", "Authentication credentials not found."
                )
            return self._route(method, path, query, body)
        except ApiFailure as failure:
            return (
                failure.status,
                {
                    "status": "error",
                    "message": failure.message,
                    "category": failure.category,
                    "correlationId": "fake",
                },
                {},
            )

    def _token(self, raw: bytes) -> dict:
        form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        if form.get("grant_type") != "refresh_token" or form.get("refresh_token") not in (
            self.refresh_tokens
        ):
            raise ApiFailure(400, "BAD_REFRESH_TOKEN", "missing or unknown refresh token")
        self.issued += 1
        token = f"oauth-access-{self.issued}"
        self.tokens.add(token)
        return {
            "token_type": "bearer",
            "access_token": token,
            "refresh_token": form["refresh_token"],
            "expires_in": self.refresh_tokens[form["refresh_token"]],
        }

    def _route(self, method: str, path: str, query: dict, body):
        parts = path.strip("/").split("/")
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) >= 4:
            object_type = SINGULAR.get(parts[3], parts[3])
            rest = parts[4:]
            if method == "POST" and rest == ["search"]:
                return 200, self._search(object_type, body), {}
            if method == "GET" and not rest:
                return 200, self._list(object_type, query), {}
            if method == "POST" and rest == ["batch", "read"]:
                return self._batch_read(object_type, body)
            if method == "POST" and rest == ["batch", "update"]:
                return 200, self._batch_update(object_type, body), {}
            if method == "POST" and rest == ["batch", "create"]:
                return 201, self._batch_create(object_type, body), {}
        if parts[:3] == ["crm", "v4", "associations"] and parts[5:] == ["batch", "read"]:
            return self._associations(parts[3], parts[4], body)
        if parts[:3] == ["crm", "v3", "properties"] and len(parts) >= 4:
            object_type = SINGULAR.get(parts[3], parts[3])
            if parts[4:] == ["groups"]:
                return self._definitions(object_type, method, body, "group")
            if len(parts) == 4:
                return self._definitions(object_type, method, body, "property")
        if method == "GET" and parts[:3] == ["crm", "v3", "pipelines"] and len(parts) == 4:
            return 200, {"results": [self._pipeline_view(p) for p in
                                     self.pipelines.get(parts[3], [])]}, {}  # fmt: skip
        if method == "POST" and parts[:3] == ["communication-preferences", "v4", "statuses"]:
            if query.get("channel") != ["EMAIL"]:
                raise ApiFailure(400, "VALIDATION_ERROR", "channel is required")
            wide = parts[3:] == ["batch", "unsubscribe-all", "read"]
            if not wide and parts[3:] != ["batch", "read"]:
                raise ApiFailure(404, "OBJECT_NOT_FOUND", f"no route {path}")
            store, key = (
                (self.wide_statuses, "wideStatuses") if wide else (self.statuses, "statuses")
            )
            results = [
                {"subscriberIdString": email,
                 key: [{**status, "subscriberIdString": email}
                       for status in store.get(email.lower(), [])]}
                for email in body["inputs"]
            ]  # fmt: skip
            return 200, self._batch_answer(results), {}
        raise ApiFailure(404, "OBJECT_NOT_FOUND", f"no route {method} {path}")

    # -- endpoints ------------------------------------------------------------

    def _batch_answer(self, results: list, errors: list | None = None) -> dict:
        out = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso(self.now_ms),
            "completedAt": iso(self.now_ms),
        }
        if errors:
            out["numErrors"] = len(errors)
            out["errors"] = [
                {"status": "error", "links": {}, "errors": [], **error} for error in errors
            ]
        return out

    def _pipeline_view(self, pipeline: dict) -> dict:
        stamp = {"createdAt": "2024-01-01T00:00:00Z", "updatedAt": "2024-01-01T00:00:00Z",
                 "archived": False}  # fmt: skip
        stages = [{**stamp, "displayOrder": n, **stage}
                  for n, stage in enumerate(pipeline.get("stages") or ())]  # fmt: skip
        return {**stamp, "displayOrder": 0, **pipeline, "stages": stages}

    def _type_of(self, object_type: str, name: str) -> str:
        declared = self.property_defs[object_type].get(name)
        if declared:
            return declared["type"]
        if name in DATETIMES:
            return "datetime"
        return "number" if name in NUMBERS else "string"

    def _value(self, object_type: str, name: str, value):
        kind = self._type_of(object_type, name)
        if value is None:
            return None
        if kind == "datetime":
            return to_ms(value)
        if kind == "number":
            return float(value)
        return str(value)

    def _matches(self, object_type: str, record: dict, flt: dict) -> bool:
        name, op = flt["propertyName"], flt["operator"]
        have = self._value(object_type, name, record["properties"].get(name))
        if op == "HAS_PROPERTY":
            return have is not None
        if op == "NOT_HAS_PROPERTY":
            return have is None
        if op == "IN":
            return have in [self._value(object_type, name, v) for v in flt.get("values", [])]
        want = self._value(object_type, name, flt.get("value"))
        if have is None:
            return op == "NEQ"
        return {
            "EQ": have == want, "NEQ": have != want, "GT": have > want,
            "GTE": have >= want, "LT": have < want, "LTE": have <= want,
        }[op]  # fmt: skip

    def _view(self, object_type: str, record: dict, properties) -> dict:
        modified = MODIFIED.get(object_type, "hs_lastmodifieddate")
        names = set(properties or ()) | {"hs_object_id", "createdate", modified}
        view = {k: v for k, v in record.items() if k != "properties"}
        view["properties"] = {n: record["properties"].get(n) for n in sorted(names)}
        return view

    def _search(self, object_type: str, body: dict) -> dict:
        limit = int(body.get("limit") or 10)
        after = int(body.get("after") or 0)
        if limit > 200:
            raise ApiFailure(400, "VALIDATION_ERROR", "limit must be at most 200")
        if after >= self.search_limit:
            raise ApiFailure(
                400, "VALIDATION_ERROR",
                f"Search results are limited to {self.search_limit} results per query.",
            )  # fmt: skip
        groups = body.get("filterGroups") or []
        sorts = body.get("sorts") or []
        names = sorted({f["propertyName"] for g in groups for f in g["filters"]}
                       | {s["propertyName"] for s in sorts})
        key = (object_type, json.dumps([groups, sorts], sort_keys=True), self._changes,
               tuple(self._type_of(object_type, name) for name in names))
        if key not in self._searches:
            if len(self._searches) > 16:
                self._searches.clear()
            self._searches[key] = self._matching(object_type, groups, sorts)
        live = self._searches[key]
        end = min(after + limit, self.search_limit)
        page = live[after:end]
        out = {
            "total": len(live),
            "results": [self._view(object_type, r, body.get("properties")) for r in page],
        }
        if len(live) > end or (end == self.search_limit and len(live) > end):
            out["paging"] = {"next": {"after": str(end)}}
        return out

    def _matching(self, object_type: str, groups: list, sorts: list) -> list[dict]:
        """Return the live records a search's filter groups match, in its sort order."""
        live = [r for r in self.objects[object_type].values() if not r["archived"]]
        if groups:
            live = [
                r
                for r in live
                if any(all(self._matches(object_type, r, f) for f in g["filters"]) for g in groups)
            ]
        # HubSpot leaves the order of equal sort values unspecified; the fake
        # orders them by id as text so nothing can rely on numeric id order.
        live.sort(key=lambda r: r["id"])
        for sort in reversed(sorts):
            name = sort["propertyName"]
            live.sort(
                key=lambda r: (
                    (v := self._value(object_type, name, r["properties"].get(name))) is None,
                    v if v is not None else 0,
                ),
                reverse=sort.get("direction") == "DESCENDING",
            )
        return live

    def _list(self, object_type: str, query: dict) -> dict:
        archived = (query.get("archived") or ["false"])[0].lower() == "true"
        limit = int((query.get("limit") or ["10"])[0])
        after = int((query.get("after") or ["0"])[0])
        names = [n for v in query.get("properties", []) for n in v.split(",") if n]
        records = sorted(
            (r for r in self.objects[object_type].values() if r["archived"] == archived),
            key=lambda r: int(r["id"]),
        )
        page = records[after : after + limit]
        out = {"results": [self._view(object_type, r, names) for r in page]}
        if len(records) > after + limit:
            out["paging"] = {"next": {"after": str(after + limit), "link": "?after="}}
        return out

    def _batch_read(self, object_type: str, body: dict):
        inputs = body.get("inputs") or []
        if len(inputs) > BATCH_LIMIT:
            raise ApiFailure(400, "VALIDATION_ERROR", "at most 100 inputs per batch")
        results, missing = [], []
        for item in inputs:
            record = self.objects[object_type].get(str(item["id"]))
            if record is None or record["archived"]:
                missing.append(str(item["id"]))
            else:
                results.append(self._view(object_type, record, body.get("properties")))
        if missing:
            error = {
                "category": "OBJECT_NOT_FOUND",
                "message": "Could not get some objects, they may be deleted or not exist.",
                "context": {"ids": missing},
            }
            return 207, self._batch_answer(results, [error]), {}
        return 200, self._batch_answer(results), {}

    def _check_properties(self, object_type: str, properties: dict) -> None:
        known = STANDARD.get(object_type)
        if known is None:
            return
        for name in properties:
            if name not in known and name not in self.property_defs[object_type]:
                raise ApiFailure(
                    400, "VALIDATION_ERROR", f'Property "{name}" does not exist'
                )  # fmt: skip

    def _batch_update(self, object_type: str, body: dict) -> dict:
        inputs = body.get("inputs") or []
        if len(inputs) > BATCH_LIMIT:
            raise ApiFailure(400, "VALIDATION_ERROR", "at most 100 inputs per batch")
        for item in inputs:
            self._check_properties(object_type, item["properties"])
            if str(item["id"]) not in self.objects[object_type]:
                raise ApiFailure(404, "OBJECT_NOT_FOUND", f"no {object_type} {item['id']}")
        results = []
        for item in inputs:
            self.update(object_type, item["id"], item["properties"])
            results.append(
                self._view(object_type, self.record(object_type, item["id"]), item["properties"])
            )
        return self._batch_answer(results)

    def _batch_create(self, object_type: str, body: dict) -> dict:
        inputs = body.get("inputs") or []
        if len(inputs) > BATCH_LIMIT:
            raise ApiFailure(400, "VALIDATION_ERROR", "at most 100 inputs per batch")
        # HubSpot validates the whole batch first: one invalid input creates nothing.
        for n, item in enumerate(inputs):
            owner = (item.get("properties") or {}).get("hubspot_owner_id")
            if owner is not None and str(owner) not in self.owners:
                raise ApiFailure(
                    400, "VALIDATION_ERROR",
                    f"Property values were not valid: input {n}: {owner} is not a valid owner id",
                )  # fmt: skip
            for link in item.get("associations") or ():
                types = link.get("types") or []
                if not types or "associationTypeId" not in types[0]:
                    raise ApiFailure(400, "VALIDATION_ERROR", "association types are required")
                target = str(link["to"]["id"])
                target_type = "contacts" if types[0]["associationTypeId"] == 204 else "unknown"
                if target not in self.objects[target_type]:
                    raise ApiFailure(
                        400, "VALIDATION_ERROR",
                        f"input {n}: association target {target_type} {target} does not exist",
                    )  # fmt: skip
        results = []
        for item in inputs:
            record_id = self.add(object_type, item.get("properties") or {})
            for link in item.get("associations") or ():
                self.associate(object_type, record_id, "contacts", str(link["to"]["id"]))
            results.append(
                self._view(object_type, self.record(object_type, record_id), item.get("properties"))
            )
        return self._batch_answer(results)

    def _associations(self, from_type: str, to_type: str, body: dict):
        a, b = SINGULAR.get(from_type, from_type), SINGULAR.get(to_type, to_type)
        if len(body.get("inputs") or []) > ASSOCIATIONS_LIMIT:
            raise ApiFailure(400, "VALIDATION_ERROR", "at most 1000 inputs per batch")
        links = self.links.get((a, b), {})
        results, missing = [], []
        for item in body.get("inputs") or []:
            targets = sorted(links.get(str(item["id"])) or (), key=int)
            if not targets:
                missing.append(str(item["id"]))
                continue
            start = offset_of(item["after"]) if item.get("after") else 0
            end = start + self.association_page
            result = {
                "from": {"id": str(item["id"])},
                "to": [
                    {
                        "toObjectId": str(t),
                        "associationTypes": [
                            {"category": "HUBSPOT_DEFINED", "typeId": 1, "label": None}
                        ],
                    }
                    for t in targets[start:end]
                ],
            }
            if end < len(targets):
                result["paging"] = {"next": {"after": opaque(end)}}
            results.append(result)
        errors = [
            {
                "category": "OBJECT_NOT_FOUND",
                "message": f"No {b} is associated with {a} {m}.",
                "context": {"fromObjectId": [m]},
            }
            for m in missing
        ]
        return (207 if errors else 200), self._batch_answer(results, errors), {}

    def _definitions(self, object_type: str, method: str, body, what: str):
        store = self.groups[object_type] if what == "group" else self.property_defs[object_type]
        view = self._group_view if what == "group" else self._property_view
        if method == "GET":
            return 200, {"results": [view(d) for d in store.values()]}, {}
        name = body.get("name")
        if not name or not body.get("label"):
            raise ApiFailure(400, "VALIDATION_ERROR", f"a {what} needs a name and a label")
        if name in store:
            raise ApiFailure(409, "CONFLICT", f"A {what} named '{name}' already exists.")
        if what == "property" and body.get("groupName") not in self.groups[object_type]:
            group = body.get("groupName")
            raise ApiFailure(400, "VALIDATION_ERROR", f"group {group} does not exist")
        store[name] = dict(body)
        return 201, view(store[name]), {}

    @staticmethod
    def _group_view(group: dict) -> dict:
        return {"displayOrder": -1, "archived": False, **group}

    @staticmethod
    def _property_view(definition: dict) -> dict:
        """Answer a property as HubSpot does: every documented required field filled."""
        return {
            "label": definition["name"], "type": "string", "fieldType": "text",
            "groupName": "contactinformation", "description": "", "options": [],
            **definition,
        }  # fmt: skip
