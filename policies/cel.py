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
_FACT_LISTS = ("purchases", "contracts", "consents", "cases", "services", "invoices")
_PERSON_FIELDS = (
    "id", "emails", "phones", "crm_ids", "name", "stage", "owner", "timezone",
    "preferred_channel", "contact_hours", "replacement_cycle_years", "do_not_market_until",
    *_FACT_LISTS, "field_sources", "sources", "erased", "known",
)
_WORD = re.compile(r"[A-Za-z_]\w*")


class Condition:
    """A CEL expression compiled once, at load time."""

    __slots__ = ("source", "_program", "_names")

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
        # Handing a value to CEL costs microseconds per field, and a profile
        # has hundreds; only the variables and fields the expression names
        # are handed over (a field is only reachable by writing its name).
        self._names = frozenset(_WORD.findall(source))

    def __repr__(self) -> str:
        return f"Condition({self.source!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and other.source == self.source

    def __hash__(self) -> int:
        return hash(self.source)

    def evaluate(self, ctx: Any) -> Any:
        """Evaluate against one decision's context; run-time errors propagate."""
        return self._program.execute(variables(ctx.attempt, ctx.profile, ctx.now, ctx.category,
                                               only=self._names))

    def evaluate_with(self, variables: Mapping[str, Any]) -> Any:
        """Evaluate against ready-made variables (see ``variables``)."""
        return self._program.execute(_trimmed(variables, self._names))

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


def variables(attempt: Attempt | None, profile: Profile, now: datetime,
              category: str | None = None, only: frozenset[str] | None = None
              ) -> dict[str, Any]:
    """Build the CEL variables from an attempt, a profile and the time.

    With ``only``, variables and fields whose names are not in it are left out.
    """
    def keep(name: str) -> bool:
        return only is None or name in only

    out: dict[str, Any] = {}
    if keep("attempt"):
        out["attempt"] = _attempt(attempt, category, keep) if attempt else {}
    if keep("person"):
        out["person"] = _person(profile, keep)
    if keep("account"):
        out["account"] = _account(profile.account, keep)
    if keep("now"):
        out["now"] = now
    return out


def _trimmed(variables: Mapping[str, Any], names: frozenset[str]) -> dict[str, Any]:
    out = {}
    for name, value in variables.items():
        if name not in names:
            continue
        if name != "now" and isinstance(value, Mapping):
            value = {k: ([_kept(r, names) for r in v] if k in _FACT_LISTS else v)
                     for k, v in value.items() if k in names}
        out[name] = value
    return out


def _kept(record: Any, names: frozenset[str]) -> Any:
    if isinstance(record, Mapping):
        return {k: v for k, v in record.items() if k in names}
    return record


def _person(profile: Profile, keep) -> dict[str, Any]:
    person: dict[str, Any] = {}
    for name in _PERSON_FIELDS:
        if not keep(name):
            continue
        if name == "known":
            person[name] = profile.known
        elif name in _FACT_LISTS:
            person[name] = [_record(r, keep) for r in getattr(profile, name)]
        elif name == "crm_ids":
            person[name] = dict(profile.crm_ids)
        elif name == "field_sources":
            person[name] = {k: v.to_dict() for k, v in profile.field_sources.items()}
        elif name == "sources":
            person[name] = [s.to_dict() for s in profile.sources]
        else:
            person[name] = _value(getattr(profile, name))
    return person


def _attempt(attempt: Attempt, category: str | None, keep) -> dict[str, Any]:
    out = attempt.to_dict()
    out["at"] = attempt.at
    out["category"] = category
    return {k: v for k, v in out.items() if keep(k)}


def _account(account: Account | None, keep) -> dict[str, Any]:
    if account is None:
        return dict.fromkeys(f for f in _ACCOUNT_FIELDS if keep(f))
    return _record(account, keep)


def _record(record: Any, keep) -> dict[str, Any]:
    return {name: _value(getattr(record, name)) for name in record.__dataclass_fields__
            if keep(name)}


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
