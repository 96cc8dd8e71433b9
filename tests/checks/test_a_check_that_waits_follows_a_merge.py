"""A committed check that waits for a person's lock while the recipient moves to another person.

On PostgreSQL a check locks its recipient's person and reads their ledger in
one round trip; when a merge commits meanwhile, the check must decide on the
person the address belongs to once it holds the lock, never on the one it
waited for.
"""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from guard.checks.service import Guard
from guard.store.tables import identities, people
from policies import parse_policy
from tests.conftest import NOW, accepted, person

from .conftest import CAP, CAP_POLICY

NEWSLETTER = {"channel": "email", "purpose": "newsletter", "sender": "oem"}


def test_a_check_waiting_on_a_merge_decides_on_the_person_merged_into(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks are PostgreSQL's; SQLite writers take turns")
    guard = Guard(engine, parse_policy([("cap.yaml", CAP_POLICY)]), clock=lambda: NOW)
    accepted(guard.ingest([person("003A", "anna@example.com"),
                           person("003B", "ben@example.com")]))
    anna, ben = guard.resolve("anna@example.com"), guard.resolve("ben@example.com")
    for _ in range(CAP):
        assert guard.check({**NEWSLETTER, "to": "ben@example.com"}).verdict == "allow"
    decided, ben_locked = [], []

    def while_deciding(conn, outcomes) -> None:
        # Inside the check's transaction: is Ben's row held, as a cap on him needs?
        with engine.connect() as other:
            try:
                other.execute(sa.select(people.c.id).where(people.c.id == ben)
                              .with_for_update(nowait=True))
                ben_locked.append(False)
            except sa.exc.OperationalError:
                ben_locked.append(True)
            other.rollback()

    with engine.connect() as merging:
        # Another transaction holds Anna's row and moves her address to Ben.
        merging.execute(sa.select(people.c.id).where(people.c.id == anna).with_for_update())
        waiting = threading.Thread(target=lambda: decided.extend(guard.check_many(
            [{**NEWSLETTER, "to": "anna@example.com"}], then=while_deciding)))
        waiting.start()
        _wait_until_blocked_by(engine, merging)
        merging.execute(sa.update(identities).where(identities.c.value == "anna@example.com")
                        .values(person_id=ben))
        merging.commit()
        waiting.join(timeout=30)

    [decision] = decided
    assert decision.person == ben
    assert decision.verdict == "block"  # Ben had his three this month
    assert ben_locked == [True]


def _wait_until_blocked_by(engine, holder, timeout: float = 30.0) -> None:
    """Return once another session waits for a lock ``holder`` holds (the check, here)."""
    pid = holder.execute(sa.text("select pg_backend_pid()")).scalar_one()
    deadline = time.monotonic() + timeout
    with engine.connect() as watcher:
        while time.monotonic() < deadline:
            waiting = watcher.execute(sa.text(
                "select count(*) from pg_stat_activity where :pid = any(pg_blocking_pids(pid))"
            ), {"pid": pid}).scalar_one()
            watcher.rollback()
            if waiting:
                return
            time.sleep(0.01)
    raise AssertionError("the check never waited for the merging transaction's lock")
