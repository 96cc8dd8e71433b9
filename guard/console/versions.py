"""Policy versions kept in the store, for a service whose GUARD_POLICY names no file.

Publishing adds a version and points the ``settings`` row ``policy_version`` at
it; restoring points it at an earlier one. Every replica reads that row every
few seconds (``guard.services.PolicyWatch``) and loads the version it names.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from guard.store.engine import read_only
from guard.store.tables import policy_versions, settings
from guard.store.util import utc_now
from policies import Policy, parse_policy

CURRENT = "policy_version"
# The name a stored policy's problems and version hash carry.
NAME = "console.yaml"


def parse(text: str) -> Policy:
    """Build a policy from stored or drafted text; raise PolicyError listing every problem."""
    return parse_policy([(NAME, text)])


def marker(engine: Engine) -> str | None:
    """Return which stored version is in force (its id as text), or None: none published."""
    with read_only(engine.connect()) as conn:
        return conn.execute(sa.select(settings.c.value)
                            .where(settings.c.name == CURRENT)).scalar_one_or_none()


def get(engine: Engine, version_id: int | str) -> sa.Row | None:
    """Return one stored version, or None."""
    try:
        number = int(version_id)
    except (TypeError, ValueError):
        return None
    with read_only(engine.connect()) as conn:
        return conn.execute(sa.select(policy_versions)
                            .where(policy_versions.c.id == number)).first()


def history(engine: Engine, limit: int = 20) -> list:
    """Return the newest stored versions, newest first."""
    with read_only(engine.connect()) as conn:
        return conn.execute(sa.select(policy_versions.c.id, policy_versions.c.version,
                                      policy_versions.c.created_at, policy_versions.c.key_name)
                            .order_by(policy_versions.c.id.desc()).limit(limit)).all()


def _point(conn: Connection, version_id: int) -> None:
    value = str(version_id)
    if not conn.execute(sa.update(settings).where(settings.c.name == CURRENT)
                        .values(value=value)).rowcount:
        conn.execute(sa.insert(settings).values(name=CURRENT, value=value))


def publish(conn: Connection, text: str, version: str, key_id: str, key_name: str) -> int:
    """Store ``text`` as a new version and put it in force; return its id."""
    version_id = conn.execute(sa.insert(policy_versions).values(
        version=version, text=text, created_at=utc_now(), key_id=key_id, key_name=key_name)
    ).inserted_primary_key[0]
    _point(conn, version_id)
    return version_id


def restore(conn: Connection, version_id: int) -> None:
    """Put an earlier stored version back in force."""
    _point(conn, version_id)
