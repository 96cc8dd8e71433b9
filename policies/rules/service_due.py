"""Service due: service reminders only when the service is nearly due."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import ClassVar

from policies import phrases
from policies.model import Finding, Service
from policies.rules.base import ConfigError, Context, Duration, Rule

_YEAR = timedelta(days=365.25)
_EPOCH = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, kw_only=True)
class ServiceDue(Rule):
    """Hold back service reminders until ``lead_days`` (or ``lead_miles``) before the service."""

    kind: ClassVar[str] = "service_due"
    default_effect: ClassVar[str] = "block"
    allowed_effects: ClassVar[tuple[str, ...]] = ("block", "defer")

    lead_days: Duration = Duration(days=30)
    lead_miles: int = 1000
    # Mileage since the last visit is estimated from a typical year's driving.
    miles_per_year: int = 12000

    def __post_init__(self) -> None:
        if self.lead_miles < 0:
            raise ConfigError("lead_miles", "lead_miles: must not be negative")
        if self.miles_per_year <= 0:
            raise ConfigError("miles_per_year", "miles_per_year: must be more than 0")

    def evaluate(self, ctx: Context) -> Finding | None:
        services = [s for s in ctx.profile.services if s.next_due or s.next_due_mileage]
        if not services:
            return None
        # One reminder covers the person: it may go out once any asset is due.
        latest: dict[str | None, Service] = {}
        for service in sorted(services, key=lambda s: s.at or _EPOCH):
            latest[service.asset] = service
        windows = [self._window(service, ctx) for service in latest.values()]
        if any(opens is None for _, opens, _ in windows):
            return None
        last, window_opens, facts = min(windows, key=lambda w: w[1])
        message = (
            f"{_visit(last)} {phrases.listing(facts)}; reminders start "
            f"{self.lead_days.text} or {phrases.number(self.lead_miles)} miles before, "
            f"so not before {phrases.day(window_opens)}."
        )
        facts_out = {"due": phrases.day(last.next_due) if last.next_due else "",
                     "opens": phrases.day(window_opens)}
        if self.effect == "defer":
            return self.finding(ctx, message, evidence=phrases.sources(last),
                                not_before=window_opens, facts=facts_out)
        return self.finding(ctx, message, evidence=phrases.sources(last), facts=facts_out)

    def _window(self, last: Service, ctx: Context) -> tuple[Service, datetime | None, list[str]]:
        """Return when the reminder window for this service opens (None: it is open now)."""
        opens: list[datetime] = []
        facts: list[str] = []
        if last.next_due is not None:
            start = datetime.combine(last.next_due, time(), tzinfo=UTC) - self.lead_days
            if ctx.now >= start:
                return last, None, facts
            opens.append(start)
            facts.append(f"next due {phrases.day(last.next_due)}")
        if last.next_due_mileage is not None and last.mileage is not None and last.at:
            threshold = last.next_due_mileage - self.lead_miles
            driven = (ctx.now - last.at) / _YEAR * self.miles_per_year
            estimate = last.mileage + max(driven, 0)
            if estimate >= threshold:
                return last, None, facts
            opens.append(last.at + _YEAR * ((threshold - last.mileage) / self.miles_per_year))
            facts.append(f"due at {phrases.number(last.next_due_mileage)} miles "
                         f"(about {phrases.number(round(estimate, -2))} now)")
        if not opens:
            # Only a due mileage without a reading to estimate from: nothing
            # tells us it is early, so the reminder may go.
            return last, None, facts
        return last, min(opens), facts

def _visit(service: Service) -> str:
    parts = ["Last service"]
    if service.asset:
        parts.append(f"of {service.asset}")
    if service.at:
        parts.append(f"on {phrases.day(service.at)}")
    if service.mileage is not None:
        parts.append(f"at {phrases.number(service.mileage)} miles")
    return " ".join(parts) + ";"
