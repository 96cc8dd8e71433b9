"""A small SOQL interpreter for the fake org: the subset the connector sends, parsed for real.

SELECT fields, relationship paths (``Account.Type``), parent-child subqueries
and ``COUNT()``; WHERE with AND / OR / NOT, parentheses, comparisons, IN and
LIKE over strings, numbers, booleans, null, dates and datetimes; ORDER BY and
LIMIT. Anything else is a MALFORMED_QUERY, as Salesforce would answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>'(?:[^'\\]|\\.)*')
      | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
      | (?P<date>\d{4}-\d{2}-\d{2})
      | (?P<number>-?\d+(?:\.\d+)?)
      | (?P<op><=|>=|!=|<>|=|<|>)
      | (?P<punct>[(),])
      | (?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
KEYWORDS = {"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "LIKE", "ORDER", "BY", "ASC",
            "DESC", "LIMIT", "NULLS", "FIRST", "LAST", "TRUE", "FALSE", "NULL", "COUNT"}


class SoqlError(ValueError):
    """The query is not valid SOQL (MALFORMED_QUERY)."""


@dataclass
class Query:
    """A parsed SELECT statement."""

    fields: list[str | Query]
    object: str
    where: Any = None
    order: list[tuple[str, bool]] = field(default_factory=list)
    limit: int | None = None
    count: bool = False


def tokenize(text: str) -> list[tuple[str, Any]]:
    """Split SOQL into (kind, value) tokens."""
    tokens, position = [], 0
    text = text.strip()
    while position < len(text):
        match = TOKEN.match(text, position)
        if not match or match.end() == position:
            raise SoqlError(f"unexpected token at {text[position:position + 20]!r}")
        position = match.end()
        kind = match.lastgroup
        raw = match.group(kind)
        if kind == "string":
            tokens.append(("value", re.sub(r"\\(.)", r"\1", raw[1:-1])))
        elif kind == "datetime":
            tokens.append(("value", parse_datetime(raw)))
        elif kind == "date":
            tokens.append(("value", date.fromisoformat(raw)))
        elif kind == "number":
            tokens.append(("value", float(raw)))
        elif kind == "name" and raw.upper() in KEYWORDS:
            word = raw.upper()
            if word in ("TRUE", "FALSE", "NULL"):
                tokens.append(("value", {"TRUE": True, "FALSE": False, "NULL": None}[word]))
            else:
                tokens.append(("kw", word))
        else:
            tokens.append((kind, raw))
    return tokens


def parse_datetime(text: str) -> datetime:
    """Read a SOQL or Salesforce datetime."""
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class Parser:
    """Recursive descent over the tokens of one statement."""

    def __init__(self, text: str) -> None:
        self.tokens = tokenize(text)
        self.position = 0

    def peek(self) -> tuple[str, Any] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self, kind: str, value: Any = None) -> Any:
        token = self.peek()
        if token is None or token[0] != kind or (value is not None and token[1] != value):
            raise SoqlError(f"expected {value or kind}, found {token[1] if token else 'end'}")
        self.position += 1
        return token[1]

    def accept(self, kind: str, value: Any = None) -> bool:
        token = self.peek()
        if token is not None and token[0] == kind and (value is None or token[1] == value):
            self.position += 1
            return True
        return False

    def statement(self) -> Query:
        query = self.select()
        if self.peek() is not None:
            raise SoqlError(f"unexpected {self.peek()[1]!r}")
        return query

    def select(self) -> Query:
        self.take("kw", "SELECT")
        fields: list[str | Query] = []
        count = False
        while True:
            if self.accept("punct", "("):
                fields.append(self.select())
                self.take("punct", ")")
            elif self.accept("kw", "COUNT"):
                self.take("punct", "(")
                self.take("punct", ")")
                count = True
            else:
                fields.append(self.take("name"))
            if not self.accept("punct", ","):
                break
        self.take("kw", "FROM")
        query = Query(fields, self.take("name"), count=count)
        if self.accept("kw", "WHERE"):
            query.where = self.disjunction()
        if self.accept("kw", "ORDER"):
            self.take("kw", "BY")
            while True:
                path = self.take("name")
                descending = self.accept("kw", "DESC")
                if not descending:
                    self.accept("kw", "ASC")
                query.order.append((path, descending))
                if not self.accept("punct", ","):
                    break
        if self.accept("kw", "LIMIT"):
            query.limit = int(self.take("value"))
        return query

    def disjunction(self) -> Any:
        node = self.conjunction()
        while self.accept("kw", "OR"):
            node = ("or", node, self.conjunction())
        return node

    def conjunction(self) -> Any:
        node = self.negation()
        while self.accept("kw", "AND"):
            node = ("and", node, self.negation())
        return node

    def negation(self) -> Any:
        if self.accept("kw", "NOT"):
            return ("not", self.negation())
        if self.accept("punct", "("):
            node = self.disjunction()
            self.take("punct", ")")
            return node
        path = self.take("name")
        negated = self.accept("kw", "NOT")
        if self.accept("kw", "IN"):
            self.take("punct", "(")
            values = [self.take("value")]
            while self.accept("punct", ","):
                values.append(self.take("value"))
            self.take("punct", ")")
            node = ("in", path, values)
            return ("not", node) if negated else node
        if negated:
            raise SoqlError("NOT must be followed by IN here")
        if self.accept("kw", "LIKE"):
            return ("like", path, self.take("value"))
        return ("cmp", path, self.take("op"), self.take("value"))


def parse(text: str) -> Query:
    """Parse one SOQL statement."""
    return Parser(text).statement()


def comparable(stored: Any, literal: Any) -> tuple[Any, Any]:
    """Bring a stored value to the literal's type so the two compare as Salesforce does."""
    if stored is None or literal is None:
        return stored, literal
    if isinstance(literal, datetime):
        return parse_datetime(str(stored).replace("+0000", "+00:00")), literal
    if isinstance(literal, date):
        return date.fromisoformat(str(stored)[:10]), literal
    if isinstance(literal, float):
        return float(stored), literal
    return stored, literal


def evaluate(node: Any, lookup: Any) -> bool:
    """Evaluate a WHERE tree; lookup(path) returns a record's value for a field path."""
    kind = node[0]
    if kind == "and":
        return evaluate(node[1], lookup) and evaluate(node[2], lookup)
    if kind == "or":
        return evaluate(node[1], lookup) or evaluate(node[2], lookup)
    if kind == "not":
        return not evaluate(node[1], lookup)
    if kind == "in":
        stored = lookup(node[1])
        return any(comparable(stored, item)[0] == item for item in node[2])
    if kind == "like":
        stored = lookup(node[1])
        pattern = "^" + re.escape(node[2]).replace("%", ".*").replace("_", ".") + "$"
        return stored is not None and re.match(pattern, str(stored), re.IGNORECASE) is not None
    _, path, op, literal = node
    stored, literal = comparable(lookup(path), literal)
    if op in ("=", "!=", "<>"):
        equal = stored == literal
        return equal if op == "=" else not equal
    if stored is None or literal is None:
        return False
    return {"<": stored < literal, "<=": stored <= literal,
            ">": stored > literal, ">=": stored >= literal}[op]
