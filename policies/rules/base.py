"""The shape every rule kind shares: scope, condition, mode, options, evaluate.

A rule kind is one small frozen dataclass in its own module. Its
kind-specific options are its own dataclass fields (keyword-only, each with a
default); the loader fills them from YAML, converting each value by the
field's type (see ``convert``), once, at load time. The hot path only calls
``applies`` and ``evaluate``.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, fields
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any, ClassVar, get_args, get_origin, get_type_hints

from policies.model import Attempt, Finding, LedgerEntry, Profile, fast_constructor

# "Not given", where None (a purpose the policy does not know) is a value.
_UNSET: Any = object()


class ConfigError(ValueError):
    """A rule option that cannot be used; ``key`` names the option."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message


_DURATION = re.compile(r"^\s*(\d+)\s*(m|h|d|w|y)\s*$")
_UNITS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400, "y": 365 * 86400}


class Duration(timedelta):
    """A window written as ``30d``, ``12h``, ``2w``, ``90m`` or ``10y`` (365-day years)."""

    @classmethod
    def parse(cls, value: Any) -> Duration:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValueError(f"not a duration: {value!r} (write e.g. 30d, 12h, 2w)")
        if isinstance(value, int):
            return cls(days=value)
        m = _DURATION.match(value)
        if not m:
            raise ValueError(f"not a duration: {value!r} (write e.g. 30d, 12h, 2w)")
        return cls(seconds=int(m.group(1)) * _UNITS[m.group(2)])

    @cached_property
    def text(self) -> str:
        """Say the window the way an admin wrote it: '30 days', '12 hours'."""
        secs = int(self.total_seconds())
        for unit, size in (("year", _UNITS["y"]), ("week", _UNITS["w"]), ("day", 86400),
                           ("hour", 3600), ("minute", 60)):
            if secs and secs % size == 0:
                n = secs // size
                return f"{n} {unit}{'s' if n != 1 else ''}"
        return f"{secs} seconds"


def convert(key: str, annotation: Any, value: Any) -> Any:
    """Convert one YAML option value to the type a rule field declares."""
    args = get_args(annotation)
    if type(None) in args:  # "X | None"
        if value is None:
            return None
        annotation = next(a for a in args if a is not type(None))
    elif value is None:
        raise ConfigError(key, f"{key}: must not be empty")
    try:
        if annotation is bool:
            if not isinstance(value, bool):
                raise ValueError(f"expected true or false, got {value!r}")
            return value
        if annotation is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"expected a whole number, got {value!r}")
            return value
        if annotation is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"expected a number, got {value!r}")
            return float(value)
        if annotation is str:
            if not isinstance(value, str):
                raise ValueError(f"expected text, got {value!r}")
            return value
        if annotation is Duration:
            return Duration.parse(value)
        if get_origin(annotation) is tuple and get_args(annotation)[0] is str:
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"expected a list of names, got {value!r}")
            return tuple(value)
    except ValueError as exc:
        raise ConfigError(key, f"{key}: {exc}") from None
    # Structured options (mappings, lists of mappings) are converted by the
    # kind itself in ``__post_init__``, which raises ConfigError naming the key.
    return value


@dataclass(frozen=True)
class Scope:
    """Which attempts a rule looks at; an empty part matches everything."""

    purposes: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    channels: frozenset[str] = frozenset()
    senders: tuple[str, ...] = ()  # exact names or glob patterns such as "dealer:*"

    def matches(self, attempt: Attempt, category: str) -> bool:
        if (self.purposes or self.categories) and not (
            attempt.purpose in self.purposes or category in self.categories
        ):
            return False
        if self.channels and attempt.channel not in self.channels:
            return False
        if self.senders and not any(fnmatch.fnmatchcase(attempt.sender, s) for s in self.senders):
            return False
        return True


class Context:
    """Everything one decision reads, with the derived values rules share."""

    # A plain slotted class, not a dataclass with cached properties: one is built per
    # decision, and the category is known (and kept) before any rule runs.
    __slots__ = ("attempt", "profile", "ledger", "policy", "now", "campaigns", "category",
                 "_contacts")

    def __init__(self, attempt: Attempt, profile: Profile, ledger: tuple[LedgerEntry, ...],
                 policy: Any, now: datetime, campaigns: Mapping[str, Any] | None = None,
                 category: str | None | object = _UNSET) -> None:
        self.attempt = attempt
        self.profile = profile
        self.ledger = ledger
        self.policy = policy  # policies.policy.Policy (kept loose to avoid an import cycle)
        self.now = now
        self.campaigns = {} if campaigns is None else campaigns
        self.category = policy.category(attempt.purpose) if category is _UNSET else category
        self._contacts: tuple[LedgerEntry, ...] | None = None

    @property
    def contacts(self) -> tuple[LedgerEntry, ...]:
        """Ledger entries that were real contacts (what caps and duplicates count)."""
        contacts = self._contacts
        if contacts is None:
            contacts = self._contacts = tuple(e for e in self.ledger if e.verdict == "allow")
        return contacts


@dataclass(frozen=True, kw_only=True)
class Rule:
    """One configured rule: common fields here, kind options in the subclass."""

    kind: ClassVar[str] = ""
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block",)
    # Rules that protect the relationship, not the law, leave required
    # purposes (transactional, safety recalls) alone unless scoped to them.
    exempt_required: ClassVar[bool] = True

    id: str
    mode: str = "enforce"
    message: str | None = None
    effect: str = ""
    scope: Scope = Scope()
    when: Any = None  # a compiled CEL condition (policies.cel.Condition) or None

    @classmethod
    def option_fields(cls) -> dict[str, Any]:
        """Kind-specific options: name → declared type."""
        hints = get_type_hints(cls)
        common = {f.name for f in fields(Rule)}
        return {f.name: hints[f.name] for f in fields(cls) if f.name not in common}

    @classmethod
    def required_options(cls) -> set[str]:
        common = {f.name for f in fields(Rule)}
        return {
            f.name
            for f in fields(cls)
            if f.name not in common and f.default is MISSING and f.default_factory is MISSING
        }

    @property
    def enforcing(self) -> bool:
        return self.mode == "enforce"

    def applies(self, ctx: Context) -> bool:
        """Say whether this rule looks at the attempt at all (scope, then condition)."""
        if not self.in_scope(ctx.attempt, ctx.category):
            return False
        return self.when is None or self.when.holds(ctx)

    def in_scope(self, attempt: Attempt, category: str | None) -> bool:
        """Say whether the scope takes the attempt; depends only on purpose, channel, sender."""
        if self.exempt_required and category == "required" and not (
            attempt.purpose in self.scope.purposes or "required" in self.scope.categories
        ):
            return False
        return self.scope.matches(attempt, category)

    def evaluate(self, ctx: Context) -> Finding | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def finding(self, ctx: Context, message: str, *, facts: Mapping[str, Any] | None = None,
                effect: str | None = None, evidence: tuple = (), reroute: Any = None,
                not_before: datetime | None = None, notify: str | None = None) -> Finding:
        """Build this rule's finding; an admin's ``message`` replaces the default text."""
        text = message
        if self.message:
            try:
                text = self.message.format(default=message, **(facts or {}))
            except (KeyError, IndexError, ValueError):
                text = self.message
        return _new_finding(self.id, self.kind, effect or self.effect or self.default_effect,
                            text, evidence, reroute, not_before, notify)


# Findings are built on the hot path: fill the frozen slots directly (see model.fast_constructor).
_new_finding = fast_constructor(Finding)
