"""Bulk screens keep SQLite's write-ahead log checkpointed, and record every decision."""

from __future__ import annotations

import gc
import threading

import pytest

from guard.store import engine as db
from tests.conftest import NOW, accepted, person

NEWSLETTER = {"channel": "email", "purpose": "newsletter", "sender": "oem",
              "at": NOW.isoformat()}


@pytest.fixture
def checkpoints(engine, monkeypatch):
    """Record the background checkpoints started while a test runs (SQLite stores only)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("checkpoints are SQLite's")
    started: list[str] = []
    done = threading.Event()
    run = db._checkpoints._checkpoint

    def checkpoint(database: str) -> None:
        started.append(database)
        try:
            run(database)
        finally:
            done.set()

    monkeypatch.setattr(db._checkpoints, "_checkpoint", checkpoint)
    monkeypatch.setattr(db._checkpoints, "_commits", {})
    monkeypatch.setattr(db, "SQLITE_CHECKPOINT_EVERY", 1_000_000)
    monkeypatch.setattr(db, "SQLITE_CHECKPOINT_ROWS", 200)
    return started, done


def test_a_bulk_dry_run_checkpoints_by_rows_written_not_by_commit_count(
        store, engine, checkpoints):
    started, done = checkpoints
    accepted(store.ingest([person("003A", "anna@example.com")]))
    assert started == []  # a small write: no checkpoint yet
    recipients = ["anna@example.com", *(f"u{i}@example.net" for i in range(299))]
    results = list(store.screen(NEWSLETTER, recipients, commit=False))
    # One dry-run transaction of 300 ledger rows crossed the row threshold at once.
    assert done.wait(10)
    assert started == [engine.url.database]
    assert [r for r, _ in results] == recipients
    for _, decision in results:
        assert store.decision(decision.decision_id)["decision_id"] == decision.decision_id


def test_rows_add_up_across_small_transactions(store, engine, checkpoints):
    started, done = checkpoints
    for n in range(3):
        # 45 decisions a screen, each with its one rule (unknown recipient) indexed.
        list(store.screen(NEWSLETTER, [f"u{n}-{i}@example.net" for i in range(45)]))
        if n < 2:
            assert started == []  # 90, then 180 rows: under the threshold
    assert done.wait(10)
    assert started == [engine.url.database]


def test_screening_collects_rarely_only_while_it_screens():
    from guard.collector import SCREEN_THRESHOLD as SCREEN_GC_THRESHOLD
    from guard.collector import collecting_rarely

    before = gc.get_threshold()
    with pytest.raises(RuntimeError), collecting_rarely():
        assert gc.get_threshold() == (SCREEN_GC_THRESHOLD, *before[1:])
        raise RuntimeError("the screen failed")
    # The calling process (a test run, a shell embedding the CLI) gets its collector back.
    assert gc.get_threshold() == before
