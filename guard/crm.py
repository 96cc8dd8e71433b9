"""Run the CRM connectors against the store: sync in, flags and owner tasks out, webhooks.

The connectors know their CRM and the event format; this module knows the
store. Data flows one way (CRM → events → store → flags → CRM), and each step
is safe to repeat: bookmarks are saved only after their batch is stored,
flags are written only when their hash changed, tasks carry a dedupe key the
CRM side checks before creating.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Blueprint, Flask, current_app, request
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from connectors.base import Batch, Connector, FlagUpdate, OwnerTask, SyncSummary
from guard.checks.flags import DO_NOT_CONTACT, ERASED
from guard.checks.service import TASK_OPEN
from guard.errors import GuardError, InvalidField, TooLarge, Unauthorized
from guard.http.openapi import PROBLEMS, problem, register_path
from guard.services import services
from guard.store.engine import read_only
from guard.store.tables import (
    crm_writes,
    erasure_notices,
    hook_inbox,
    owner_tasks,
    people,
    sync_bookmarks,
)
from policies.model import parse_datetime

log = logging.getLogger(__name__)
SYSTEMS = ("salesforce", "hubspot")
# The pseudo-stream under which each CRM's flag write-back watermark is kept.
FLAGS_STREAM = "guard:flags"
# Profiles are stamped with the ingest's start time but become visible at commit, so
# the write-back scan re-reads this much before its previous start (hashes dedupe).
FLAGS_OVERLAP = timedelta(minutes=10)
# A webhook delivery that keeps failing is set aside after this many tries; the
# scheduled sync reads the same changes anyway.
INBOX_MAX_ATTEMPTS = 10
# Owner senders that name a CRM user directly (the connectors' fallback for unmapped users).
_OWNER_PREFIXES = {"salesforce": "salesforce-user:", "hubspot": "hubspot-owner:"}


def _now() -> datetime:
    return datetime.now(UTC)


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
        values = {"value": dict(bookmark), "updated_at": _now()}
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
        """Return every saved bookmark of this connector by stream."""
        with read_only(self.engine.connect()) as conn:
            rows = conn.execute(
                sa.select(sync_bookmarks.c.stream, sync_bookmarks.c.value)
                .where(sync_bookmarks.c.connector == self.connector)
            )
            return {stream: value for stream, value in rows}


# -- sync in -----------------------------------------------------------------------------


def run_sync(guard, connector: Connector,
             progress: Callable[[Batch, dict], None] | None = None) -> tuple[SyncSummary, list]:
    """Sync one connector into the store; return its summary and the rejected events."""
    bookmarks = StoreBookmarks(guard.engine, connector.name)
    rejected: list[dict] = []
    for batch in connector.sync(bookmarks):
        result = guard.ingest(batch.events) if batch.events else {"accepted": 0, "rejected": []}
        for refusal in result["rejected"]:
            rejected.append({**refusal, "stream": batch.stream})
            log.warning("%s %s: rejected %s", connector.name, batch.stream, refusal["detail"])
        # Only now is the batch safely stored: a crash before this line re-reads it.
        bookmarks.save(batch.stream, batch.bookmark)
        if progress:
            progress(batch, result)
    return connector.summary, rejected


# -- flags out ---------------------------------------------------------------------------


def _record_ids(profile: Mapping | None, system: str) -> list[str]:
    ids = ((profile or {}).get("crm_ids") or {}).get(system)
    if not ids:
        return []
    return [str(ids)] if isinstance(ids, (str, int)) else [str(i) for i in ids]


def _flags_watermark(guard, system: str) -> datetime | None:
    saved = StoreBookmarks(guard.engine, system).get(FLAGS_STREAM)
    return parse_datetime(saved["since"]) if saved and saved.get("since") else None


def pending_flag_updates(guard, system: str, now: datetime | None = None, *,
                         since: datetime | None = None) -> list[tuple[FlagUpdate, str, Any]]:
    """List the flag writes a CRM is missing as (update, flags hash, person's updated_at).

    Only people whose row changed after ``since`` are read (a profile rebuild
    stamps ``updated_at``, also when a new CRM id joins an unchanged person);
    of those, records whose last written hash equals the current one are left out.
    """
    now = now or guard.clock()
    query = (sa.select(people.c.profile, people.c.flags, people.c.flags_hash,
                       people.c.updated_at)
             .where(people.c.erased.is_(False), people.c.flags_hash.is_not(None)))
    if since is not None:
        query = query.where(people.c.updated_at > since.astimezone(UTC))
    with read_only(guard.engine.connect()) as conn:
        candidates = []
        for profile, flags, flags_hash, updated_at in conn.execute(query):
            for record_id in _record_ids(profile, system):
                candidates.append((record_id, flags or {}, flags_hash, updated_at))
        written: dict[str, str] = {}
        ids = sorted({c[0] for c in candidates})
        for start in range(0, len(ids), 500):
            written.update(conn.execute(
                sa.select(crm_writes.c.record_id, crm_writes.c.flags_hash)
                .where(crm_writes.c.system == system,
                       crm_writes.c.record_id.in_(ids[start:start + 500]))
            ).all())
    out = []
    for record_id, flags, flags_hash, updated_at in candidates:
        if written.get(record_id) == flags_hash:
            continue
        changed = flags.get("updated")
        out.append((FlagUpdate(
            record_id=record_id,
            status=flags.get("status") or "Clear",
            flags=tuple(flags.get("flags") or ()),
            updated=parse_datetime(changed) if changed else now,
        ), flags_hash, updated_at))
    return out


def _failed_records(connector: Connector) -> set[str]:
    # The Salesforce connector reports per-record failures as "<record id>: <reason>".
    return {str(error).split(":", 1)[0].strip()
            for error in getattr(connector, "write_errors", None) or ()}


def _erasure_updates(guard, system: str) -> list[FlagUpdate]:
    with read_only(guard.engine.connect()) as conn:
        rows = conn.execute(sa.select(erasure_notices.c.record_id, erasure_notices.c.erased_at)
                            .where(erasure_notices.c.system == system)
                            .order_by(erasure_notices.c.erased_at).limit(1000)).all()
    return [FlagUpdate(record_id=record_id, status=DO_NOT_CONTACT, flags=(ERASED,),
                       updated=parse_datetime(erased_at)) for record_id, erased_at in rows]


def write_flags(guard, connector: Connector, now: datetime | None = None) -> int:
    """Write changed flags to the CRM, remember what was written; return records written."""
    system = connector.name
    scan_start = guard.clock()
    since = _flags_watermark(guard, system)
    pending = pending_flag_updates(guard, system, now, since=since)
    erased = _erasure_updates(guard, system)
    updates = [update for update, _, _ in pending] + erased
    written = connector.write_flags(updates) if updates else 0
    failed = _failed_records(connector) if updates else set()
    watermark = scan_start - FLAGS_OVERLAP
    with guard.engine.begin() as conn:
        for update in erased:
            if update.record_id in failed:
                continue  # told again next cycle
            # The CRM has it: the guard forgets the record id, as it forgot the person.
            for table in (erasure_notices, crm_writes):
                conn.execute(table.delete().where(table.c.system == system,
                                                  table.c.record_id == update.record_id))
        for update, flags_hash, updated_at in pending:
            if update.record_id in failed:
                # Retried next time: the watermark may not pass the person it belongs to.
                watermark = min(watermark, parse_datetime(updated_at) - timedelta(microseconds=1))
                continue
            conn.execute(crm_writes.delete().where(crm_writes.c.system == system,
                                                   crm_writes.c.record_id == update.record_id))
            conn.execute(crm_writes.insert().values(
                system=system, record_id=update.record_id, flags_hash=flags_hash,
                written_at=_now()))
    if since is None or watermark > since:
        StoreBookmarks(guard.engine, system).save(FLAGS_STREAM,
                                                  {"since": watermark.isoformat()})
    for error in getattr(connector, "write_errors", None) or () if updates else ():
        log.warning("%s flags: %s", system, error)
    return written


# -- owner tasks out ---------------------------------------------------------------------


def _open_tasks(guard, system: str, limit: int) -> Iterator[tuple[Mapping, list[str]]]:
    """Yield open owner tasks (oldest first) of people this CRM holds, with their record ids."""
    after: tuple[Any, str] | None = None
    found = 0
    while found < limit:
        query = (sa.select(owner_tasks, people.c.profile)
                 .join(people, people.c.id == owner_tasks.c.person_id)
                 .where(owner_tasks.c.status == TASK_OPEN, people.c.erased.is_(False))
                 .order_by(owner_tasks.c.created_at, owner_tasks.c.id).limit(500))
        if after is not None:
            query = query.where(sa.or_(
                owner_tasks.c.created_at > after[0],
                sa.and_(owner_tasks.c.created_at == after[0], owner_tasks.c.id > after[1])))
        with read_only(guard.engine.connect()) as conn:
            rows = conn.execute(query).mappings().all()
        if not rows:
            return
        for row in rows:
            record_ids = _record_ids(row["profile"], system)
            if record_ids:
                found += 1
                yield row, record_ids
                if found >= limit:
                    return
        after = (rows[-1]["created_at"], rows[-1]["id"])


def _crm_user(connector: Connector, owner: str | None) -> str | None:
    """Return the CRM user behind an owner sender, when exactly one user maps to it."""
    if not owner:
        return None
    prefix = _OWNER_PREFIXES.get(connector.name)
    if prefix and owner.startswith(prefix):
        return owner[len(prefix):] or None
    owners = getattr(getattr(connector, "mapping", None), "owners", None) or {}
    users = [user for user, sender in owners.items() if sender == owner]
    return users[0] if len(users) == 1 else None


def push_tasks(guard, connector: Connector, limit: int = 500) -> int:
    """Create open owner tasks on the person's record in this CRM, then mark them done.

    A task goes to the first CRM job that holds the person. A crash between
    creating and marking done is harmless: the connectors skip a dedupe key
    the CRM already has.
    """
    system = connector.name
    tasks: list[tuple[str, OwnerTask]] = []
    for row, record_ids in _open_tasks(guard, system, limit):
        description = row["description"]
        if row["owner"]:
            description = f"{description}\n\nFor: {row['owner']}"
        tasks.append((row["id"], OwnerTask(
            record_id=record_ids[0], subject=row["subject"], description=description,
            dedupe_key=row["dedupe_key"], owner=_crm_user(connector, row["owner"]))))
    if not tasks:
        return 0
    created = connector.create_tasks([task for _, task in tasks])
    failed = _failed_records(connector)
    for task_id, task in tasks:
        if task.record_id in failed:
            continue  # stays open for the next cycle
        guard.mark_task_done(task_id, {"system": system, "record_id": task.record_id})
    for error in getattr(connector, "write_errors", None) or ():
        log.warning("%s tasks: %s", system, error)
    return created


# -- connectors from the environment -----------------------------------------------------


def connector_from_env(system: str, environ: Mapping[str, str]) -> Connector:
    """Build the named connector from environment credentials."""
    if system == "salesforce":
        from connectors.salesforce import SalesforceConnector

        return SalesforceConnector.from_env(environ)
    if system == "hubspot":
        from connectors.hubspot import HubSpotConnector

        return HubSpotConnector.from_env(environ)
    raise InvalidField("system", f"unknown CRM {system!r} (choose salesforce or hubspot)")


def configured_systems(environ: Mapping[str, str]) -> list[str]:
    """Name the CRMs whose credentials are present in the environment."""
    def has(*names: str) -> bool:
        return all(environ.get(name) for name in names)

    found = []
    sf = "GUARD_SALESFORCE_"
    if (has(sf + "USERNAME", sf + "PASSWORD") or has(sf + "CONSUMER_KEY", sf + "CONSUMER_SECRET")
            or (has(sf + "USERNAME", sf + "CONSUMER_KEY")
                and (has(sf + "PRIVATE_KEY") or has(sf + "PRIVATE_KEY_FILE")))):
        found.append("salesforce")
    hs = "GUARD_HUBSPOT_"
    if has(hs + "TOKEN") or has(hs + "CLIENT_ID", hs + "CLIENT_SECRET", hs + "REFRESH_TOKEN"):
        found.append("hubspot")
    return found


# -- webhooks ----------------------------------------------------------------------------

hooks = Blueprint("hooks", __name__)


class WebhooksNotConfigured(GuardError):
    """The webhook endpoint has no secret to check signatures with."""

    status = 503
    title = "Service Unavailable"


_SIGNATURE = "X-HubSpot-Signature-v3"
_TIMESTAMP = "X-HubSpot-Request-Timestamp"
# A delivery once stored is known by its signature's hash: a replay is acknowledged and
# dropped (the unique index decides, also between replicas).
_STORE_DELIVERY = {
    name: insert(hook_inbox).on_conflict_do_nothing(index_elements=["signature"])
    for name, insert in (("sqlite", sqlite_insert), ("postgresql", postgresql_insert))
}


@hooks.post("/hooks/hubspot")
def hubspot_hook():
    """Verify a HubSpot webhook delivery (signature v3), store it once, acknowledge at once."""
    from connectors.hubspot import verify_signature
    from connectors.hubspot.webhooks import MAX_AGE_MS

    secret = (current_app.config.get("HUBSPOT_WEBHOOK_SECRET")
              or current_app.config.get("HUBSPOT_CLIENT_SECRET"))
    if not secret:
        raise WebhooksNotConfigured(
            "GUARD_HUBSPOT_WEBHOOK_SECRET: not set; HubSpot webhooks need the app's client "
            "secret to verify signatures", field="GUARD_HUBSPOT_WEBHOOK_SECRET")
    # What needs no body is checked before the body is read: an unsigned, stale or
    # oversized request costs no more than its headers.
    signature = request.headers.get(_SIGNATURE, "").strip()
    stamp = request.headers.get(_TIMESTAMP, "")
    if not signature or not _fresh(stamp, MAX_AGE_MS):
        raise Unauthorized(f"{_SIGNATURE}: signature missing, or {_TIMESTAMP} missing or "
                           "more than 5 minutes away", field=_SIGNATURE)
    limit = current_app.config["HUBSPOT_WEBHOOK_MAX_BYTES"]
    too_large = TooLarge(f"body: a HubSpot delivery is at most {limit} bytes "
                         "(GUARD_HUBSPOT_WEBHOOK_MAX_BYTES)", field="body")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        raise too_large
    # HubSpot signs the URL it called; behind a proxy that is the public one.
    public = current_app.config.get("PUBLIC_URL")
    uri = str(public).rstrip("/") + request.full_path.rstrip("?") if public else request.url
    if not verify_signature(str(secret), request.method, uri, body, stamp, signature):
        raise Unauthorized(f"{_SIGNATURE}: signature invalid or request older than "
                           "5 minutes", field=_SIGNATURE)
    try:
        payload = json.loads(body)
    except ValueError:
        payload = None
    if not isinstance(payload, list):
        raise InvalidField("body", "expected a JSON array of HubSpot webhook events")
    engine = services().guard.engine
    with engine.begin() as conn:
        conn.execute(_STORE_DELIVERY[engine.dialect.name].values(
            system="hubspot", payload=payload, received_at=_now(), attempts=0,
            signature=hashlib.sha256(f"v3:{signature}".encode()).hexdigest()))
    return "", 204


def _fresh(stamp: str, max_age_ms: int) -> bool:
    """Say whether a millisecond timestamp header is within ``max_age_ms`` of now."""
    try:
        sent = int(stamp.strip())
    except ValueError:
        return False
    return abs(time.time() * 1000 - sent) <= max_age_ms


register_path("/hooks/hubspot", {"post": {
    "operationId": "hubspotWebhook",
    "summary": "Receive HubSpot webhook deliveries (contact changes, deletions, merges).",
    "description": "Signed with HubSpot's signature v3 (`X-HubSpot-Signature-v3`, "
                   "`X-HubSpot-Request-Timestamp`; older than 5 minutes is refused, before "
                   "the body is read, as is a body over `GUARD_HUBSPOT_WEBHOOK_MAX_BYTES`). "
                   "The body is stored at once and turned into events by `guard worker`; a "
                   "delivery replayed with the same signature is acknowledged and dropped.",
    "parameters": [
        {"name": "X-HubSpot-Signature-v3", "in": "header", "required": True,
         "schema": {"type": "string"}},
        {"name": "X-HubSpot-Request-Timestamp", "in": "header", "required": True,
         "schema": {"type": "string"}},
    ],
    "requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "array", "items": {"type": "object"}}}}},
    "responses": {
        "204": {"description": "Stored; processed within one worker cycle."},
        "400": PROBLEMS["400"],
        "401": problem("Signature missing, invalid or stale."),
        "413": problem("Body over GUARD_HUBSPOT_WEBHOOK_MAX_BYTES."),
        "503": problem("GUARD_HUBSPOT_WEBHOOK_SECRET is not set."),
    },
}})


def process_inbox(guard, connector: Connector, limit: int = 100) -> int:
    """Turn stored webhook deliveries into events; return how many were processed.

    A delivery whose fetch fails stays in the inbox for the next cycle (until
    INBOX_MAX_ATTEMPTS); events the store rejects are noted on the row.
    """
    with read_only(guard.engine.connect()) as conn:
        rows = conn.execute(
            sa.select(hook_inbox.c.id, hook_inbox.c.payload, hook_inbox.c.attempts)
            .where(hook_inbox.c.system == connector.name, hook_inbox.c.processed_at.is_(None))
            .order_by(hook_inbox.c.id).limit(limit)
        ).all()
    done = 0
    for row_id, payload, attempts in rows:
        attempts = (attempts or 0) + 1
        try:
            result = guard.ingest(connector.webhook_events(payload))
        except connector_errors() as exc:
            retriable = getattr(exc, "retriable", True) and attempts < INBOX_MAX_ATTEMPTS
            log.warning("%s webhook delivery %s (try %d) failed: %s", connector.name, row_id,
                        attempts, exc)
            values: dict[str, Any] = {"error": str(exc)[:2000], "attempts": attempts}
            if not retriable:
                values["processed_at"] = _now()
            with guard.engine.begin() as conn:
                conn.execute(hook_inbox.update().where(hook_inbox.c.id == row_id)
                             .values(**values))
            continue
        problems = "; ".join(f"{(r.get('source') or {}).get('id')}: {r['detail']}"
                             for r in result["rejected"])
        if problems:
            log.warning("%s webhook delivery %s: rejected %s", connector.name, row_id, problems)
        with guard.engine.begin() as conn:
            conn.execute(hook_inbox.update().where(hook_inbox.c.id == row_id).values(
                processed_at=_now(), attempts=attempts,
                error=f"rejected: {problems}"[:2000] if problems else None))
        done += 1
    return done


# -- the worker's job --------------------------------------------------------------------


class CrmJob:
    """One CRM in the worker: webhooks and write-back every cycle, a sync on a schedule.

    The job keeps one connector for its lifetime: HubSpot's echo suppression
    (our own flag writes coming back) lives in the connector's memory.
    """

    def __init__(self, system: str, sync_interval: float, factory: Callable[[], Connector],
                 clock: Callable[[], float] = time.monotonic):
        self.system = system
        self.sync_interval = sync_interval
        self.factory = factory
        self.clock = clock
        self.connector: Connector | None = None
        self.last_sync: float | None = None
        self.__name__ = f"crm:{system}"

    def __call__(self, app: Flask) -> None:
        guard = services(app).guard
        if self.connector is None:
            try:
                self.connector = self.factory()
            except connector_errors() as exc:
                log.error("%s: cannot connect: %s", self.system, exc)
                return
        connector = self.connector
        if hasattr(connector, "webhook_events"):
            self._step("webhooks", lambda: process_inbox(guard, connector))
        if self.last_sync is None or self.clock() - self.last_sync >= self.sync_interval:
            self.last_sync = self.clock()
            self._step("sync", lambda: self._sync(guard, connector))
        self._step("flags", lambda: write_flags(guard, connector))
        self._step("tasks", lambda: push_tasks(guard, connector))

    def _sync(self, guard, connector: Connector) -> None:
        summary, rejected = run_sync(guard, connector)
        if summary.stopped:
            log.warning("%s sync stopped early: %s", self.system, summary.stopped)
        log.info("%s sync: %s records, %d rejected", self.system,
                 sum(summary.counts.values()), len(rejected))

    def _step(self, name: str, step: Callable[[], Any]) -> None:
        # One failing step (a CRM outage, a quota) must not stop the others.
        try:
            step()
        except connector_errors() as exc:
            log.error("%s %s failed: %s", self.system, name, exc)


def run_crm_jobs(app: Flask) -> None:
    """Run the CRM jobs of this app once (the worker calls this every cycle)."""
    for job in app.extensions.get("guard.crm_jobs", ()):
        try:
            job(app)
        except Exception:  # one CRM's bug must not stop the other CRM
            log.exception("CRM job %s failed", job.__name__)


def init_app(app: Flask) -> None:
    """Register the webhook endpoint and, for CRMs configured in the environment, CRM jobs."""
    from guard import worker
    from guard.config import ConfigurationError

    app.register_blueprint(hooks)
    raw = app.config.get("SYNC_INTERVAL", 300)
    try:
        interval = float(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"GUARD_SYNC_INTERVAL: expected seconds, got {raw!r}") from None
    if interval <= 0:
        raise ConfigurationError(f"GUARD_SYNC_INTERVAL: must be positive, got {raw!r}")
    environ = dict(os.environ)
    app.extensions["guard.crm_jobs"] = [
        CrmJob(system, interval, lambda s=system: connector_from_env(s, environ))
        for system in configured_systems(environ)
    ]
    if run_crm_jobs not in worker.JOBS:
        worker.JOBS.append(run_crm_jobs)
