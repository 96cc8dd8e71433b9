"""Requests per minute to the preference pages, by link and by client address.

Counted in the store (``rate_windows``, one row per key and fixed one-minute
window), so replicas behind one load balancer share a count and a client
cannot multiply its allowance by landing on another replica.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from guard.store.tables import rate_windows

WINDOW = timedelta(minutes=1)
# Rows of windows this old are deleted when a new key arrives; they count nothing.
STALE = timedelta(minutes=10)


def hit(engine: Engine, key: str, limit: int, now: datetime) -> bool:
    """Count one request for ``key``; return whether it is within ``limit`` this minute."""
    window = now.replace(second=0, microsecond=0)
    bump = (sa.update(rate_windows).where(rate_windows.c.key == key).values(
        hits=sa.case((rate_windows.c.window_start == window, rate_windows.c.hits + 1),
                     else_=1),
        window_start=window))
    for _ in range(2):
        try:
            with engine.begin() as conn:
                # The update takes the row's lock: concurrent hits on one key count in turn.
                if conn.execute(bump).rowcount == 0:
                    conn.execute(sa.delete(rate_windows).where(
                        rate_windows.c.window_start < window - STALE))
                    conn.execute(sa.insert(rate_windows).values(key=key, window_start=window,
                                                                hits=1))
                    return True
                hits = conn.execute(sa.select(rate_windows.c.hits)
                                    .where(rate_windows.c.key == key)).scalar_one()
                return hits <= limit
        except IntegrityError:
            continue  # another request inserted the key first: count on its row
    return True
