"""The HubSpot request and answer shapes the connector relies on, and a checker for them.

Written by hand from HubSpot's API reference (objects v3, associations v4,
properties, pipelines, communication preferences v4, OAuth); only the
operations and fields the connector uses are here. Request shapes say what
the connector may send; answer shapes say what HubSpot documents for each
status: required fields must be there, and nothing undocumented may appear.
A fake that drifts from them, or a connector that starts sending something
else, fails ``check``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Shape = Callable[[Any, str], list[str]]


def _type(kind: type | tuple[type, ...], name: str) -> Shape:
    def check(value: Any, where: str) -> list[str]:
        if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
            return [f"{where}: {name} expected, got {value!r}"]
        return [] if isinstance(value, kind) else [f"{where}: {name} expected, got {value!r}"]

    return check


TEXT = _type(str, "string")
INTEGER = _type(int, "integer")
NUMBER = _type((int, float), "number")
BOOLEAN = _type(bool, "boolean")


def DATETIME(value: Any, where: str) -> list[str]:  # noqa: N802 - a shape, named like the others
    """An ISO 8601 date-time with its offset, as HubSpot writes them."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return []
    return [f"{where}: ISO 8601 date-time expected, got {value!r}"]


def enum(*words: str) -> Shape:
    def check(value: Any, where: str) -> list[str]:
        return [] if value in words else [f"{where}: one of {words} expected, got {value!r}"]

    return check


def nullable(shape: Shape) -> Shape:
    return lambda value, where: [] if value is None else shape(value, where)


def list_of(item: Shape, *, at_most: int | None = None) -> Shape:
    def check(value: Any, where: str) -> list[str]:
        if not isinstance(value, list):
            return [f"{where}: list expected, got {value!r}"]
        problems = []
        if at_most is not None and len(value) > at_most:
            problems.append(f"{where}: at most {at_most} items, got {len(value)}")
        for n, element in enumerate(value):
            problems += item(element, f"{where}[{n}]")
        return problems

    return check


