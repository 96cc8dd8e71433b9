"""A person's local time: which time zone they live in, and when contact hours next open.

Contact hours are written ``"08:00-21:00"``; a window may cross midnight
(``"22:00-06:00"``) and ``"24:00"`` ends a window at midnight. A day filter
looks at the local weekday of the moment itself, so ``22:00-06:00`` on
``[mon, tue, wed, thu, fri]`` is closed from Saturday 00:00 to Monday 00:00.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import timezone as phone_timezones

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_LONG_DAYS = {calendar_name: i for i, calendar_name in enumerate(
    ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))}
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
# A window that is closed for longer than this is treated as never opening:
# a week covers every weekday filter, plus a day for a window crossing midnight.
_HORIZON_DAYS = 9
# Time zones and openings are looked up per decision but depend only on their
# inputs; bound the memos all the same, as names and numbers come from data.
_MEMO_LIMIT = 4096
_ZONES: dict[str, ZoneInfo | None] = {}
_PHONE_ZONES: dict[tuple[str, str | None], ZoneInfo | None] = {}
_OPENINGS: dict[tuple, tuple[datetime, ...]] = {}
_UNSEEN: Any = object()  # a memo's "not looked up yet", where None is an answer


@dataclass(frozen=True)
class Hours:
    """Daily open hours as minutes after local midnight; ``start > end`` crosses midnight."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> Hours:
        """Parse ``"08:00-21:00"``; raise ValueError saying what is wrong."""
        m = _HOURS.match(text) if isinstance(text, str) else None
        if not m:
            raise ValueError(f"not hours: {text!r} (write e.g. 08:00-21:00)")
        sh, sm, eh, em = (int(g) for g in m.groups())
        if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
            raise ValueError(f"not a time of day in {text!r} (write e.g. 08:00-21:00)")
        start, end = sh * 60 + sm, eh * 60 + em
        if start == end or (start == 0 and end == 1440):
            raise ValueError(f"{text!r} is open all day; leave the hours out instead")
        return cls(start, end)

    def contains(self, moment: time) -> bool:
        return self.holds(moment.hour * 60 + moment.minute + moment.second / 60)

    def holds(self, minute: float) -> bool:
        """Say whether the hours are open at a minute after local midnight."""
        if self.start < self.end:
            return self.start <= minute < self.end
        return minute >= self.start or minute < self.end

    @property
    def opens(self) -> time:
        return time(self.start // 60, self.start % 60)

    @cached_property
    def text(self) -> str:
        return f"{_clock(self.start)}-{_clock(self.end)}"


def _clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_days(names: Iterable[str]) -> tuple[int, ...]:
    """Turn day names (mon..sun, monday..sunday, or numbers 0-6) into sorted weekday numbers."""
    numbers = set()
    for name in names:
        key = name.strip().lower() if isinstance(name, str) else name
        if isinstance(key, int) and not isinstance(key, bool) and 0 <= key <= 6:
            numbers.add(key)
        elif key in DAYS:
            numbers.add(DAYS.index(key))
        elif key in _LONG_DAYS:
            numbers.add(_LONG_DAYS[key])
        else:
            raise ValueError(f"not a day: {name!r} (write mon, tue, wed, thu, fri, sat, sun)")
    return tuple(sorted(numbers))


def days_text(days: tuple[int, ...]) -> str:
    """Say which days are open: 'Mon-Fri', 'every day', 'Mon, Wed and Sat'."""
    if not days or len(days) == 7:
        return "every day"
    names = [DAYS[d].capitalize() for d in days]
    if len(days) > 2 and days == tuple(range(days[0], days[-1] + 1)):
        return f"{names[0]}-{names[-1]}"
    return ", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0]


def zone_named(name: str | None) -> ZoneInfo | None:
    """Return the time zone of an IANA name, or None for a missing or unknown one."""
    if not name or not isinstance(name, str):
        return None
    zone = _ZONES.get(name, _UNSEEN)
    if zone is not _UNSEEN:
        return zone
    try:
        zone = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        zone = None
    except OSError:
        return None  # perhaps passing (a file that could not be read): do not remember it
    _remember(_ZONES, name, zone)
    return zone


def phone_zone(number: str | None, region: str | None = None) -> ZoneInfo | None:
    """Return the time zone a phone number belongs to, or None when the number does not say.

    A number may span several zones (a US mobile prefix); the first zone the
    numbering plan lists is used, so the same number always gives the same zone.
    """
    if not number or not isinstance(number, str):
        return None
    key = (number, region)
    zone = _PHONE_ZONES.get(key, _UNSEEN)
    if zone is not _UNSEEN:
        return zone
    zone = _phone_zone(number, region)  # parsing a number is slow: remember the answer
    _remember(_PHONE_ZONES, key, zone)
    return zone


def _phone_zone(number: str, region: str | None) -> ZoneInfo | None:
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return None
    for name in phone_timezones.time_zones_for_number(parsed):
        zone = zone_named(name)
        if zone is not None:
            return zone
    return None


def _remember(memo: dict, key: object, value: object) -> None:
    if len(memo) >= _MEMO_LIMIT:
        memo.clear()
    memo[key] = value


def resolve_zone(person_zone: str | None, phones: Iterable[str], default: str | None,
                 region: str | None = None) -> tuple[ZoneInfo, str]:
    """Pick the person's time zone: their own, else their phone number's, else the default.

    Returns the zone and a few words saying where it came from.
    """
    zone = zone_named(person_zone)
    if zone is not None:
        return zone, "their time zone"
    for number in phones:
        zone = phone_zone(number, region)
        if zone is not None:
            return zone, "their phone number's time zone"
    zone = zone_named(default)
    if zone is not None:
        return zone, "the policy's default time zone"
    return ZoneInfo("UTC"), "UTC, as no time zone is known"


def is_open(moment: datetime, zone: ZoneInfo, windows: Iterable[Hours],
            days: tuple[int, ...] = ()) -> bool:
    """Say whether a moment falls in every window and on an open day, in local time."""
    return open_locally(moment.astimezone(zone), windows, days)


def open_locally(local: datetime, windows: Iterable[Hours], days: tuple[int, ...] = ()) -> bool:
    """Say whether a local time falls in every window and on an open day."""
    if days and local.weekday() not in days:
        return False
    minute = local.hour * 60 + local.minute + local.second / 60
    return all(w.holds(minute) for w in windows)


def next_open(moment: datetime, zone: ZoneInfo, windows: Iterable[Hours],
              days: tuple[int, ...] = ()) -> datetime | None:
    """Return the first moment at or after ``moment`` that is open, or None if none is near.

    The answer is an aware time in the local zone. Openings happen only where
    a window starts or a day begins, so those are the candidates; each is
    placed on the clock: a start inside a spring-forward gap opens at the first
    real minute after the gap (02:30 → 03:00), and a start inside the repeated
    fall-back hour opens at its first occurrence.
    """
    windows = tuple(windows)
    local = moment.astimezone(zone)
    if open_locally(local, windows, days):
        return local
    return next_open_after(moment, local, zone, windows, days)


def next_open_after(moment: datetime, local: datetime, zone: ZoneInfo,
                    windows: tuple[Hours, ...], days: tuple[int, ...] = ()) -> datetime | None:
    """Return the first open moment after ``moment`` (closed; ``local`` in ``zone``), or None."""
    local_day = local.date()
    # A local day's candidates all come before the next day's (a start in a
    # gap moves only to the gap's end, the same day), so the first open
    # candidate of the first day that has one is the answer.
    for offset in range(_HORIZON_DAYS):
        for candidate in _openings(local_day + timedelta(days=offset), zone, windows, days):
            if candidate > moment:
                return candidate.astimezone(zone)
    return None


def _openings(on: date, zone: ZoneInfo, windows: tuple[Hours, ...],
              days: tuple[int, ...]) -> tuple[datetime, ...]:
    """Return a local day's candidate openings that are open, as UTC instants in order.

    They depend on the day, zone and hours only, not on the moment asked
    about, so each day's are worked out once.
    """
    key = (on, zone, windows, days)
    found = _OPENINGS.get(key)
    if found is None:
        starts = sorted({time(0, 0), *(w.opens for w in windows)})
        # (Candidates stay in UTC: same-zone aware times compare by wall clock.)
        candidates = {_first_real(datetime.combine(on, start, tzinfo=zone), zone)
                      for start in starts}
        found = tuple(c for c in sorted(candidates) if is_open(c, zone, windows, days))
        _remember(_OPENINGS, key, found)
    return found


def _first_real(wall: datetime, zone: ZoneInfo) -> datetime:
    """Return the first real instant (UTC) at or after a local wall time that may not exist."""
    at = wall.astimezone(UTC)
    if at.astimezone(zone).replace(tzinfo=None) == wall.replace(tzinfo=None):
        return at
    # The wall time fell in a spring-forward gap; zoneinfo placed it one gap
    # length too late. Step back to the end of the gap (gaps last minutes to hours).
    step = timedelta(minutes=1)
    while (at - step).astimezone(zone).replace(tzinfo=None) >= wall.replace(tzinfo=None):
        at -= step
    return at
