"""The HubSpot connector the guard drives: sync in, webhooks, flags and tasks out, install."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta

from hubspot import HubSpot

from connectors.base import Batch, Bookmarks, FlagUpdate, OwnerTask, SyncSummary
from connectors.hubspot import install as install_module
from connectors.hubspot import records as rec
from connectors.hubspot import writeback
from connectors.hubspot.client import Api, OAuthTokens, Pacer, StaticToken, build_client
from connectors.hubspot.errors import ApiError, CredentialsError
from connectors.hubspot.mapping import HubSpotMapping, load_mapping
from connectors.hubspot.streams import (
    ARCHIVED_EXTRA,
    Contacts,
    Context,
    Deals,
    Stream,
    all_streams,
    read_incremental,
)
from connectors.hubspot.webhooks import OBJECTS, parse_payload

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
_MEMORY = 100_000  # contacts remembered for echo suppression


def _fingerprint(event: Mapping) -> str:
    return hashlib.sha256(json.dumps(event, sort_keys=True, default=str).encode()).hexdigest()


class HubSpotConnector:
    """Read HubSpot into events and write the guard's flags and tasks back."""

    name = "hubspot"

    def __init__(
        self,
        client: HubSpot,
        mapping: HubSpotMapping | None = None,
        *,
        lookback: timedelta = timedelta(minutes=10),
        clock: Clock | None = None,
        tokens: StaticToken | OAuthTokens | None = None,
        pacer: Pacer | None = None,
        search_pacer: Pacer | None = None,
        page_size: int = 200,
        search_limit: int | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        self.mapping = mapping or load_mapping()
        self.api = Api(client, tokens=tokens, pacer=pacer, search_pacer=search_pacer)
        self.lookback = lookback
        self.clock = clock or (lambda: datetime.now(UTC))
        self.page_size = page_size
        self.search_limit = search_limit
        self.webhook_secret = webhook_secret
        self.streams: list[Stream] = all_streams(self.mapping)
        self.summary = SyncSummary()
        # Per-record outcomes of the last write-back: "<contact id>: <why>". Failed
        # records are worth another try next run; skipped ones were refused for good.
        self.write_errors: list[str] = []
        self.write_skipped: list[str] = []
        # Echo suppression: contacts we wrote flags to, and the last person
        # event emitted for each contact. A contact we wrote whose event is
        # unchanged changed only in our own guard_* outputs.
        self._written: OrderedDict[str, None] = OrderedDict()
        self._emitted: OrderedDict[str, str] = OrderedDict()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs) -> HubSpotConnector:
        """Build a connector from ``GUARD_HUBSPOT_*`` settings.

        ``GUARD_HUBSPOT_TOKEN`` (a private-app token), or the OAuth app's
        ``GUARD_HUBSPOT_CLIENT_ID``, ``GUARD_HUBSPOT_CLIENT_SECRET`` and
        ``GUARD_HUBSPOT_REFRESH_TOKEN``; optional ``GUARD_HUBSPOT_MAPPING``
        (mapping file), ``GUARD_HUBSPOT_URL`` (API base URL) and
        ``GUARD_HUBSPOT_WEBHOOK_SECRET`` (the app's client secret that signs
        webhooks; defaults to the OAuth client secret).
        """
        env = os.environ if environ is None else environ
        host = env.get("GUARD_HUBSPOT_URL") or None
        token = env.get("GUARD_HUBSPOT_TOKEN")
        oauth = [
            env.get(f"GUARD_HUBSPOT_{n}") for n in ("CLIENT_ID", "CLIENT_SECRET", "REFRESH_TOKEN")
        ]
        mapping = load_mapping(env.get("GUARD_HUBSPOT_MAPPING") or None)
        if token:
            client, tokens = build_client(token, host=host), StaticToken(token)
        elif all(oauth):
            client = build_client(None, host=host)
            tokens = OAuthTokens(*oauth, clock=kwargs.get("clock"))
        else:
            raise CredentialsError(
                "HubSpot credentials missing: set GUARD_HUBSPOT_TOKEN (private app) or "
                "GUARD_HUBSPOT_CLIENT_ID, GUARD_HUBSPOT_CLIENT_SECRET and "
                "GUARD_HUBSPOT_REFRESH_TOKEN (OAuth app)"
            )
        secret = env.get("GUARD_HUBSPOT_WEBHOOK_SECRET") or env.get("GUARD_HUBSPOT_CLIENT_SECRET")
        return cls(client, mapping, tokens=tokens, webhook_secret=secret, **kwargs)

    # -- sync -----------------------------------------------------------------

    def sync(self, bookmarks: Bookmarks) -> Iterator[Batch]:
        """Yield batches of events changed since the saved bookmarks, stream by stream.

        An API error that survives the retries ends the run: ``summary.stopped``
        says why, and the bookmarks of the batches already yielded stay valid.
        """
        self.summary = SyncSummary()
        ctx = Context(self.api, self.mapping)
        try:
            for stream in self.streams:
                yield from self._sync_stream(stream, ctx, bookmarks)
                yield from self._sync_archived(
                    stream.object_type, stream.record_type, stream.event_type, bookmarks
                )
            for object_type, record_type, event_type in ARCHIVED_EXTRA:
                yield from self._sync_archived(object_type, record_type, event_type, bookmarks)
        except ApiError as exc:
            self.summary.stopped = str(exc)

    def _since_ms(self, bookmark: Mapping | None, key: str) -> tuple[int, int | None]:
        saved = (bookmark or {}).get(key)
        if not saved:
            return 0, None
        saved_ms = rec.ms(saved)
        return saved_ms, saved_ms

    def _bookmark_ms(self, cursor: int, run_start: datetime) -> int:
        # The search index lags behind writes: a record changed just before
        # this run may not be searchable yet, so the next run starts no later
        # than the lookback before this run began.
        return min(cursor, int((run_start - self.lookback).timestamp() * 1000))

    def _sync_stream(self, stream: Stream, ctx: Context, bookmarks: Bookmarks) -> Iterator[Batch]:
        saved = bookmarks.get(stream.name) or {}
        since_ms, cursor = self._since_ms(saved, "since")
        run_start = self.clock()
        kwargs = {"page_size": self.page_size, "inclusive": not saved.get("exclusive")}
        if self.search_limit:
            kwargs["search_limit"] = self.search_limit
        pages = read_incremental(
            self.api,
            stream.object_type,
            stream.replication_key,
            stream.properties(self.mapping),
            since_ms,
            **kwargs,
        )
        last = None
        for page in pages:
            events = stream.events(page, ctx)
            if isinstance(stream, Contacts):
                events = self._drop_echoes(events)
                kept = {e["source"]["id"] for e in events}
                events += stream.consents([r for r in page if str(r["id"]) in kept], ctx)
            last = max(rec.ms(r["properties"][stream.replication_key]) for r in page)
            cursor = max(cursor or 0, self._bookmark_ms(last, run_start))
            self._count(stream.name, page)
            yield Batch(stream.name, events, {"since": rec.to_time(cursor)})
        if last is not None and cursor == last:
            # The read ran to the end, so every record of the cursor's own
            # millisecond was seen: the next run can start after it.
            yield Batch(stream.name, [], {"since": rec.to_time(cursor), "exclusive": True})

    def _sync_archived(
        self, object_type: str, record_type: str, event_type: str, bookmarks: Bookmarks
    ) -> Iterator[Batch]:
        """Retract records archived since the last run (HubSpot lists them in id order)."""
        name = f"{object_type}.archived"
        saved = bookmarks.get(name) or {}
        since_ms, cursor = self._since_ms(saved, "archived_since")
        exclusive = bool(saved.get("exclusive"))
        run_start = self.clock()
        newest = None
        after = None
        while True:
            data = self.api.list_page(object_type, after=after, archived=True)
            events = []
            for record in data.get("results") or ():
                archived_at = record.get("archivedAt") or record.get("updatedAt")
                at_ms = rec.ms(archived_at) if archived_at else 0
                if at_ms > since_ms or (at_ms == since_ms and not exclusive):
                    events.append(rec.deleted(event_type, record_type, record["id"]))
                    newest = max(newest or 0, at_ms)
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if events:
                self.summary.deleted[name] = self.summary.deleted.get(name, 0) + len(events)
            if not after:
                bookmark = dict(saved)
                if newest is not None:
                    # The whole listing was read: nothing archived at or before
                    # the newest time seen is left, unless it is too recent to
                    # trust (archiving may lag like search indexing does).
                    moved = max(cursor or 0, self._bookmark_ms(newest, run_start))
                    bookmark = {
                        "archived_since": rec.to_time(moved),
                        "exclusive": moved == newest,
                    }
                if events or bookmark != saved:
                    yield Batch(name, events, bookmark)
                return
            if events:
                # Not the last page: the cursor may only move once the listing is done.
                yield Batch(name, events, saved)

    def _count(self, stream: str, page: list) -> None:
        self.summary.counts[stream] = self.summary.counts.get(stream, 0) + len(page)

    def _drop_echoes(self, events: list[dict]) -> list[dict]:
        kept = []
        for event in events:
            contact_id = event["source"]["id"]
            fingerprint = _fingerprint(event)
            if contact_id in self._written and self._emitted.get(contact_id) == fingerprint:
                continue
            self._emitted[contact_id] = fingerprint
            self._emitted.move_to_end(contact_id)
            while len(self._emitted) > _MEMORY:
                self._emitted.popitem(last=False)
            kept.append(event)
        return kept

    # -- webhooks -------------------------------------------------------------

    def webhook_events(self, payload: list[dict]) -> list[dict]:
        """Turn a webhook payload into events, fetching the records that changed.

        Changes to our own ``guard_*`` outputs are echoes and dropped. Raises
        ``ApiError`` when a fetch fails, so the caller can keep the payload
        and try again.
        """
        work = parse_payload(payload if isinstance(payload, list) else [], rec.OUTPUT_PROPERTIES)
        ctx = Context(self.api, self.mapping)
        events: list[dict] = []
        by_type = {s.object_type: s for s in self.streams}
        fetch = {kind: set(ids) for kind, ids in work.fetch.items()}
        if fetch.get("line_item"):
            deals = self.api.associations("line_items", "deals", sorted(fetch.pop("line_item")))
            fetch.setdefault("deal", set()).update(d for ids in deals.values() for d in ids)
        for kind, ids in fetch.items():
            object_type, _ = OBJECTS[kind]
            stream = by_type.get(object_type)
            if stream is None or not ids:
                continue
            found = self.api.batch_read(
                object_type, sorted(ids, key=int), stream.properties(self.mapping)
            )
            records = list(found.values())
            if not records:
                continue
            produced = stream.events(records, ctx)
            if isinstance(stream, Contacts):
                for event in produced:
                    merged = work.merges.get(event["source"]["id"])
                    if merged:
                        # The store links every id HubSpot merged into this contact.
                        event["crm_ids"] = {rec.SYSTEM: [event["source"]["id"], *merged]}
                produced = self._drop_echoes(produced)
                kept = {e["source"]["id"] for e in produced}
                produced += stream.consents([r for r in records if str(r["id"]) in kept], ctx)
            events += produced
        event_types = {s.record_type: s.event_type for s in self.streams}
        event_types["line_item"] = Deals.event_type
        for kind, object_id in work.deletions:
            record_type = OBJECTS[kind][1]
            events.append(rec.deleted(event_types[record_type], record_type, object_id))
        for contact_id in work.erasures:
            # GDPR delete in HubSpot: the person exercised the right to erasure.
            events.append(
                {
                    "type": "erase",
                    "source": rec.source("contact", contact_id),
                    "person": rec.person_ref(contact_id),
                }
            )
        return events

    # -- out ------------------------------------------------------------------

    def write_flags(self, updates: list[FlagUpdate]) -> int:
        """Write changed status and flags to contacts (batches of 100); return how many."""
        self.write_errors, self.write_skipped = [], []
        written, ids = writeback.write_flags(self.api, updates)
        for contact_id in ids:
            self._written[contact_id] = None
            self._written.move_to_end(contact_id)
        while len(self._written) > _MEMORY:
            self._written.popitem(last=False)
        return written

    def create_tasks(self, tasks: list[OwnerTask]) -> int:
        """Create each owner task once as a HubSpot task; return how many were created.

        ``write_errors`` names the contacts whose tasks HubSpot did not
        confirm (the guard offers them again next run); ``write_skipped`` the
        tasks HubSpot refused for good.
        """
        outcome = writeback.create_tasks(self.api, tasks, self.clock())
        self.write_errors, self.write_skipped = outcome.failed, outcome.skipped
        for line in outcome.skipped:
            log.warning("hubspot tasks: skipped %s", line)
        return outcome.created

    def install(self) -> list[str]:
        """Create the plugin's property group and properties where missing."""
        return install_module.install(self.api)


def webhook_events(connector: HubSpotConnector, payload: list[dict]) -> list[dict]:
    """Turn a webhook payload into events with ``connector`` (see its method)."""
    return connector.webhook_events(payload)