def map_of(item: Shape) -> Shape:
    def check(value: Any, where: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: object expected, got {value!r}"]
        problems = []
        for key, element in value.items():
            problems += item(element, f"{where}.{key}")
        return problems

    return check


def obj(required: Mapping[str, Shape], optional: Mapping[str, Shape] | None = None) -> Shape:
    """An object with these required and optional fields, and no others."""
    optional = optional or {}

    def check(value: Any, where: str) -> list[str]:
        if not isinstance(value, dict):
            return [f"{where}: object expected, got {value!r}"]
        problems = [f"{where}: missing {name!r}" for name in required if name not in value]
        for name, element in value.items():
            shape = required.get(name) or optional.get(name)
            if shape is None:
                problems.append(f"{where}: undocumented field {name!r}")
            else:
                problems += shape(element, f"{where}.{name}")
        return problems

    return check


ANY: Shape = lambda value, where: []  # noqa: E731 - free-form by the documentation

# -- shared pieces ----------------------------------------------------------------------

PROPERTIES = map_of(nullable(TEXT))  # every property value travels as text
RECORD = obj(
    {"id": TEXT, "properties": PROPERTIES, "createdAt": DATETIME, "updatedAt": DATETIME},
    {"archived": BOOLEAN, "archivedAt": DATETIME, "propertiesWithHistory": ANY,
     "objectWriteTraceId": TEXT, "url": TEXT},
)  # fmt: skip
NEXT = obj({"after": TEXT}, {"link": TEXT})
FORWARD_PAGING = obj({}, {"next": NEXT})
PAGING = obj({}, {"next": NEXT, "prev": obj({"before": TEXT}, {"link": TEXT})})
BATCH_STATUS = enum("PENDING", "PROCESSING", "CANCELED", "COMPLETE")
STANDARD_ERROR = obj(
    {"status": TEXT, "category": TEXT, "message": TEXT, "context": map_of(list_of(TEXT)),
     "errors": list_of(ANY), "links": map_of(TEXT)},
    {"id": TEXT, "subCategory": ANY},
)  # fmt: skip


def batch(result: Shape) -> Shape:
    """A batch answer: ``200`` without errors, or ``207`` with them."""
    return obj(
        {"status": BATCH_STATUS, "results": list_of(result), "startedAt": DATETIME,
         "completedAt": DATETIME},
        {"requestedAt": DATETIME, "links": map_of(TEXT), "numErrors": INTEGER,
         "errors": list_of(STANDARD_ERROR)},
    )  # fmt: skip


ERROR = obj(
    {"message": TEXT, "correlationId": TEXT, "category": TEXT},
    {"status": TEXT, "subCategory": TEXT, "context": ANY, "links": map_of(TEXT),
     "errors": list_of(ANY)},
)  # fmt: skip
# A 429 from the rate limiter names its policy instead of a category.
RATE_LIMITED = obj(
    {"status": TEXT, "message": TEXT, "errorType": enum("RATE_LIMIT"), "correlationId": TEXT},
    {"policyName": TEXT, "groupName": TEXT},
)  # fmt: skip

# -- requests the connector sends -------------------------------------------------------

OPERATORS = enum("EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
                 "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN")
SEARCH_REQUEST = obj(
    {"filterGroups": list_of(obj({"filters": list_of(obj(
        {"propertyName": TEXT, "operator": OPERATORS},
        {"value": TEXT, "values": list_of(TEXT), "highValue": TEXT}))}), at_most=5),
     "sorts": list_of(obj({"propertyName": TEXT}, {"direction": enum("ASCENDING", "DESCENDING")}),
                      at_most=1),
     "properties": list_of(TEXT), "limit": INTEGER},
    {"after": TEXT},
)  # fmt: skip
BATCH_READ_REQUEST = obj(
    {"inputs": list_of(obj({"id": TEXT}), at_most=100), "properties": list_of(TEXT),
     "propertiesWithHistory": list_of(TEXT)},
)  # fmt: skip
BATCH_UPDATE_REQUEST = obj(
    {"inputs": list_of(obj({"id": TEXT, "properties": PROPERTIES}), at_most=100)}
)
ASSOCIATION_SPEC = obj(
    {"associationCategory": enum("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"),
     "associationTypeId": INTEGER},
)  # fmt: skip
BATCH_CREATE_REQUEST = obj(
    {"inputs": list_of(obj({"properties": PROPERTIES},
                           {"associations": list_of(obj({"to": obj({"id": TEXT}),
                                                         "types": list_of(ASSOCIATION_SPEC)})),
                            "objectWriteTraceId": TEXT}), at_most=100)},
)  # fmt: skip
ASSOCIATIONS_REQUEST = obj(
    {"inputs": list_of(obj({"id": TEXT}, {"after": TEXT}), at_most=1000)}
)
OPTION = obj({"label": TEXT, "value": TEXT, "hidden": BOOLEAN},
             {"displayOrder": INTEGER, "description": TEXT})
PROPERTY_TYPES = enum("string", "number", "date", "datetime", "enumeration", "bool")
FIELD_TYPES = enum("textarea", "text", "date", "file", "number", "select", "radio", "checkbox",
                   "booleancheckbox", "calculation_equation")
PROPERTY_CREATE = obj(
    {"name": TEXT, "label": TEXT, "type": PROPERTY_TYPES, "fieldType": FIELD_TYPES,
     "groupName": TEXT},
    {"description": TEXT, "options": list_of(OPTION), "displayOrder": INTEGER,
     "hasUniqueValue": BOOLEAN, "hidden": BOOLEAN, "formField": BOOLEAN},
)  # fmt: skip
GROUP_CREATE = obj({"name": TEXT, "label": TEXT}, {"displayOrder": INTEGER})
SUBSCRIBERS = obj({"inputs": list_of(TEXT)})

# -- answers HubSpot documents ----------------------------------------------------------

PROPERTY = obj(
    {"name": TEXT, "label": TEXT, "type": PROPERTY_TYPES, "fieldType": FIELD_TYPES,
     "groupName": TEXT, "description": TEXT, "options": list_of(OPTION)},
    {"displayOrder": INTEGER, "hasUniqueValue": BOOLEAN, "hidden": BOOLEAN, "formField": BOOLEAN,
     "calculated": BOOLEAN, "externalOptions": BOOLEAN, "archived": BOOLEAN,
     "createdAt": DATETIME, "updatedAt": DATETIME, "modificationMetadata": ANY},
)  # fmt: skip
GROUP = obj({"name": TEXT, "label": TEXT, "displayOrder": INTEGER, "archived": BOOLEAN})
STAGE = obj(
    {"id": TEXT, "label": TEXT, "displayOrder": INTEGER, "metadata": map_of(TEXT),
     "createdAt": DATETIME, "updatedAt": DATETIME, "archived": BOOLEAN},
    {"archivedAt": DATETIME, "writePermissions": TEXT},
)  # fmt: skip
PIPELINE = obj(
    {"id": TEXT, "label": TEXT, "displayOrder": INTEGER, "stages": list_of(STAGE),
     "createdAt": DATETIME, "updatedAt": DATETIME, "archived": BOOLEAN},
    {"archivedAt": DATETIME},
)  # fmt: skip
ASSOCIATION_RESULT = obj(
    {"from": obj({"id": TEXT}),
     "to": list_of(obj({"toObjectId": TEXT, "associationTypes": list_of(obj(
         {"category": enum("HUBSPOT_DEFINED", "USER_DEFINED", "INTEGRATOR_DEFINED"),
          "typeId": INTEGER}, {"label": nullable(TEXT)}))}))},
    {"paging": PAGING},
)  # fmt: skip
# Communication preferences v4: the only status words of a subscription.
V4_STATUS = enum("SUBSCRIBED", "UNSUBSCRIBED", "NOT_SPECIFIED")
SUBSCRIPTION_STATUS = obj(
    {"channel": enum("EMAIL", "WHATSAPP", "SMS"), "source": TEXT, "status": V4_STATUS,
     "subscriberIdString": TEXT, "subscriptionId": INTEGER, "timestamp": DATETIME},
    {"businessUnitId": INTEGER, "legalBasis": TEXT, "legalBasisExplanation": TEXT,
     "setStatusSuccessReason": TEXT, "subscriptionName": TEXT},
)  # fmt: skip
WIDE_STATUS = obj(
    {"channel": enum("EMAIL", "WHATSAPP", "SMS"), "status": V4_STATUS, "subscriberIdString": TEXT,
     "timestamp": DATETIME, "wideStatusType": enum("PORTAL_WIDE", "BUSINESS_UNIT_WIDE")},
    {"businessUnitId": INTEGER},
)  # fmt: skip
TOKEN = obj({"access_token": TEXT, "refresh_token": TEXT, "expires_in": INTEGER,
             "token_type": TEXT}, {"id_token": TEXT})  # fmt: skip


@dataclass(frozen=True)
class Operation:
    """One HubSpot operation: where it lives, what may be sent, what may come back."""

    name: str
    method: str
    path: str  # a regular expression over the path
    request: Shape | None  # None: no body
    answers: Mapping[int, Shape]
    query: Mapping[str, Shape] = field(default_factory=dict)

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.fullmatch(self.path, path) is not None


OBJECT = r"/crm/v3/objects/[\w-]+"
OPERATIONS = (
    Operation("search", "POST", OBJECT + "/search", SEARCH_REQUEST, {
        200: obj({"total": INTEGER, "results": list_of(RECORD)}, {"paging": FORWARD_PAGING})}),
    Operation("list", "GET", OBJECT, None, {
        200: obj({"results": list_of(RECORD)}, {"paging": FORWARD_PAGING})},
        # hubspot-api-client spells query booleans as Python does ("True").
        query={"limit": INTEGER, "after": TEXT,
               "archived": enum("true", "false", "True", "False"), "properties": TEXT}),
    Operation("batch read", "POST", OBJECT + "/batch/read", BATCH_READ_REQUEST,
              {200: batch(RECORD), 207: batch(RECORD)}),
    Operation("batch update", "POST", OBJECT + "/batch/update", BATCH_UPDATE_REQUEST,
              {200: batch(RECORD), 207: batch(RECORD)}),
    Operation("batch create", "POST", OBJECT + "/batch/create", BATCH_CREATE_REQUEST,
              {201: batch(RECORD), 207: batch(RECORD)}),
    Operation("association batch read", "POST", r"/crm/v4/associations/[\w-]+/[\w-]+/batch/read",
              ASSOCIATIONS_REQUEST,
              {200: batch(ASSOCIATION_RESULT), 207: batch(ASSOCIATION_RESULT)}),
    Operation("list properties", "GET", r"/crm/v3/properties/[\w-]+", None,
              {200: obj({"results": list_of(PROPERTY)})}, query={"archived": TEXT}),
    Operation("create property", "POST", r"/crm/v3/properties/[\w-]+", PROPERTY_CREATE,
              {201: PROPERTY}),
    Operation("list property groups", "GET", r"/crm/v3/properties/[\w-]+/groups", None,
              {200: obj({"results": list_of(GROUP)})}),
    Operation("create property group", "POST", r"/crm/v3/properties/[\w-]+/groups",
              GROUP_CREATE, {201: GROUP}),
    Operation("list pipelines", "GET", r"/crm/v3/pipelines/[\w-]+", None,
              {200: obj({"results": list_of(PIPELINE)})}),
    Operation("subscription statuses", "POST", r"/communication-preferences/v4/statuses/batch/read",
              SUBSCRIBERS, {200: batch(obj({"subscriberIdString": TEXT,
                                              "statuses": list_of(SUBSCRIPTION_STATUS)})),
                            207: batch(obj({"subscriberIdString": TEXT,
                                            "statuses": list_of(SUBSCRIPTION_STATUS)}))},
              query={"channel": enum("EMAIL")}),
    Operation("unsubscribe-all statuses", "POST",
              r"/communication-preferences/v4/statuses/batch/unsubscribe-all/read", SUBSCRIBERS,
              {200: batch(obj({"subscriberIdString": TEXT, "wideStatuses": list_of(WIDE_STATUS)}))},
              query={"channel": enum("EMAIL")}),
    Operation("refresh OAuth token", "POST", r"/oauth/v1/token",
              obj({"grant_type": enum("refresh_token"), "client_id": TEXT, "client_secret": TEXT,
                   "refresh_token": TEXT}, {"redirect_uri": TEXT}),
              {200: TOKEN}),
)  # fmt: skip


def _query_problems(operation: Operation, query: Mapping[str, list[str]]) -> list[str]:
    problems = []
    for name, values in query.items():
        shape = operation.query.get(name)
        if shape is None:
            problems.append(f"query: undocumented parameter {name!r}")
            continue
        for value in values:
            if shape is INTEGER:
                problems += [] if value.isdigit() else [f"query.{name}: integer expected"]
            else:
                problems += shape(value, f"query.{name}")
    return problems


def check_exchange(method: str, path: str, query: Mapping[str, list[str]], body: Any,
                   status: int | None, answer: Any) -> list[str]:
    """List what in one exchange differs from the documented shapes (empty: conforms)."""
    operation = next((op for op in OPERATIONS if op.matches(method, path)), None)
    if operation is None:
        return [f"{method} {path}: not an operation the connector relies on"]
    problems = _query_problems(operation, query)
    if operation.request is None:
        problems += [] if body is None else ["request: this operation takes no body"]
    else:
        problems += operation.request(body, "request")
    if status is None or status >= 500:
        return [f"{operation.name}: {p}" for p in problems]  # a lost or failed answer
    if status == 429:
        problems += RATE_LIMITED(answer, "answer")
    elif status >= 400:
        problems += ERROR(answer, "answer")
    elif status not in operation.answers:
        problems.append(f"answer: HubSpot documents no HTTP {status} here")
    else:
        problems += operation.answers[status](answer, "answer")
    return [f"{operation.name}: {p}" for p in problems]


def check(exchanges: Iterable[Any]) -> list[str]:
    """Check every exchange a fake recorded; return the problems found."""
    problems = []
    for exchange in exchanges:
        problems += [
            f"{exchange.method} {exchange.path} -> {exchange.status}: {problem}"
            for problem in check_exchange(exchange.method, exchange.path, exchange.query,
                                          exchange.body, exchange.status, exchange.answer)
        ]  # fmt: skip
    return problems
