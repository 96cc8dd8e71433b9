"""A stateful fake Salesforce org served through ``responses`` (simple-salesforce needs https).

It answers the real wire protocol the connector uses: OAuth client-credentials
login, SOQL ``query`` / ``queryAll`` with ``nextRecordsUrl`` paging (child
subqueries page too: a parent's relationship comes back ``done: false`` with
its own ``nextRecordsUrl``), the ``deleted`` resource, ``composite/sobjects``
(a field the object lacks fails the whole request with a 400; converted Leads,
purged and malformed ids fail their record), Bulk API 2.0 query jobs
(``UploadComplete``, ``InProgress``, then ``JobComplete`` or ``Failed``, results
behind an opaque ``Sforce-Locator``) and the Metadata API's SOAP
``readMetadata`` / ``upsertMetadata``. Records are stamped with milliseconds,
as Salesforce does. Every REST answer carries ``Sforce-Limit-Info``; tests can
expire the session, queue faults (5xx bursts, ``REQUEST_LIMIT_EXCEEDED``), lose
the answer to a write that was applied, and move the org's clock.
"""

from __future__ import annotations

import base64
import csv
import io
import itertools
import json
import re
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse
from xml.etree import ElementTree as ET

import requests
import responses

from tests.connectors.salesforce import soql

DOMAIN = "fake-org.my"
INSTANCE = f"{DOMAIN}.salesforce.com"
VERSION = "59.0"
BASE = f"https://{INSTANCE}/services/data/v{VERSION}"
MD_NS = "http://soap.sforce.com/2006/04/metadata"
SOAP_NS = "http://schemas.xmlsoap.org/soap/envelope/"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
INTEGRATION_USER = "005Fk000000INTEGAAA"
CONSUMER = ("fake-key", "fake-secret")

PREFIXES = {
    "Account": "001", "Contact": "003", "Lead": "00Q", "Opportunity": "006",
    "OpportunityLineItem": "00k", "OpportunityContactRole": "00K", "Product2": "01t",
    "Asset": "02i", "Contract": "800", "Case": "500", "Task": "00T", "Campaign": "701",
    "CampaignMember": "00v", "User": "005",
}
SYSTEM_FIELDS = {"Id", "IsDeleted", "CreatedDate", "LastModifiedDate", "SystemModstamp",
                 "LastModifiedById", "CreatedById"}
STANDARD_FIELDS = {
    "Account": {"Name", "Website", "OwnerId", "Type"},
    "Contact": {"Name", "Email", "Phone", "MobilePhone", "OwnerId", "AccountId",
                "HasOptedOutOfEmail", "DoNotCall", "HasOptedOutOfFax"},
    "Lead": {"Name", "Email", "Phone", "MobilePhone", "OwnerId", "Company", "IsConverted",
             "HasOptedOutOfEmail", "DoNotCall", "HasOptedOutOfFax"},
    "Opportunity": {"Name", "IsWon", "IsClosed", "CloseDate", "Amount", "AccountId", "StageName",
                    "OwnerId"},
    "OpportunityLineItem": {"OpportunityId", "Product2Id", "TotalPrice", "Quantity"},
    "OpportunityContactRole": {"OpportunityId", "ContactId", "IsPrimary", "Role"},
    "Product2": {"Name", "ProductCode", "Family"},
    "Asset": {"Name", "ContactId", "AccountId", "Product2Id", "PurchaseDate", "InstallDate",
              "Price"},
    "Contract": {"AccountId", "Status", "StatusCode", "StartDate", "EndDate", "OwnerId"},
    "Case": {"ContactId", "IsClosed", "OwnerId", "Subject", "Status"},
    "Task": {"WhoId", "Subject", "TaskSubtype", "Type", "IsClosed", "Status", "CompletedDateTime",
             "OwnerId", "Description", "ActivityDate", "Priority"},
    "Campaign": {"Name", "Type", "StartDate", "EndDate", "IsActive", "OwnerId"},
    "CampaignMember": {"ContactId", "LeadId", "CampaignId", "Status"},
    "User": {"Name", "Username"},
}
CHILDREN = {
    ("Opportunity", "OpportunityLineItems"): ("OpportunityLineItem", "OpportunityId"),
    ("Opportunity", "OpportunityContactRoles"): ("OpportunityContactRole", "OpportunityId"),
}
RELATIONSHIP_TARGETS = {"Account": "Account", "Product2": "Product2", "Campaign": "Campaign",
                        "Opportunity": "Opportunity", "Contact": "Contact", "Owner": "User"}
