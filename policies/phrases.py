"""Small sentence pieces every rule's message shares: dates, ages, purposes, channels."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from policies.model import Evidence

_PURPOSES = {
    "promotion": "promotions",
    "price_offer": "price offers",
    "newsletter": "newsletters",
    "event_offer": "event offers",
    "prospecting": "prospecting contacts",
    "trade_in": "trade-in offers",
    "upgrade_offer": "upgrade offers",
    "service_reminder": "service reminders",
    "survey": "surveys",
    "invoice": "invoices",
    "payment_reminder": "payment reminders",
    "collections": "collection notices",
    "transactional": "transactional messages",
    "safety_recall": "safety recalls",
}
_SINGULAR = {
    "collections": "a collection notice",
    "invoice": "an invoice",
    "upgrade_offer": "an upgrade offer",
    "event_offer": "an event offer",
}
_CHANNELS = {
    "email": "email",
    "sms": "text message",
    "call": "phone call",
    "mail": "letter",
    "push": "push notification",
}
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_CATEGORIES = {
    "marketing": "marketing",
    "sales": "sales contacts",
    "service": "service contacts",
    "billing": "billing contacts",
    "required": "required messages",
}


def day(value: date | datetime) -> str:
    """Write a date the way every message does: 2026-11-21."""
    if isinstance(value, datetime):
        value = value.date()
    return value.isoformat()


def weekday(value: date | datetime) -> str:
    """Name the day of the week in English: 'Monday' (what ``%A`` gives in the C locale)."""
    return _WEEKDAYS[value.weekday()]


def clock(value: datetime) -> str:
    """Write a time of day as '08:05' (``%H:%M``, without strftime's time zone work)."""
    return f"{value.hour:02d}:{value.minute:02d}"


def ago(then: datetime | date, now: datetime) -> str:
    """Say how long ago something happened, in whole days: 'today', '2 days ago'."""
    then_day = then.date() if isinstance(then, datetime) else then
    days = (now.date() - then_day).days
    if days <= 0:
        return "today"
    if days == 1:
        return "yesterday"
    return f"{days} days ago"


def purposes(purpose: str) -> str:
    """Name a purpose in plain words, plural: 'price offers'."""
    return _PURPOSES.get(purpose, purpose.replace("_", " ") + " contacts")


def a_purpose(purpose: str) -> str:
    """Name one contact of a purpose: 'a payment reminder'."""
    if purpose in _SINGULAR:
        return _SINGULAR[purpose]
    words = purposes(purpose)
    words = words[:-1] if words.endswith("s") else words
    return ("an " if words[:1] in "aeiou" else "a ") + words


def category(name: str) -> str:
    """Name a category in plain words: 'sales contacts'."""
    return _CATEGORIES.get(name, name)


def channel(name: str) -> str:
    """Name a channel in plain words: 'text message'."""
    return _CHANNELS.get(name, name)


def listing(items: Iterable[str]) -> str:
    """Join words as a sentence does: 'a, b and c'."""
    items = list(items)
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


def number(value: float) -> str:
    """Write a count without a pointless '.0': 10, 7.5, 32,000."""
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.1f}"


def add_years(start: date, years: float) -> date:
    """Add whole and fractional years (as months) to a date; 29 Feb falls back to 28 Feb."""
    months = round(years * 12)
    year, month = divmod(start.month - 1 + months, 12)
    year += start.year
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(start.day, last))


def sources(*records: Any) -> tuple[Evidence, ...]:
    """Collect the source records of facts (records or Evidence), skipping unknown ones."""
    found: list[Evidence] = []
    for record in records:
        evidence = record if isinstance(record, Evidence) else getattr(record, "source", None)
        if evidence is not None and evidence not in found:
            found.append(evidence)
    return tuple(found)
