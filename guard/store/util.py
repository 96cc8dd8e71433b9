"""Small helpers every room uses with the store: the time now, lists taken in chunks."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TypeVar

T = TypeVar("T")


def utc_now() -> datetime:
    """Return the time now, in UTC (the store keeps every time in UTC)."""
    return datetime.now(UTC)


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """Yield ``items`` in slices of ``size``, so one statement never binds too many values."""
    for start in range(0, len(items), size):
        yield items[start:start + size]
