"""The Salesforce connector: incremental sync in, flags and tasks out, install.

Each stream is read by its cursor (``SystemModstamp``) in ``(cursor, Id)``
order, through ``queryAll`` once a bookmark exists so deletions come along as
``IsDeleted`` rows. A page becomes one Batch; its bookmark is the last record
read, or the run's start once the stream is done, so the saved cursor never
passes the moment the run began. Records committed late (long transactions
stamp the time they began) are caught by re-reading a look-back window; the
store's idempotence per source makes the re-read harmless.
"""

from __future__ import annotations

import csv
import io
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from simple_salesforce import Salesforce
from simple_salesforce.bulk2 import Operation
from simple_salesforce.exceptions import SalesforceMalformedRequest, SalesforceOperationError
from tenacity.wait import wait_base

from connectors.base import Batch, Bookmarks, FlagUpdate, OwnerTask, SyncSummary
from connectors.salesforce import install as installer
from connectors.salesforce import writeback
from connectors.salesforce.client import (
    DEFAULT_TIMEOUT,
    Api,
    ApiUsage,
    error_code,
    error_message,
    guarded_session,
    login_from_env,
)
from connectors.salesforce.errors import ConfigurationError, MappingError, QuotaReached
from connectors.salesforce.mapping import SalesforceMapping, load_mapping
from connectors.salesforce.streams import Stream, build_streams

log = logging.getLogger(__name__)
ENV = "GUARD_SALESFORCE_"
# getDeleted only reaches back 30 days; older windows rely on queryAll alone.
DELETED_HORIZON = timedelta(days=29)
# A bookmark this old may hide a large backlog, worth counting before choosing REST or Bulk.
RECOUNT_AFTER = timedelta(days=1)


