"""Prerequisite: some contacts need earlier ones (no collections without an invoice)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from policies import phrases
from policies.model import Evidence, Finding
from policies.rules.base import ConfigError, Context, Duration, Rule


@dataclass(frozen=True)
class Requirement:
    """An earlier contact of ``purpose`` that must have happened within ``within``."""

    purpose: str
    within: Duration


@dataclass(frozen=True, kw_only=True)
class Prerequisite(Rule):
    """Block a contact until the contacts it depends on were made within their windows."""

    kind: ClassVar[str] = "prerequisite"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block",)

    requires: Any = ()  # a list of {purpose, within}

    def __post_init__(self) -> None:
        items = self.requires
        if not isinstance(items, (list, tuple)) or not items:
            raise ConfigError("requires", "requires: expected a list of {purpose, within}, "
                                          "e.g. [{purpose: invoice, within: 90d}]")
        converted = []
        for i, item in enumerate(items):
            if isinstance(item, Requirement):
                converted.append(item)
                continue
            if not isinstance(item, Mapping) or set(item) != {"purpose", "within"}:
                raise ConfigError("requires", f"requires[{i}]: expected exactly purpose "
                                              f"and within, got {item!r}")
            purpose = item["purpose"]
            if not isinstance(purpose, str) or not purpose:
                raise ConfigError("requires", f"requires[{i}].purpose: expected a purpose name")
            try:
                within = Duration.parse(item["within"])
            except ValueError as exc:
                raise ConfigError("requires", f"requires[{i}].within: {exc}") from None
            converted.append(Requirement(purpose, within))
        object.__setattr__(self, "requires", tuple(converted))

    def _latest(self, need: Requirement, ctx: Context) -> tuple[datetime, Evidence | None] | None:
        """Return when the required contact last happened within its window, and its record."""
        since = ctx.now - need.within
        found = [(e.at, e.source) for e in ctx.contacts
                 if e.purpose == need.purpose and since <= e.at <= ctx.now]
        if need.purpose == "invoice":
            # Billing data saying the invoice went out counts as much as a
            # ledger entry: invoices are often sent by the billing system itself.
            found += [(i.sent_at, i.source) for i in ctx.profile.invoices
                      if i.sent_at is not None and since <= i.sent_at <= ctx.now]
        return max(found, key=lambda f: f[0]) if found else None

    def evaluate(self, ctx: Context) -> Finding | None:
        missing: list[Requirement] = []
        evidence: list[Evidence] = []
        met: list[str] = []
        for need in self.requires:
            latest = self._latest(need, ctx)
            if latest is None:
                missing.append(need)
            else:
                met.append(f"{phrases.a_purpose(need.purpose)} went out on "
                           f"{phrases.day(latest[0])}")
                if latest[1] is not None:
                    evidence.append(latest[1])
        if not missing:
            return None
        lacking = [f"no {_noun(n.purpose)} in the last {n.within.text}" for n in missing]
        lacking[0] = lacking[0].replace(" in the last", " was sent in the last", 1)
        needs = phrases.listing(
            f"{phrases.a_purpose(n.purpose)} within {n.within.text}" for n in self.requires)
        message = phrases.listing(lacking)
        if met:
            message += f" ({phrases.listing(met)})"
        message += f"; {phrases.purposes(ctx.attempt.purpose)} need {needs} first."
        message = message[0].upper() + message[1:]
        return self.finding(
            ctx, message, evidence=tuple(dict.fromkeys(evidence)),
            facts={"missing": phrases.listing(n.purpose for n in missing)},
        )


def _noun(purpose: str) -> str:
    return phrases.a_purpose(purpose).split(" ", 1)[1]
