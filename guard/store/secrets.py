"""Secrets a deployment shares without configuring them: made once, kept in the store."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from guard.store.engine import read_only
from guard.store.tables import settings


def read_secret(engine: Engine, name: str) -> str | None:
    """Return the secret kept under ``name`` (None: none was made)."""
    query = sa.select(settings.c.value).where(settings.c.name == name)
    with read_only(engine.connect()) as conn:
        return conn.execute(query).scalar_one_or_none() or None


def stored_secret(engine: Engine, name: str) -> str:
    """Return the secret kept under ``name``, making it on first use; replicas share one."""
    found = read_secret(engine, name)
    if found:
        return found
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(settings).values(name=name, value=secrets.token_urlsafe(48)))
    except IntegrityError:
        pass  # another replica made it first: everyone uses that one
    query = sa.select(settings.c.value).where(settings.c.name == name)
    with read_only(engine.connect()) as conn:
        return conn.execute(query).scalar_one()
