"""Replacement cycle: no trade-in push before the person's car is as old as they keep cars."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import ClassVar

from policies import phrases
from policies.model import Evidence, Finding
from policies.rules.base import ConfigError, Context, Rule


@dataclass(frozen=True, kw_only=True)
class ReplacementCycle(Rule):
    """Block trade-in and upgrade offers before the current product is due for replacement."""

    kind: ClassVar[str] = "replacement_cycle"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block",)

    default_years: float = 4.0
    category: str | None = None  # only purchases of this category count (e.g. vehicle)

    def __post_init__(self) -> None:
        if self.default_years <= 0:
            raise ConfigError("default_years", "default_years: must be more than 0")

    def evaluate(self, ctx: Context) -> Finding | None:
        profile = ctx.profile
        today = ctx.now.date()
        offers = phrases.purposes(ctx.attempt.purpose)
        sentences: list[str] = []
        evidence: list[Evidence] = []
        facts: dict[str, str] = {}

        owned = [
            p for p in profile.purchases
            if p.at <= ctx.now and (self.category is None or p.category == self.category)
        ]
        if owned:
            current = max(owned, key=lambda p: p.at)
            stated = profile.replacement_cycle_years
            said = stated is not None and stated > 0
            years = stated if said else self.default_years
            until = phrases.add_years(current.at.date(), years)
            if today < until:
                bought = (f"bought {current.product or 'their current one'} on "
                          f"{phrases.day(current.at)}")
                if said:
                    sentences.append(
                        f"Said they keep cars ~{phrases.number(years)} years; {bought}, "
                        f"so no {offers} before {phrases.day(until)}.")
                    evidence.extend(phrases.sources(
                        profile.field_sources.get("replacement_cycle_years")))
                else:
                    sentences.append(
                        f"{bought.capitalize()}; without a stated replacement cycle we assume "
                        f"{phrases.number(years)} years, so no {offers} before "
                        f"{phrases.day(until)}.")
                evidence.extend(phrases.sources(current))
                facts.update(product=current.product or "", date=phrases.day(current.at),
                             until=phrases.day(until), years=phrases.number(years))

        hold: date | None = profile.do_not_market_until
        if hold is not None and today < hold:
            sentences.append(f"A rep recorded do not market until {phrases.day(hold)}; "
                             f"no {offers} before then.")
            evidence.extend(phrases.sources(profile.field_sources.get("do_not_market_until")))
            facts.setdefault("until", phrases.day(hold))

        if not sentences:
            return None
        return self.finding(ctx, " ".join(sentences), evidence=tuple(dict.fromkeys(evidence)),
                            facts=facts)
