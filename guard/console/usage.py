"""When each API key was last used (by a request that succeeded), for the Keys page.

Each process writes a key's use at most once a minute, so the check path
pays for one small write per key per minute, not per request; the Keys page
is right to the minute. A failed write never fails the request it follows.
"""

from __future__ import annotations

import logging
import threading
from time import monotonic

import sqlalchemy as sa
from flask import Flask, Response, g
from sqlalchemy.exc import SQLAlchemyError

from guard.services import services
from guard.store.engine import read_only
from guard.store.tables import key_uses
from guard.store.util import utc_now

log = logging.getLogger(__name__)
EVERY_SECONDS = 60.0


class _Uses:
    """The keys this process wrote a use of recently, and when."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._written: dict[str, float] = {}

    def due(self, key_id: str) -> bool:
        now = monotonic()
        with self._lock:
            if now - self._written.get(key_id, -EVERY_SECONDS) < EVERY_SECONDS:
                return False
            self._written[key_id] = now
            return True


def record_use(engine: sa.Engine, key_id: str) -> None:
    """Store that ``key_id`` was used now."""
    now = utc_now()
    with engine.begin() as conn:
        if conn.execute(sa.update(key_uses).where(key_uses.c.key_id == key_id)
                        .values(last_used_at=now)).rowcount:
            return
        conn.execute(sa.insert(key_uses).values(key_id=key_id, last_used_at=now))


def last_used(engine: sa.Engine) -> dict[str, object]:
    """Return when each key was last used, by key id."""
    with read_only(engine.connect()) as conn:
        return dict(conn.execute(sa.select(key_uses.c.key_id, key_uses.c.last_used_at)).all())


def init_app(app: Flask) -> None:
    """Note each API key's use after its request (at most once a minute per process)."""
    uses = _Uses()

    def note(response: Response) -> Response:
        key = g.get("api_key")
        # A refused request (bad input, a missing scope) changes nothing, not even this.
        if key is not None and response.status_code < 400 and uses.due(key.id):
            try:
                record_use(services(app).engine, key.id)
            except SQLAlchemyError:
                log.warning("could not record the use of key %s", key.id, exc_info=True)
        return response

    app.after_request(note)
