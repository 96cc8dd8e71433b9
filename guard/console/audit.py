"""The console's audit log: which key changed what through the console, and when."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from guard.console.session import Viewer
from guard.store.engine import read_only
from guard.store.tables import console_audit
from guard.store.util import utc_now

PAGE = 50


def record(conn: Connection, who: Viewer, action: str, target: str | None = None,
           detail: str | None = None) -> None:
    """Record one change made through the console, in the change's own transaction."""
    conn.execute(sa.insert(console_audit).values(
        at=utc_now(), key_id=who.key_id, key_name=who.key_name, action=action,
        target=(target or "")[:255] or None, detail=detail))


def entries(engine: Engine, before: int | None = None, limit: int = PAGE) -> list:
    """Return audit entries, newest first, from before entry id ``before``."""
    query = sa.select(console_audit).order_by(console_audit.c.id.desc()).limit(limit)
    if before is not None:
        query = query.where(console_audit.c.id < before)
    with read_only(engine.connect()) as conn:
        return conn.execute(query).all()


def last_change(engine: Engine) -> datetime | None:
    """Return when the newest audit entry was written, or None."""
    with read_only(engine.connect()) as conn:
        return conn.execute(sa.select(sa.func.max(console_audit.c.at))).scalar()
