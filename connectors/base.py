"""What every CRM connector exchanges with the service that runs it.

A connector knows its CRM and the event format of SPEC §6, nothing else.
The service drives it:

    for batch in connector.sync(bookmarks):
        store(batch.events)                 # idempotent per event source
        bookmarks.save(batch.stream, batch.bookmark)   # only after storing

and pushes flags and owner tasks out through ``write_flags`` and
``create_tasks``. Retracted (deleted, archived) records arrive as events with
``"deleted": true`` and the source of the record they retract.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

# Event fields a mapped custom object may fill, per event type (SPEC §6), and the
# ones it must fill; both connectors validate their mapping files against these.
OBJECT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "purchase": ("product", "category", "at", "amount", "currency"),
    "contract": ("status", "start", "end", "owner", "product"),
    "service": ("asset", "at", "mileage", "next_due", "next_due_mileage"),
    "invoice": ("number", "sent_at", "due", "paid_at", "amount"),
    "case": ("status", "owner", "subject", "at"),
    "touch": ("channel", "purpose", "sender", "at", "campaign", "template"),
}
REQUIRED_OBJECT_FIELDS: Mapping[str, tuple[str, ...]] = {
    "purchase": ("at",),
    "contract": ("status",),
    "case": ("status",),
    "touch": ("channel", "purpose", "sender", "at"),
}


class Bookmarks(Protocol):
    """Where a connector's per-stream cursors are kept between runs."""

    def get(self, stream: str) -> Mapping[str, Any] | None: ...

    def save(self, stream: str, bookmark: Mapping[str, Any]) -> None: ...


class MemoryBookmarks:
    """Bookmarks in a dict, for tests and one-off runs."""

    def __init__(self) -> None:
        self.values: dict[str, Mapping[str, Any]] = {}

    def get(self, stream: str) -> Mapping[str, Any] | None:
        return self.values.get(stream)

    def save(self, stream: str, bookmark: Mapping[str, Any]) -> None:
        self.values[stream] = dict(bookmark)


@dataclass(frozen=True)
class Batch:
    """A page of events from one stream and the bookmark to save once stored."""

    stream: str
    events: list[dict]
    bookmark: Mapping[str, Any]


@dataclass(frozen=True)
class FlagUpdate:
    """The guard status and flags to show on one CRM record."""

    record_id: str
    status: str  # "Clear", "Caution" or "Do not contact"
    flags: tuple[str, ...]
    updated: datetime
    object_type: str | None = None  # "Contact" / "Lead" (Salesforce); None: derive


@dataclass(frozen=True)
class OwnerTask:
    """A task for the owner of a record: what was intended and why it came to them."""

    record_id: str
    subject: str
    description: str
    dedupe_key: str
    owner: str | None = None  # a CRM user id; None: the record's own owner
    due: datetime | None = None
    object_type: str | None = None


@dataclass
class SyncSummary:
    """Records read per stream in one sync run, and why it stopped early if it did."""

    counts: dict[str, int] = field(default_factory=dict)
    deleted: dict[str, int] = field(default_factory=dict)
    stopped: str | None = None


class Connector(Protocol):
    """The interface the guard drives."""

    name: str

    def sync(self, bookmarks: Bookmarks) -> Iterator[Batch]: ...

    def write_flags(self, updates: list[FlagUpdate]) -> int: ...

    def create_tasks(self, tasks: list[OwnerTask]) -> int: ...

    def install(self) -> list[str]: ...