def soql_datetime(moment: datetime) -> str:
    """Format a moment as a SOQL datetime literal (UTC, whole seconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_moment(text: str) -> datetime:
    """Read a Salesforce or bookmark timestamp as an aware UTC datetime."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class SalesforceConnector:
    """Salesforce records in as events; guard status, flags and owner tasks out."""

    name = "salesforce"

    def __init__(
        self,
        sf: Salesforce,
        mapping: SalesforceMapping | None = None,
        *,
        api_reserve: int = 5000,
        lookback: timedelta = timedelta(minutes=10),
        bulk_threshold: int = 10000,
        clock: Callable[[], datetime] | None = None,
        usage: ApiUsage | None = None,
        retry_wait: wait_base | None = None,
        bulk_wait: float = 5.0,
        bulk_page: int = 50000,
    ) -> None:
        self.sf = sf
        self.mapping = mapping or load_mapping()
        self.api = Api(sf, reserve=api_reserve, usage=usage, wait=retry_wait)
        self.lookback = lookback
        self.bulk_threshold = bulk_threshold
        self.clock = clock or (lambda: datetime.now(UTC))
        self.bulk_wait = bulk_wait
        self.bulk_page = bulk_page
        self.streams: list[Stream] = build_streams(self.mapping)
        self.summary = SyncSummary()
        self.write_errors: list[str] = []
        self.write_skipped: list[str] = []

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SalesforceConnector:
        """Log in and configure from GUARD_SALESFORCE_* variables."""
        environ = os.environ if environ is None else environ
        mapping_path = environ.get(ENV + "MAPPING")
        mapping = load_mapping(Path(mapping_path) if mapping_path else None)
        timeout = _number(environ, "TIMEOUT")
        reserve = _number(environ, "API_RESERVE")
        session, usage = guarded_session(
            (DEFAULT_TIMEOUT[0], timeout) if timeout else DEFAULT_TIMEOUT)
        sf = login_from_env(environ, session=session)
        return cls(sf, mapping, usage=usage,
                   api_reserve=int(reserve) if reserve is not None else 5000)

    # --- sync in -------------------------------------------------------------------------

    def sync(self, bookmarks: Bookmarks) -> Iterator[Batch]:
        """Read every stream from its bookmark; stop cleanly at the API quota reserve."""
        self.summary = SyncSummary()
        self.api.usage.forget()
        run_start = self.clock().astimezone(UTC).replace(microsecond=0)
        for stream in self.streams:
            try:
                yield from self._sync_stream(stream, bookmarks.get(stream.name), run_start)
            except QuotaReached as exc:
                self.summary.stopped = str(exc)
                return

    def _sync_stream(self, stream: Stream, bookmark: Mapping[str, Any] | None,
                     run_start: datetime) -> Iterator[Batch]:
        self.summary.counts.setdefault(stream.name, 0)
        self.summary.deleted.setdefault(stream.name, 0)
        lower = parse_moment(bookmark["cursor"]) if bookmark and bookmark.get("cursor") else None
        after_id = bookmark.get("id") if bookmark else None
        if lower is not None and self.lookback:
            lower, after_id = lower - self.lookback, None
        done = {"cursor": soql_datetime(run_start)}
        if lower is None and stream.deletions_only:
            # A first sync has nothing to take back.
            yield Batch(stream.name, [], done)
            return
        where = self._where(stream, lower, after_id, run_start)
        seen_deleted: set[str] = set()
        use_bulk = (stream.bulk and (lower is None or run_start - lower > RECOUNT_AFTER)
                    and self._count(stream, where) > self.bulk_threshold)
        # Deleted rows only matter once something was read before (a bookmark exists).
        include_deleted = lower is not None
        pages = (self._bulk_pages(stream, where, include_deleted=include_deleted) if use_bulk
                 else self._rest_pages(stream, where, include_deleted=include_deleted))
        for records, last in pages:
            events: list[dict] = []
            for record in records:
                self.summary.counts[stream.name] += 1
                if _truthy(record.get("IsDeleted")):
                    seen_deleted.add(record["Id"])
                    self.summary.deleted[stream.name] += 1
                    events.extend(stream.retract(record["Id"]))
                else:
                    events.extend(stream.events(record))
            if last:
                if lower is not None:
                    events.extend(self._purged(stream, lower, run_start, seen_deleted))
                yield Batch(stream.name, events, done)
            elif use_bulk:
                # Bulk results carry no promise of order: keep the old bookmark until the end.
                yield Batch(stream.name, events, dict(bookmark or {}))
            else:
                # Whole seconds (SOQL literals): rounding the cursor down re-reads at
                # most a few records of the same second, never skips one.
                tail = records[-1]
                yield Batch(stream.name, events,
                            {"cursor": soql_datetime(parse_moment(tail[stream.cursor])),
                             "id": tail["Id"]})

    def _where(self, stream: Stream, lower: datetime | None, after_id: str | None,
               run_start: datetime) -> str:
        cursor = stream.cursor
        conditions = [f"({stream.where})"] if stream.where else []
        if lower is not None and after_id:
            stamp = soql_datetime(lower)
            conditions.append(f"({cursor} > {stamp} OR ({cursor} = {stamp} AND Id > "
                              f"{_quote(after_id)}))")
        elif lower is not None:
            conditions.append(f"{cursor} >= {soql_datetime(lower)}")
        conditions.append(f"{cursor} < {soql_datetime(run_start)}")
        return " AND ".join(conditions)

    def _soql(self, stream: Stream, where: str) -> str:
        return (f"SELECT {', '.join(stream.select())} FROM {stream.object} WHERE {where} "
                f"ORDER BY {stream.cursor} ASC, Id ASC")

    def _query(self, fn: Callable[..., Any], *args: Any, stream: Stream, **kwargs: Any) -> Any:
        try:
            return self.api.call(fn, *args, **kwargs)
        except SalesforceMalformedRequest as exc:
            if error_code(exc) in ("INVALID_FIELD", "INVALID_TYPE"):
                raise MappingError(f"{stream.name}: {error_message(exc)}") from exc
            raise

    def _count(self, stream: Stream, where: str) -> int:
        result = self._query(self.sf.query, f"SELECT COUNT() FROM {stream.object} WHERE {where}",
                             stream=stream)
        return int(result["totalSize"])

    def _rest_pages(self, stream: Stream, where: str, *,
                    include_deleted: bool) -> Iterator[tuple[list[dict], bool]]:
        result = self._query(self.sf.query, self._soql(stream, where),
                             include_deleted=include_deleted, stream=stream)
        while True:
            records = list(result["records"])
            for record in records:
                self._read_all_children(record, stream)
            yield records, bool(result["done"])
            if result["done"]:
                return
            result = self._query(self.sf.query_more, result["nextRecordsUrl"],
                                 identifier_is_url=True, stream=stream)

    def _read_all_children(self, record: dict, stream: Stream) -> None:
        """Complete a record's child subqueries that came back ``done: false``.

        Salesforce pages a parent's child relationship on its own (beyond a
        couple of hundred children); the rest sits behind the relationship's
        own ``nextRecordsUrl``.
        """
        for relationship in record.values():
            if not isinstance(relationship, dict) or "done" not in relationship:
                continue
            page = relationship
            children = list(page.get("records") or [])
            while not page.get("done") and page.get("nextRecordsUrl"):
                page = self._query(self.sf.query_more, page["nextRecordsUrl"],
                                   identifier_is_url=True, stream=stream)
                children += page.get("records") or []
            relationship.update({"records": children, "done": True})
            relationship.pop("nextRecordsUrl", None)

    def _bulk_pages(self, stream: Stream, where: str, *,
                    include_deleted: bool) -> Iterator[tuple[list[dict], bool]]:
        # simple-salesforce's Bulk 2.0 generator cannot resume after a transient
        # fault, so its client's steps are called one by one, each retried, each
        # with a handler built from the current session (a re-login renews it).
        def client() -> Any:
            return getattr(self.sf.bulk2, stream.object)._client

        soql = self._soql(stream, where)
        operation = Operation.query_all if include_deleted else Operation.query
        job = self._query(lambda: client().create_job(operation, soql), stream=stream)
        try:
            self.api.call(lambda: client().wait_for_job(job["id"], True, self.bulk_wait))
        except SalesforceOperationError as exc:
            # The job Failed (or was Aborted) on Salesforce's side: REST pages the same query.
            log.warning("salesforce %s: Bulk job %s did not complete (%s); reading through REST",
                        stream.name, job["id"], exc)
            yield from self._rest_pages(stream, where, include_deleted=include_deleted)
            return
        locator = ""
        while True:
            result = self.api.call(
                lambda loc=locator: client().get_query_results(job["id"], loc, self.bulk_page))
            locator = result["locator"]
            yield _csv_records(result["records"]), not locator
            if not locator:
                return

    def _purged(self, stream: Stream, lower: datetime, run_start: datetime,
                seen: set[str]) -> list[dict]:
        """Retract records deleted and purged from the recycle bin since the last run."""
        if run_start - lower > DELETED_HORIZON or run_start - lower < timedelta(minutes=1):
            return []
        sobject = getattr(self.sf, stream.object)
        result = self.api.call(sobject.deleted, lower, run_start)
        events: list[dict] = []
        for item in result.get("deletedRecords") or []:
            if item["id"] not in seen:
                seen.add(item["id"])
                self.summary.deleted[stream.name] += 1
                events.extend(stream.retract(item["id"]))
        return events

    # --- out: flags, tasks, install -------------------------------------------------------

    def write_flags(self, updates: list[FlagUpdate]) -> int:
        """Write guard status and flags to Contacts and Leads whose values changed.

        ``write_errors`` names the records worth another try next run;
        ``write_skipped`` the ones Salesforce refused for good (converted
        Leads, purged or malformed ids), said once and not offered again.
        """
        return self._report("flags", writeback.write_flags(self.sf, self.api, updates))

    def create_tasks(self, tasks: list[OwnerTask]) -> int:
        """Create owner Tasks, once per dedupe key (see ``write_flags`` for the reports)."""
        return self._report("tasks", writeback.create_tasks(self.sf, self.api, tasks))

    def _report(self, what: str, outcome: writeback.WriteOutcome) -> int:
        self.write_errors, self.write_skipped = outcome.failed, outcome.skipped
        for line in outcome.skipped:
            log.warning("salesforce %s: skipped %s", what, line)
        return outcome.done

    def install(self) -> list[str]:
        """Create or update the plugin's fields and permission sets; list what changed."""
        return installer.install(self.sf, self.api)


def _truthy(raw: Any) -> bool:
    return raw is True or (isinstance(raw, str) and raw.lower() == "true")


def _csv_records(text: str) -> list[dict]:
    """Turn a Bulk 2.0 CSV page into REST-shaped records (``A.B`` columns nest, "" is null)."""
    records = []
    for row in csv.DictReader(io.StringIO(text)):
        record: dict[str, Any] = {}
        for column, raw in row.items():
            target = record
            *parents, leaf = column.split(".")
            for parent in parents:
                target = target.setdefault(parent, {})
            target[leaf] = raw if raw != "" else None
        records.append(record)
    return records


def _number(environ: Mapping[str, str], name: str) -> float | None:
    raw = environ.get(ENV + name)
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{ENV}{name}: not a number: {raw!r}") from None