# Fields the plugin's metadata must carry per CustomField type, as Salesforce insists.
REQUIRED_BY_TYPE = {
    "Text": ("length",), "LongTextArea": ("length", "visibleLines"),
    "Number": ("precision", "scale"), "Picklist": ("valueSet",),
    "Date": (), "DateTime": (), "Checkbox": (),
}


def sf_datetime(moment: datetime) -> str:
    """Format a datetime as Salesforce's REST API does, milliseconds included."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def locator_for(offset: int) -> str:
    """Make an opaque Bulk API 2.0 ``Sforce-Locator`` for a result offset."""
    return base64.b64encode(f"{offset:08d}".encode()).decode().rstrip("=")


def offset_for(locator: str) -> int:
    """Read an offset back from a locator made by ``locator_for``."""
    return int(base64.b64decode(locator + "=" * (-len(locator) % 4)).decode())


def _json(status: int, body: Any, headers: dict | None = None) -> tuple[int, dict, str]:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body)


class FakeSalesforce:
    """One fake org: its records, schema, metadata, session, quota and clock."""

    def __init__(self, mock: responses.RequestsMock, *, now: datetime | None = None,
                 page_size: int = 2000, api_total: int = 100_000) -> None:
        self.now = now or datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
        self.page_size = page_size
        self.api_used = 0
        self.api_total = api_total
        self.tables: dict[str, dict[str, dict]] = {name: {} for name in STANDARD_FIELDS}
        self.schema: dict[str, set[str]] = {name: set(fields) | SYSTEM_FIELDS
                                            for name, fields in STANDARD_FIELDS.items()}
        self.index: dict[str, tuple[str, dict]] = {}
        self.deleted_log: list[tuple[str, str, datetime]] = []
        self.metadata: dict[tuple[str, str], dict] = {}
        self.counter = itertools.count(1)
        self.sessions = itertools.count(1)
        self.token = self._new_token()
        self.faults: deque[tuple[int, Any, str | None]] = deque()  # (status, body, only)
        self.cursors: dict[str, tuple[list[dict], int]] = {}  # locator -> (rows, page size)
        self.child_page_size = 200  # child records per relationship before it pages
        self.jobs: dict[str, dict] = {}
        self.job_polls = 1  # polls a Bulk job answers InProgress before it completes
        self.failing_jobs: list[str] = []  # errorMessage of the next jobs to fail
        self.lost_writes = 0  # composite writes applied whose answer is then lost
        self.ticks = itertools.count(1)
        self.queries: list[tuple[str, str]] = []  # (endpoint, SOQL) in order
        self.collections: list[tuple[str, int]] = []  # (method, records) per composite call
        self.logins = 0
        self.expire_countdown: int | None = None
        self.before_write: Callable[[], Any] | None = None  # runs once, before the next write
        self._register(mock)

    # --- test helpers --------------------------------------------------------------------

    def advance(self, **delta: float) -> datetime:
        """Move the org's clock forward."""
        self.now += timedelta(**delta)
        return self.now

    def add_field(self, sobject: str, name: str) -> None:
        """Create a custom field, as an admin would in Setup."""
        self.schema[sobject].add(name)

    def insert(self, sobject: str, **fields: Any) -> str:
        """Create a record now and return its Id."""
        self._check_fields(sobject, fields)
        record_id = f"{PREFIXES.get(sobject, 'a0F')}Fk{next(self.counter):010d}AAA"
        stamp = self._stamp()
        record = {"Id": record_id, "IsDeleted": False, "CreatedDate": stamp,
                  "LastModifiedDate": stamp, "SystemModstamp": stamp,
                  "CreatedById": "005Fk000000ADMINAAA", "LastModifiedById": "005Fk000000ADMINAAA",
                  **fields}
        self.tables.setdefault(sobject, {})[record_id] = record
        self.index[record_id] = (sobject, record)
        return record_id

    def update(self, record_id: str, *, by: str = "005Fk000000ADMINAAA", **fields: Any) -> None:
        """Change a record now."""
        sobject, record = self.index[record_id]
        self._check_fields(sobject, fields)
        record.update(fields)
        self._touch(record, by)

    def touch_stamp(self, record_id: str, moment: datetime) -> None:
        """Set a record's SystemModstamp directly (a long transaction committing late)."""
        self.index[record_id][1]["SystemModstamp"] = sf_datetime(moment)

    def delete(self, record_id: str) -> None:
        """Move a record to the recycle bin."""
        sobject, record = self.index[record_id]
        record["IsDeleted"] = True
        self._touch(record, "005Fk000000ADMINAAA")
        self.deleted_log.append((sobject, record_id, self.now))

    def purge(self, record_id: str) -> None:
        """Empty a deleted record from the recycle bin: only getDeleted still knows it."""
        sobject, _ = self.index.pop(record_id)
        del self.tables[sobject][record_id]

    def record(self, record_id: str) -> dict:
        """Return a record as stored."""
        return self.index[record_id][1]

    def fail_next(self, status: int, body: Any = None, times: int = 1,
                  only: str | None = None) -> None:
        """Answer the next REST calls (whose URL contains ``only``, if given) with an error."""
        for _ in range(times):
            self.faults.append((status, body if body is not None else [
                {"message": "Service Unavailable", "errorCode": "SERVER_UNAVAILABLE"}], only))

    def drop_connections(self, times: int = 1) -> None:
        """Reset the connection on the next REST calls, as a flaky network does."""
        for _ in range(times):
            self.faults.append((0, requests.ConnectionError("Connection reset by peer"), None))

    def limit_exceeded(self, times: int = 1, *, daily: bool = False) -> None:
        """Answer the next REST calls with REQUEST_LIMIT_EXCEEDED."""
        message = ("TotalRequests Limit exceeded." if daily
                   else "ConcurrentPerOrgLongTxn Limit exceeded.")
        self.fail_next(403, [{"message": message, "errorCode": "REQUEST_LIMIT_EXCEEDED"}], times)

    def expire_session(self, after_calls: int = 0) -> None:
        """Invalidate the current session (after some more calls); the client must log in again."""
        if after_calls:
            self.expire_countdown = after_calls
        else:
            self.token = self._new_token()

    def _new_token(self) -> str:
        return f"00DFk0000000001!session{next(self.sessions)}"

    def _stamp(self) -> str:
        # A write lands at a millisecond of its own within the org clock's current
        # second, as Salesforce's stamps do; a run that starts at "now" leaves it to
        # the next run.
        return sf_datetime(self.now + timedelta(milliseconds=1 + next(self.ticks) % 998))

    def _touch(self, record: dict, by: str) -> None:
        stamp = self._stamp()
        record["LastModifiedDate"] = record["SystemModstamp"] = stamp
        record["LastModifiedById"] = by

    def _check_fields(self, sobject: str, fields: dict) -> None:
        unknown = set(fields) - self.schema.setdefault(sobject, set(SYSTEM_FIELDS))
        if unknown:
            raise KeyError(f"{sobject} has no fields {sorted(unknown)}")

    # --- wire ----------------------------------------------------------------------------

    def _register(self, mock: responses.RequestsMock) -> None:
        rest = [
            ("GET", rf"{re.escape(BASE)}/(query|queryAll)/?(\?.*)?$", self._query),
            ("GET", rf"{re.escape(BASE)}/query/(?P<locator>[\w]+)-(?P<offset>\d+)$", self._more),
            ("GET", rf"{re.escape(BASE)}/sobjects/(?P<sobject>\w+)/deleted/.*$", self._deleted),
            ("PATCH", rf"{re.escape(BASE)}/composite/sobjects$", self._collection),
            ("POST", rf"{re.escape(BASE)}/composite/sobjects$", self._collection),
            ("DELETE", rf"{re.escape(BASE)}/composite/sobjects\?.*$", self._collection),
            ("POST", rf"{re.escape(BASE)}/jobs/query$", self._bulk_create),
            ("GET", rf"{re.escape(BASE)}/jobs/query/(?P<job>\w+)$", self._bulk_job),
            ("GET", rf"{re.escape(BASE)}/jobs/query/(?P<job>\w+)/results.*$", self._bulk_results),
        ]
        for method, pattern, handler in rest:
            mock.add_callback(method, re.compile(pattern), callback=self._rest(handler, pattern))
        mock.add_callback("POST", f"https://{INSTANCE}/services/oauth2/token",
                          callback=self._token)
        mock.add_callback("POST", re.compile(
            rf"https://{re.escape(INSTANCE)}/services/Soap/m/{VERSION}/?$"), callback=self._soap)

    def _rest(self, handler: Callable[..., tuple], pattern: str) -> Callable:
        compiled = re.compile(pattern)

        def callback(request: Any) -> tuple[int, dict, str]:
            if self.expire_countdown is not None:
                self.expire_countdown -= 1
                if self.expire_countdown < 0:
                    self.expire_countdown = None
                    self.token = self._new_token()
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                return _json(401, [{"message": "Session expired or invalid",
                                    "errorCode": "INVALID_SESSION_ID"}])
            self.api_used += 1
            limit = {"Sforce-Limit-Info": f"api-usage={self.api_used}/{self.api_total}"}
            fault = next((f for f in self.faults if f[2] is None or f[2] in request.url), None)
            if fault is not None:
                self.faults.remove(fault)
                status, body, _ = fault
                if isinstance(body, Exception):
                    return status, {}, body  # responses raises it, as requests would
                return _json(status, body, limit)
            match = compiled.match(request.url)
            status, headers, body = handler(request, **match.groupdict())
            return status, {**headers, **limit}, body

        return callback

    def _token(self, request: Any) -> tuple[int, dict, str]:
        form = parse_qs(request.body if isinstance(request.body, str) else request.body.decode())
        if form.get("grant_type") != ["client_credentials"]:
            return _json(400, {"error": "unsupported_grant_type"})
        self.logins += 1
        return _json(200, {"access_token": self.token, "instance_url": f"https://{INSTANCE}",
                           "token_type": "Bearer"})

    # --- SOQL ----------------------------------------------------------------------------

    def _query(self, request: Any, *groups: Any) -> tuple[int, dict, str]:
        url = urlparse(request.url)
        endpoint = "queryAll" if "/queryAll" in url.path else "query"
        text = parse_qs(url.query)["q"][0]
        self.queries.append((endpoint, text))
        try:
            query = soql.parse(text)
            rows = self.run(query, include_deleted=endpoint == "queryAll")
        except soql.SoqlError as exc:
            return _json(400, [{"message": str(exc), "errorCode": "MALFORMED_QUERY"}])
        except LookupError as exc:
            return _json(400, [{"message": exc.args[0], "errorCode": "INVALID_FIELD"}])
        if query.count:
            return _json(200, {"totalSize": len(rows), "done": True, "records": []})
        locator = f"01gFk{next(self.counter):010d}"
        self.cursors[locator] = (rows, self.page_size)
        return self._page(locator, 0)

    def _more(self, request: Any, locator: str, offset: str) -> tuple[int, dict, str]:
        if locator not in self.cursors:
            return _json(400, [{"message": "invalid query locator",
                                "errorCode": "INVALID_QUERY_LOCATOR"}])
        return self._page(locator, int(offset))

    def _page(self, locator: str, offset: int) -> tuple[int, dict, str]:
        rows, size = self.cursors[locator]
        page = rows[offset:offset + size]
        body: dict[str, Any] = {"totalSize": len(rows), "records": page}
        end = offset + len(page)
        body["done"] = end >= len(rows)
        if not body["done"]:
            body["nextRecordsUrl"] = f"/services/data/v{VERSION}/query/{locator}-{end}"
        return _json(200, body)

    def run(self, query: soql.Query, *, include_deleted: bool,
            parent: tuple[str, str] | None = None) -> list[dict]:
        """Run a parsed query against the tables."""
        sobject = query.object
        if parent is None:
            self._children: dict[tuple[str, str], dict] = {}  # this query's child groups
        else:
            sobject, key = CHILDREN[(parent[0], query.object)]
        if sobject not in self.tables:
            raise soql.SoqlError(f"sObject type '{sobject}' is not supported")
        for path in query.fields:
            if isinstance(path, str):
                self._resolve_path(sobject, path)
        rows = []
        candidates = self.tables[sobject].values()
        if parent is not None:
            # A subquery runs once per parent row: group the children by parent once per
            # query (in table order), instead of reading every child for every parent.
            groups = self._children.get((sobject, key))
            if groups is None:
                groups = self._children[(sobject, key)] = {}
                for record in self.tables[sobject].values():
                    groups.setdefault(record.get(key), []).append(record)
            candidates = groups.get(parent[1], [])
        for record in candidates:
            if record.get("IsDeleted") and not include_deleted:
                continue
            if parent is not None and record.get(key) != parent[1]:
                continue
            if query.where is not None and not soql.evaluate(
                    query.where, lambda path, rec=record, obj=sobject: self._value(obj, rec, path)):
                continue
            rows.append(record)
        for path, descending in reversed(query.order):
            rows.sort(key=lambda rec, p=path: _sort_key(self._value(sobject, rec, p)),
                      reverse=descending)
        if query.limit is not None:
            rows = rows[:query.limit]
        return [self._project(sobject, record, query.fields) for record in rows]

    def _child_result(self, children: list[dict]) -> dict:
        """A relationship's records: the first page, and where the rest are when they page."""
        size = self.child_page_size
        result: dict[str, Any] = {"totalSize": len(children), "done": len(children) <= size,
                                  "records": children[:size]}
        if not result["done"]:
            locator = f"01gFk{next(self.counter):010d}"
            self.cursors[locator] = (children, size)
            result["nextRecordsUrl"] = f"/services/data/v{VERSION}/query/{locator}-{size}"
        return result

    def _resolve_path(self, sobject: str, path: str) -> None:
        *parents, leaf = path.split(".")
        current: str | None = sobject
        for relationship in parents:
            if current is None:
                return
            fk = _foreign_key(relationship)
            if fk not in self.schema.get(current, ()):
                raise LookupError(f"Didn't understand relationship '{relationship}' in field "
                                  f"path. No such column '{relationship}' on entity '{current}'")
            current = RELATIONSHIP_TARGETS.get(relationship)
        if current is not None and leaf not in self.schema.get(current, ()):
            raise LookupError(f"No such column '{leaf}' on entity '{current}'. If you are "
                              "attempting to use a custom field, be sure to append the '__c' "
                              "after the custom field name.")

    def _value(self, sobject: str, record: dict | None, path: str) -> Any:
        *parents, leaf = path.split(".")
        for relationship in parents:
            if record is None:
                return None
            target = record.get(_foreign_key(relationship))
            record = self.index.get(target, (None, None))[1] if target else None
        if record is None:
            return None
        if leaf not in record and leaf not in self.schema.get(sobject, ()) and not parents:
            raise LookupError(f"No such column '{leaf}' on entity '{sobject}'")
        return record.get(leaf)

    def _project(self, sobject: str, record: dict, fields: list) -> dict:
        row: dict[str, Any] = {"attributes": {
            "type": sobject, "url": f"/services/data/v{VERSION}/sobjects/{sobject}/{record['Id']}"}}
        for item in fields:
            if isinstance(item, soql.Query):
                children = self.run(item, include_deleted=False, parent=(sobject, record["Id"]))
                row[item.object] = self._child_result(children) if children else None
                continue
            *parents, leaf = item.split(".")
            target, current = row, record
            for relationship in parents:
                fk_value = current.get(_foreign_key(relationship)) if current else None
                related = self.index.get(fk_value, (None, None)) if fk_value else (None, None)
                current = related[1]
                if current is None:
                    target[relationship] = None
                    break
                nested = target.get(relationship)
                if not isinstance(nested, dict):
                    nested = {"attributes": {"type": related[0], "url": ""}}
                    target[relationship] = nested
                target = nested
            else:
                target[leaf] = current.get(leaf) if current else None
        return row

    # --- deleted, collections ------------------------------------------------------------

    def _deleted(self, request: Any, sobject: str) -> tuple[int, dict, str]:
        params = parse_qs(urlparse(request.url).query)
        start = soql.parse_datetime(unquote(params["start"][0]))
        end = soql.parse_datetime(unquote(params["end"][0]))
        earliest = self.now - timedelta(days=30)
        if start < earliest:
            return _json(400, [{"message": "startDate before earliestDateAvailable",
                                "errorCode": "INVALID_REPLICATION_DATE"}])
        found = [{"id": record_id, "deletedDate": sf_datetime(when)}
                 for obj, record_id, when in self.deleted_log
                 if obj == sobject and start <= when <= end]
        return _json(200, {"deletedRecords": found, "earliestDateAvailable": sf_datetime(earliest),
                           "latestDateCovered": sf_datetime(end)})

    def _collection(self, request: Any) -> tuple[int, dict, str]:
        if request.method == "DELETE":
            ids = parse_qs(urlparse(request.url).query)["ids"][0].split(",")
            self.collections.append(("DELETE", len(ids)))
            return _json(200, [self._delete_one(record_id) for record_id in ids])
        body = json.loads(request.body)
        records = body["records"]
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        self.collections.append((request.method, len(records)))
        if len(records) > 200:
            return _json(400, [{"message": "Maximum number of records is 200",
                                "errorCode": "EXCEEDED_ID_LIMIT"}])
        # A field the object lacks is a malformed request: nothing is written.
        for record in records:
            sobject = record["attributes"]["type"]
            unknown = sorted(set(record) - {"attributes", "id", "Id"}
                             - self.schema.get(sobject, set()))
            if unknown:
                return _json(400, [{"message": f"No such column '{unknown[0]}' on sobject of "
                                               f"type {sobject}", "errorCode": "INVALID_FIELD"}])
        results = [self._write(request.method, dict(record)) for record in records]
        if self.lost_writes:
            self.lost_writes -= 1
            return 0, {}, requests.ConnectionError("Connection aborted: RemoteDisconnected")
        return _json(200, results)

    def _delete_one(self, record_id: str) -> dict:
        if record_id not in self.index or self.index[record_id][1].get("IsDeleted"):
            return {"id": record_id, "success": False, "errors": [{
                "statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}]}
        self.delete(record_id)
        return {"id": record_id, "success": True, "errors": []}

    @staticmethod
    def _failure(code: str, message: str, record_id: str | None = None,
                 fields: list[str] | None = None) -> dict:
        result: dict[str, Any] = {"success": False, "errors": [
            {"statusCode": code, "message": message, "fields": fields or []}]}
        if record_id:
            result["id"] = record_id
        return result

    def _reference_problem(self, record_id: str, field: str) -> dict | None:
        """Refuse an id that is malformed or names no record, as Salesforce does."""
        if not re.fullmatch(r"[A-Za-z0-9]{15}([A-Za-z0-9]{3})?", record_id or ""):
            return self._failure("MALFORMED_ID", f"{field}: id value of incorrect type: "
                                 f"{record_id}", fields=[field])
        if record_id not in self.index:
            return self._failure("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id",
                                 fields=[field])
        return None

    def _write(self, method: str, record: dict) -> dict:
        sobject = record.pop("attributes")["type"]
        record_id = record.pop("id", None) or record.pop("Id", None)
        if method == "PATCH":
            problem = self._reference_problem(record_id, "Id")
            if problem:
                return {**problem, "id": record_id}
            stored = self.index[record_id][1]
            if stored.get("IsDeleted"):
                return self._failure("ENTITY_IS_DELETED", "entity is deleted", record_id)
            if sobject == "Lead" and stored.get("IsConverted"):
                return self._failure("CANNOT_UPDATE_CONVERTED_LEAD",
                                     "cannot reference converted lead", record_id)
            self.update(record_id, by=INTEGRATION_USER, **record)
            return {"id": record_id, "success": True, "errors": []}
        if record.get("WhoId"):
            problem = self._reference_problem(record["WhoId"], "WhoId")
            if problem:
                return problem
        new_id = self.insert(sobject, **record)
        self.tables[sobject][new_id]["CreatedById"] = INTEGRATION_USER
        return {"id": new_id, "success": True, "errors": []}

    # --- Bulk API 2.0 --------------------------------------------------------------------

    def _bulk_create(self, request: Any) -> tuple[int, dict, str]:
        body = json.loads(request.body)
        self.queries.append(("bulk:" + body["operation"], body["query"]))
        try:
            query = soql.parse(body["query"])
            rows = self.run(query, include_deleted=body["operation"] == "queryAll")
        except soql.SoqlError as exc:
            return _json(400, [{"message": str(exc), "errorCode": "INVALIDJOB"}])
        except LookupError as exc:
            return _json(400, [{"message": exc.args[0], "errorCode": "INVALIDJOB"}])
        job_id = f"750Fk{next(self.counter):010d}AAA"
        self.jobs[job_id] = {"rows": rows, "fields": query.fields, "state": "UploadComplete",
                             "polls": 0, "operation": body["operation"], "object": query.object,
                             "error": self.failing_jobs.pop(0) if self.failing_jobs else None}
        return _json(200, {"id": job_id, "operation": body["operation"], "object": query.object,
                           "state": "UploadComplete", "apiVersion": float(VERSION)})

    def _bulk_job(self, request: Any, job: str) -> tuple[int, dict, str]:
        if job not in self.jobs:
            return _json(404, [{"message": "job not found", "errorCode": "NOT_FOUND"}])
        info = self.jobs[job]
        info["polls"] += 1
        if info["polls"] > self.job_polls:
            info["state"] = "Failed" if info["error"] else "JobComplete"
        else:
            info["state"] = "InProgress"
        body = {"id": job, "operation": info["operation"], "object": info["object"],
                "state": info["state"]}
        if info["state"] == "Failed":
            body["errorMessage"] = info["error"]
        elif info["state"] == "JobComplete":
            body["numberRecordsProcessed"] = len(info["rows"])
        return _json(200, body)

    def _bulk_results(self, request: Any, job: str) -> tuple[int, dict, str]:
        info = self.jobs[job]
        if info["state"] != "JobComplete":
            return _json(400, [{"message": f"job {job} is {info['state']}, not JobComplete",
                                "errorCode": "INVALIDJOB"}])
        params = parse_qs(urlparse(request.url).query)
        size = int(params.get("maxRecords", ["50000"])[0])
        offset = offset_for(params["locator"][0]) if "locator" in params else 0
        rows = info["rows"][offset:offset + size]
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(info["fields"])
        for row in rows:
            writer.writerow([_csv_value(_dig(row, path)) for path in info["fields"]])
        end = offset + len(rows)
        locator = locator_for(end) if end < len(info["rows"]) else "null"
        return 200, {"Content-Type": "text/csv", "Sforce-Locator": locator,
                     "Sforce-NumberOfRecords": str(len(rows))}, out.getvalue()

    # --- Metadata API (SOAP) -------------------------------------------------------------

    def _soap(self, request: Any) -> tuple[int, dict, str]:
        root = ET.fromstring(request.body)
        session = root.find(f".//{{{MD_NS}}}SessionHeader/{{{MD_NS}}}sessionId")
        if session is None or session.text != self.token:
            return self._fault("sf:INVALID_SESSION_ID", "Invalid Session ID found in SessionHeader")
        body = root.find(f"{{{SOAP_NS}}}Body")
        call = body[0]
        name = call.tag.split("}")[1]
        if name == "readMetadata":
            kind = call.find(f"{{{MD_NS}}}type").text
            names = [item.text for item in call.findall(f"{{{MD_NS}}}fullNames")]
            records = "".join(self._record_xml(kind, full) for full in names)
            return self._envelope(f"<readMetadataResponse><result>{records}</result>"
                                  "</readMetadataResponse>")
        if name == "upsertMetadata":
            results = [self._upsert(item) for item in call.findall(f"{{{MD_NS}}}metadata")]
            return self._envelope(f"<upsertMetadataResponse>{''.join(results)}"
                                  "</upsertMetadataResponse>")
        return self._fault("sf:UNKNOWN_EXCEPTION", f"the fake does not serve {name}")

    def _record_xml(self, kind: str, full_name: str) -> str:
        stored = self.metadata.get((kind, full_name))
        if stored is None:
            return f'<records xsi:type="{kind}"/>'
        return f'<records xsi:type="{kind}">{_to_xml(stored)}</records>'

    def _upsert(self, element: ET.Element) -> str:
        kind = element.get(f"{{{XSI_NS}}}type").split(":")[-1]
        data = _from_xml(element)
        full_name = data.get("fullName", "")
        problem = self._validate(kind, data)
        if problem:
            return (f"<result><created>false</created><errors><message>{problem}</message>"
                    f"<statusCode>FIELD_INTEGRITY_EXCEPTION</statusCode></errors>"
                    f"<fullName>{full_name}</fullName><success>false</success></result>")
        created = (kind, full_name) not in self.metadata
        self.metadata[(kind, full_name)] = data
        if kind == "CustomField":
            sobject, field = full_name.split(".")
            for target in ("Task", "Event") if sobject == "Activity" else (sobject,):
                self.schema.setdefault(target, set(SYSTEM_FIELDS)).add(field)
        return (f"<result><created>{str(created).lower()}</created><fullName>{full_name}"
                f"</fullName><success>true</success></result>")

    def _validate(self, kind: str, data: dict) -> str | None:
        if not data.get("label"):
            return "label: required"
        if kind == "CustomField":
            if not re.match(r"^\w+\.\w+__c$", data.get("fullName", "")):
                return f"fullName: not Object.Field__c: {data.get('fullName')}"
            required = REQUIRED_BY_TYPE.get(data.get("type"))
            if required is None:
                return f"type: unknown field type {data.get('type')}"
            missing = [name for name in required if name not in data]
            if missing:
                return f"{data['type']} fields need {', '.join(missing)}"
            if data["fullName"].startswith("Activity.") and str(data.get("unique")) == "true":
                return "Activity fields cannot be unique"
        if kind == "PermissionSet":
            perms = data.get("fieldPermissions", [])
            for perm in perms if isinstance(perms, list) else [perms]:
                if ("CustomField", perm["field"]) not in self.metadata:
                    return f"no CustomField named {perm['field']} found"
        return None

    def _envelope(self, inner: str) -> tuple[int, dict, str]:
        return 200, {"Content-Type": "text/xml; charset=utf-8"}, (
            f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_NS}" '
            f'xmlns="{MD_NS}" xmlns:xsi="{XSI_NS}"><soapenv:Body>{inner}</soapenv:Body>'
            "</soapenv:Envelope>")

    def _fault(self, code: str, message: str) -> tuple[int, dict, str]:
        return 500, {"Content-Type": "text/xml; charset=utf-8"}, (
            f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_NS}" '
            f'xmlns:sf="{MD_NS}"><soapenv:Body><soapenv:Fault><faultcode>{code}</faultcode>'
            f"<faultstring>{message}</faultstring></soapenv:Fault></soapenv:Body>"
            "</soapenv:Envelope>")


def _foreign_key(relationship: str) -> str:
    if relationship.endswith("__r"):
        return relationship[:-3] + "__c"
    return relationship + "Id"


def _sort_key(value: Any) -> tuple:
    # Salesforce sorts nulls first in ascending order.
    return (value is not None, "" if value is None else value)


def _dig(row: dict, path: str) -> Any:
    current: Any = row
    for part in path.split("."):
        if not isinstance(current, dict):
            return None
        current = current.get(part)
    return current


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _from_xml(element: ET.Element) -> dict:
    """Read a metadata element into a dict; repeated children become lists."""
    data: dict[str, Any] = {}
    for child in element:
        key = child.tag.split("}")[1]
        item: Any = _from_xml(child) if len(child) else (child.text or "")
        if key in data:
            if not isinstance(data[key], list):
                data[key] = [data[key]]
            data[key].append(item)
        elif key in ("fieldPermissions", "value"):
            data[key] = [item]
        else:
            data[key] = item
    return data


def _to_xml(data: dict) -> str:
    parts = []
    for key, item in data.items():
        for one in item if isinstance(item, list) else [item]:
            inner = _to_xml(one) if isinstance(one, dict) else _escape(str(one))
            parts.append(f"<{key}>{inner}</{key}>")
    return "".join(parts)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
