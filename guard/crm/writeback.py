"""Write back to a CRM: changed flags, erasure notices and open owner tasks.

Flags are written only when their hash differs from the one last written for
the record; tasks carry a dedupe key the connectors check before creating,
so a crash between creating and marking done is harmless.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from connectors.base import Connector, FlagUpdate, OwnerTask
from guard.checks.flags import DO_NOT_CONTACT, ERASED
from guard.checks.tasks import OPEN as TASK_OPEN
from guard.crm.sync import StoreBookmarks
from guard.store.engine import read_only
from guard.store.tables import FLAGS_STREAM, crm_writes, erasure_notices, owner_tasks, people
from guard.store.util import chunks, utc_now
from policies.model import parse_datetime

log = logging.getLogger(__name__)
# Profiles are stamped with the ingest's start time but become visible at commit, so
# the write-back scan re-reads this much before its previous start (hashes dedupe).
FLAGS_OVERLAP = timedelta(minutes=10)
# Owner senders that name a CRM user directly (the connectors' fallback for unmapped users).
_OWNER_PREFIXES = {"salesforce": "salesforce-user:", "hubspot": "hubspot-owner:"}


def _record_ids(profile: Mapping | None, system: str) -> list[str]:
    ids = ((profile or {}).get("crm_ids") or {}).get(system)
    if not ids:
        return []
    return [str(ids)] if isinstance(ids, (str, int)) else [str(i) for i in ids]


def flags_watermark(guard, system: str) -> datetime | None:
    """Return the time from which the next flag write-back to ``system`` reads people."""
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
        for ids in chunks(sorted({c[0] for c in candidates}), 500):
            written.update(conn.execute(
                sa.select(crm_writes.c.record_id, crm_writes.c.flags_hash)
                .where(crm_writes.c.system == system, crm_writes.c.record_id.in_(ids))
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
    since = flags_watermark(guard, system)
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
                written_at=utc_now()))
    if since is None or watermark > since:
        StoreBookmarks(guard.engine, system).save(FLAGS_STREAM,
                                                  {"since": watermark.isoformat()})
    for error in getattr(connector, "write_errors", None) or () if updates else ():
        log.warning("%s flags: %s", system, error)
    return written


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


# The pseudo-stream under which each CRM's preference write-back watermark is kept.
PREFERENCES_STREAM = "guard:preferences"
_PREFERENCE_FIELDS = ("preferred_channel", "contact_hours", "do_not_market_until")


def _preference_changes(guard, since: datetime | None) -> list[tuple[dict, Any]]:
    """Return (profile, changed at) of people whose preference-page records changed."""
    from guard.preferences.recording import SYSTEM
    from guard.store.tables import records

    changed = (sa.select(records.c.person_id, sa.func.max(records.c.updated_at).label("at"))
               .where(records.c.source_system == SYSTEM, records.c.person_id.is_not(None)))
    if since is not None:
        changed = changed.where(records.c.updated_at > since.astimezone(UTC))
    changed = changed.group_by(records.c.person_id).subquery()
    query = (sa.select(people.c.profile, changed.c.at)
             .join(changed, changed.c.person_id == people.c.id)
             .where(people.c.erased.is_(False)))
    with read_only(guard.engine.connect()) as conn:
        return [(profile, changed) for profile, changed in conn.execute(query)]


def _salesforce_preferences(guard, connector, profiles: list[dict]) -> tuple[int, set[str]]:
    from connectors.salesforce.writeback import PreferenceWrite, write_preferences
    from guard.preferences.recording import TOPICS, welcome
    from policies.model import Profile

    updates = []
    for stored in profiles:
        profile = Profile.from_dict(stored)
        # The standard checkboxes mean "no contact by this channel": ticked when the
        # customer turned every topic off for it.
        opt_outs = {channel: not any(welcome(profile.consents, channel, t) for t in TOPICS)
                    for channel in ("email", "call")}
        values = {name: stored.get(name) for name in _PREFERENCE_FIELDS}
        updates += [PreferenceWrite(record_id, values, opt_outs)
                    for record_id in _record_ids(stored, "salesforce")]
    outcome = write_preferences(connector.sf, connector.api, connector.mapping, updates)
    for line in outcome.failed + outcome.skipped:
        log.warning("salesforce preferences: %s", line)
    return outcome.done, {line.split(":", 1)[0].strip() for line in outcome.failed}


def _hubspot_preferences(guard, connector, profiles: list[dict]) -> tuple[int, set[str]]:
    from connectors.hubspot.records import OPT_IN, OPT_OUT
    from connectors.hubspot.writeback import PreferenceWrite, write_preferences
    from guard.preferences.recording import SYSTEM, TOPICS, latest
    from policies.model import Profile

    updates = []
    for stored in profiles:
        profile = Profile.from_dict(stored)
        subscriptions = {}
        for subscription, target in connector.mapping.subscriptions.items():
            topic = target if target in TOPICS else guard.policy.purposes.get(target)
            if not str(subscription).isdigit() or topic not in TOPICS:
                continue
            decided = latest(profile.consents, "email", topic)
            if decided is not None and decided.status == "opt_out":
                subscriptions[subscription] = OPT_OUT
            elif decided is not None and decided.source and decided.source.system == SYSTEM:
                # Subscribed only on the customer's own word, never by default.
                subscriptions[subscription] = OPT_IN
        email = (stored.get("emails") or [None])[0]
        values = {name: stored.get(name) for name in _PREFERENCE_FIELDS}
        updates += [PreferenceWrite(record_id, email, values, subscriptions)
                    for record_id in _record_ids(stored, "hubspot")]
    written, _ = write_preferences(connector.api, connector.mapping, updates)
    return written, set()


_PREFERENCE_WRITERS = {"salesforce": _salesforce_preferences, "hubspot": _hubspot_preferences}


def write_preferences(guard, connector: Connector) -> int:
    """Write the choices customers made on the preference page into the CRM's own fields.

    Preferred channel, contact hours and do-not-market-until go to the fields
    the connector reads them from; opt-outs to the CRM's own: Salesforce's
    HasOptedOutOfEmail and DoNotCall, HubSpot's email subscription statuses.
    """
    write = _PREFERENCE_WRITERS.get(connector.name)
    if write is None:
        return 0
    bookmarks = StoreBookmarks(guard.engine, connector.name)
    saved = bookmarks.get(PREFERENCES_STREAM)
    since = parse_datetime(saved["since"]) if saved and saved.get("since") else None
    scan_start = guard.clock()
    changes = _preference_changes(guard, since)
    if not changes:
        return 0
    written, failed = write(guard, connector, [profile for profile, _ in changes])
    watermark = scan_start - FLAGS_OVERLAP
    for profile, changed in changes:
        if failed.intersection(_record_ids(profile, connector.name)):
            # Tried again next cycle: the watermark may not pass them.
            watermark = min(watermark, parse_datetime(changed) - timedelta(microseconds=1))
    if since is None or watermark > since:
        bookmarks.save(PREFERENCES_STREAM, {"since": watermark.isoformat()})
    return written
