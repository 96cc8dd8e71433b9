"""CEL conditions over the attempt, the person and their account.

A condition sees four variables:

- ``attempt``: channel, to, purpose, category, sender, campaign, template,
  product (text, or null when not given) and ``at`` (a timestamp);
- ``person``: the profile's fields (``id`` null for an unknown recipient),
  with lists of ``purchases``, ``contracts``, ``consents``, ``cases``,
  ``services`` and ``invoices``, each record a map of its fields;
- ``account``: the person's account (every field null when there is none);
- ``now``: the time of the decision, a timestamp.

Every time and every calendar date is a CEL timestamp (a date is midnight
UTC), so conditions compare them with ``now`` and ``duration("720h")``
directly: ``person.purchases.exists(p, p.at > now - duration("720h"))``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

import cel

from policies.model import Account, Attempt, Evidence, Profile

VARIABLES = ("attempt", "person", "account", "now")

# Macros bind their own loop variable: person.purchases.exists(p, p.at > now).
_MACRO_VARIABLE = re.compile(
    r"\.\s*(?:all|exists|exists_one|map|filter|sortBy)\s*\(\s*([A-Za-z_]\w*)\s*,")

_ACCOUNT_FIELDS = ("id", "name", "domain", "owner", "source")


class Condition:
    """A CEL expression compiled once, at load time."""

    __slots__ = ("source", "_program")

    def __init__(self, source: str):
        if not isinstance(source, str) or not source.strip():
            raise ValueError("a condition must be a non-empty CEL expression")
        try:
            self._program = cel.compile(source)
        except ValueError as exc:
            raise ValueError(f"not valid CEL: {_first_line(exc)}") from None
        bound = set(_MACRO_VARIABLE.findall(source))
        unknown = sorted(set(self._program.variables()) - set(VARIABLES) - bound)
        if unknown:
            raise ValueError(
                f"unknown variable {unknown[0]!r} in CEL (use {', '.join(VARIABLES)})"
            )
        self.source = source

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def evaluate(self, ctx: Any) -> Any:
        """Evaluate against one decision's context; run-time errors propagate."""
        return self.evaluate_with(activation(ctx))

    def evaluate_with(self, variables: Mapping[str, Any]) -> Any:
        """Evaluate against ready-made variables (see ``activation``)."""
        return self._program.execute(dict(variables))

    def holds(self, ctx: Any) -> bool:
        """Say whether the condition is true; one that fails at run time does not hold."""
        try:
            return self.evaluate(ctx) is True
        # A missing field or a type mismatch in an admin's expression must not
        # stop a send decision: the condition simply does not hold.
        except Exception:  # noqa: BLE001
            return False


@functools.lru_cache(maxsize=1024)
def compiled(source: str) -> Condition:
    """Compile a condition that comes with data (a campaign's ``eligible_when``), cached."""
    return Condition(source)


def activation(ctx: Any) -> dict[str, Any]:
    """Return the CEL variables for a decision context, built once per context."""
    cache = ctx.__dict__
    if "_cel_variables" not in cache:
        cache["_cel_variables"] = variables(ctx.attempt, ctx.profile, ctx.now, ctx.category)
    return cache["_cel_variables"]


def variables(attempt: Attempt | None, profile: Profile, now: datetime,
              category: str | None = None) -> dict[str, Any]:
    """Build the CEL variables from an attempt, a profile and the time."""
    person = profile.to_dict()
    person.pop("account")
    person["known"] = profile.known
    person["do_not_market_until"] = _value(profile.do_not_market_until)
    for name in ("purchases", "contracts", "consents", "cases", "services", "invoices"):
        person[name] = [_record(r) for r in getattr(profile, name)]
    return {
        "attempt": _attempt(attempt, category) if attempt else {},
        "person": person,
        "account": _account(profile.account),
        "now": now,
    }


def _attempt(attempt: Attempt, category: str | None) -> dict[str, Any]:
    out = attempt.to_dict()
    out["at"] = attempt.at
    out["category"] = category
    return out


def _account(account: Account | None) -> dict[str, Any]:
    if account is None:
        return dict.fromkeys(_ACCOUNT_FIELDS)
    return _record(account)


def _record(record: Any) -> dict[str, Any]:
    return {name: _value(getattr(record, name)) for name in record.__dataclass_fields__}


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if isinstance(value, date):
        return datetime.combine(value, time(), tzinfo=UTC)
    if isinstance(value, Evidence):
        return value.to_dict()
    if isinstance(value, tuple):
        return list(value)
    return value


def _first_line(exc: Exception) -> str:
    text = str(exc).replace("Failed to parse expression", "").strip()
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if "ERROR:" in line:
            detail = line.split("ERROR:", 1)[1].strip()
            return re.sub(r"^<input>:(\d+):(\d+):\s*", r"line \1, column \2: ", detail)
    return lines[0] if lines else "cannot parse"
