"""Sync a CRM into the store: connectors from the environment, their bookmarks, the run."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from connectors.base import Batch, Connector, SyncSummary
from guard.errors import InvalidField
from guard.ops import observe
from guard.ops.logs import mask
from guard.store.engine import read_only
from guard.store.tables import CRM_STREAM, LAST_RUN_STREAM, sync_bookmarks
from guard.store.util import utc_now

log = logging.getLogger(__name__)


def connector_from_env(system: str, environ: Mapping[str, str]) -> Connector:
    """Build the named connector from environment credentials."""
    if system == "salesforce":
        from connectors.salesforce import SalesforceConnector

        return SalesforceConnector.from_env(environ)
    if system == "hubspot":
        from connectors.hubspot import HubSpotConnector

        return HubSpotConnector.from_env(environ)
    raise InvalidField("system", f"unknown CRM {system!r} (choose salesforce or hubspot)")


def connector_errors() -> tuple[type[BaseException], ...]:
    """Return the error classes a CRM call may raise that mean "the CRM said no", not a bug."""
    import requests
    from simple_salesforce.exceptions import SalesforceError

    from connectors.hubspot import HubSpotError
    from connectors.salesforce import ConnectorError

    return (ConnectorError, HubSpotError, SalesforceError, requests.RequestException)


class StoreBookmarks:
    """A connector's stream cursors, kept in the store."""

    def __init__(self, engine: sa.Engine, connector: str):
        self.engine = engine
        self.connector = connector

    def get(self, stream: str) -> Mapping[str, Any] | None:
        """Return the saved bookmark of a stream, or None before its first sync."""
        with read_only(self.engine.connect()) as conn:
            return conn.execute(
                sa.select(sync_bookmarks.c.value).where(
                    sync_bookmarks.c.connector == self.connector,
                    sync_bookmarks.c.stream == stream,
                )
            ).scalar_one_or_none()

    def save(self, stream: str, bookmark: Mapping[str, Any]) -> None:
        """Save a stream's bookmark (insert or replace)."""
        where = (sync_bookmarks.c.connector == self.connector, sync_bookmarks.c.stream == stream)
        values = {"value": dict(bookmark), "updated_at": utc_now()}
        for _ in range(2):
            try:
                with self.engine.begin() as conn:
                    if conn.execute(sync_bookmarks.update().where(*where).values(**values)
                                    ).rowcount:
                        return
                    conn.execute(sync_bookmarks.insert().values(
                        connector=self.connector, stream=stream, **values))
                return
            except IntegrityError:
                continue  # another worker inserted it first: update theirs

    def all(self) -> dict[str, Mapping[str, Any]]:
        """Return every saved bookmark of this connector's own streams by stream."""
        with read_only(self.engine.connect()) as conn:
            rows = conn.execute(
                sa.select(sync_bookmarks.c.stream, sync_bookmarks.c.value)
                .where(sync_bookmarks.c.connector == self.connector,
                       CRM_STREAM)
            )
            return {stream: value for stream, value in rows}


def run_sync(guard, connector: Connector,
             progress: Callable[[Batch, dict], None] | None = None) -> tuple[SyncSummary, list]:
    """Sync one connector into the store; return its summary and the rejected events."""
    bookmarks = StoreBookmarks(guard.engine, connector.name)
    rejected: list[dict] = []
    run = None
    try:
        with observe.sync_run(connector.name) as run:  # the run's log line and metrics
            for batch in connector.sync(bookmarks):
                result = guard.ingest(batch.events) if batch.events else {"accepted": 0,
                                                                          "rejected": []}
                for refusal in result["rejected"]:
                    rejected.append({**refusal, "stream": batch.stream})
                    log.warning("%s %s: rejected %s", connector.name, batch.stream,
                                refusal["detail"])
                # Only now is the batch safely stored: a crash before this line re-reads it.
                bookmarks.save(batch.stream, batch.bookmark)
                if progress:
                    progress(batch, result)
            run.finished(connector.summary, rejected)
    finally:
        if run is not None:
            _keep_run(bookmarks, run)
    return connector.summary, rejected


def _keep_run(bookmarks: StoreBookmarks, run: observe.SyncRun) -> None:
    # The console shows each CRM's last run to every replica; a store that cannot take it
    # (often why the run failed) must not hide the run's own error.
    error = run.error and mask(run.error)[:500]
    try:
        bookmarks.save(LAST_RUN_STREAM, {
            "at": utc_now().isoformat(), "result": run.result, "records": run.records,
            "rejected": run.rejected, "seconds": round(run.seconds, 3), "error": error})
    except SQLAlchemyError as exc:
        log.warning("%s: the sync run's summary was not kept: %s", bookmarks.connector, exc)
