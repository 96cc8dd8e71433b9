"""Contact window: contact only during local hours and days (TCPA calling hours)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import ClassVar

from policies import localtime, phrases
from policies.localtime import Hours
from policies.model import Finding
from policies.rules.base import ConfigError, Context, Rule

# TCPA (47 CFR 64.1200(c)(1)): no telephone solicitation before 8 am or after
# 9 pm at the called party's location. Texts are calls under the TCPA.
TCPA_HOURS = Hours.parse("08:00-21:00")
TCPA_CHANNELS = ("call", "sms")


@dataclass(frozen=True, kw_only=True)
class ContactWindow(Rule):
    """Defer a contact outside the person's local contact hours to the next open time."""

    kind: ClassVar[str] = "contact_window"
    default_effect: ClassVar[str] = "defer"
    allowed_effects: ClassVar[tuple[str, ...]] = ("defer",)

    hours: str | None = None  # "08:00-21:00"; without it calls and texts keep TCPA hours
    days: tuple[str, ...] = ()  # mon..sun; empty means every day

    def __post_init__(self) -> None:
        if self.hours is not None and not isinstance(self.hours, Hours):
            try:
                object.__setattr__(self, "hours", Hours.parse(self.hours))
            except ValueError as exc:
                raise ConfigError("hours", f"hours: {exc}") from None
        try:
            object.__setattr__(self, "days", localtime.parse_days(self.days))
        except ValueError as exc:
            raise ConfigError("days", f"days: {exc}") from None

    def evaluate(self, ctx: Context) -> Finding | None:
        attempt, profile = ctx.attempt, ctx.profile
        rule_hours = self.hours
        by_phone = attempt.channel in TCPA_CHANNELS
        if rule_hours is None and by_phone:
            rule_hours = TCPA_HOURS
        person_hours = _person_hours(profile.contact_hours)
        person_days = _person_days(profile.contact_hours)
        days = _both(self.days, person_days)
        windows = tuple(w for w in (rule_hours, person_hours) if w is not None)
        if not windows and not days:
            return None
        defaults = getattr(ctx.policy, "defaults", None)
        phones = (attempt.to, *profile.phones) if by_phone else profile.phones
        zone, zone_source = localtime.resolve_zone(
            profile.timezone, phones,
            getattr(defaults, "timezone", None), getattr(defaults, "region", None))
        when = attempt.at if attempt.at > ctx.now else ctx.now
        local = when.astimezone(zone)
        if localtime.open_locally(local, windows, days):
            return None
        opens = localtime.next_open_after(when, local, zone, windows, days)
        if opens is None and (person_hours is not None or person_days) and \
                (rule_hours is not None or self.days):
            # The person's hours and the rule's never meet: the rule (often the
            # law) wins over the stated preference.
            windows = (rule_hours,) if rule_hours is not None else ()
            person_hours, days = None, self.days
            if localtime.open_locally(local, windows, days):
                return None
            opens = localtime.next_open_after(when, local, zone, windows, days)
        allowed = " and ".join(
            part for part in (
                f"{rule_hours.text}" if rule_hours else "",
                f"the person's own hours {person_hours.text}" if person_hours else "",
            ) if part
        ) or "any time"
        message = (
            f"It is {phrases.clock(local)} on {phrases.weekday(local)} {phrases.day(local)} "
            f"in {zone.key} ({zone_source}); {phrases.channel(attempt.channel)}s go out "
            f"{allowed}, {localtime.days_text(days)}"
        )
        message += (f", so this waits until {phrases.weekday(opens)} {phrases.day(opens)} "
                    f"{phrases.clock(opens)}." if opens else ".")
        evidence = (phrases.sources(profile.field_sources.get("contact_hours"))
                    if person_hours or days != self.days else ())
        # The facts only fill in an admin's own message.
        facts = {"local_time": phrases.clock(local), "zone": zone.key,
                 "opens": opens.isoformat() if opens else ""} if self.message else None
        return self.finding(ctx, message, evidence=evidence, not_before=opens, facts=facts)


def _both(rule: tuple[int, ...], person: tuple[int, ...]) -> tuple[int, ...]:
    """Return the days both allow; the rule's when the person's days and its never meet."""
    if not person:
        return rule
    if not rule:
        return person
    return tuple(d for d in rule if d in person) or rule


def _person_hours(text: str | None) -> Hours | None:
    return _person_window(text)[0]


def _person_days(text: str | None) -> tuple[int, ...]:
    return _person_window(text)[1]


def _person_window(text: str | None) -> tuple[Hours | None, tuple[int, ...]]:
    # Contact hours are data a rep typed in, not configuration: an unreadable
    # value is ignored rather than stopping every contact.
    if not text or not isinstance(text, str):
        return None, ()
    return _read_window(text)


@functools.lru_cache(maxsize=1024)
def _read_window(text: str) -> tuple[Hours | None, tuple[int, ...]]:
    # Few distinct texts recur across people: read each once.
    try:
        return person_window(text)
    except ValueError:
        return None, ()


def person_window(text: str) -> tuple[Hours | None, tuple[int, ...]]:
    """Read a person's contact hours, optionally after their days: ``"mon-fri 09:00-18:00"``.

    Days are names or ranges separated by commas (``mon,wed,sat``, ``mon-fri``);
    the hours may be left out after days (``"sat,sun"``). Raise ValueError saying why.
    """
    parts = text.strip().split(None, 1)
    if parts and parts[0][:1].isalpha():
        days = _read_days(parts[0])
        rest = parts[1] if len(parts) == 2 else ""
    else:
        days, rest = (), text
    hours = Hours.parse(rest) if rest.strip() else None
    if hours is None and not days:
        raise ValueError(f"not contact hours: {text!r} (write e.g. 09:00-18:00 or "
                         "mon-fri 09:00-18:00)")
    return hours, days


def _read_days(text: str) -> tuple[int, ...]:
    names: list[str] = []
    for part in text.lower().split(","):
        first, dash, last = part.strip().partition("-")
        if not dash:
            names.append(first)
            continue
        start, end = localtime.parse_days([first])[0], localtime.parse_days([last])[0]
        names += [localtime.DAYS[(start + n) % 7] for n in range((end - start) % 7 + 1)]
    return localtime.parse_days(names)
