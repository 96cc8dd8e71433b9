"""Committed entries stay for the audit period and every rule's window, then go in batches."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from guard import create_app, worker
from guard.checks.service import Guard
from guard.cli import main
from guard.services import services
from guard.store import retention
from guard.store.tables import ledger
from tests.conftest import NOW, accepted, person

NEWSLETTER = {"channel": "email", "purpose": "newsletter", "sender": "oem"}
DAY = timedelta(days=1)


def make_app(engine, policy, clock, **config):
    return create_app({"GUARD": Guard(engine, policy, clock=clock), "TESTING": True, **config})


def committed_ids(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(ledger.c.id).where(ledger.c.committed)).scalars())


def test_committed_entries_go_after_the_audit_period(engine, policy, clock):
    app = make_app(engine, policy, clock, AUDIT_RETENTION_DAYS=200)
    guard = services(app).guard
    old = guard.check({**NEWSLETTER, "to": "a@example.com"}).decision_id
    clock.now += 150 * DAY
    recent = guard.check({**NEWSLETTER, "to": "b@example.com"}).decision_id

    clock.now += 51 * DAY  # 201 and 51 days old
    worker.run_jobs(app, [worker.purge_expired])

    assert committed_ids(engine) == {recent}
    assert guard.decision(recent)["decision_id"] == recent
    assert old not in committed_ids(engine)


def test_no_entry_goes_before_the_longest_window_a_rule_counts(engine, policy, clock):
    # An audit period shorter than the policy's windows must not let caps forget contacts.
    window_days = policy.ledger_window / DAY
    assert window_days > 30
    app = make_app(engine, policy, clock, AUDIT_RETENTION_DAYS=1)
    guard = services(app).guard
    kept = guard.check({**NEWSLETTER, "to": "a@example.com"}).decision_id
    [audit] = [r for r in retention.RETENTION if r.setting == "AUDIT_RETENTION_DAYS"]
    assert retention.keep_for(audit, app.config, policy) == window_days

    clock.now += (window_days - 1) * DAY
    worker.run_jobs(app, [worker.purge_expired])
    assert committed_ids(engine) == {kept}

    clock.now += 2 * DAY
    worker.run_jobs(app, [worker.purge_expired])
    assert committed_ids(engine) == set()


def test_a_capped_person_stays_capped_however_short_the_audit_period(engine, policy, clock):
    app = make_app(engine, policy, clock, AUDIT_RETENTION_DAYS=1)
    guard = services(app).guard
    accepted(guard.ingest([person("003C", "capped@example.com")]))
    verdicts = []
    for _ in range(12):
        clock.now += DAY
        worker.run_jobs(app, [worker.purge_expired])
        verdicts.append(guard.check({**NEWSLETTER, "to": "capped@example.com"}).verdict)
    # The shipped cap: 4 marketing contacts in 30 days, the rest deferred.
    assert verdicts == ["allow"] * 4 + ["defer"] * 8, verdicts


def test_the_purge_goes_in_small_batches(engine, policy, clock):
    app = make_app(engine, policy, clock, AUDIT_RETENTION_DAYS=1)
    guard = services(app).guard
    for n in range(5):
        guard.check({**NEWSLETTER, "to": f"p{n}@example.com"})
    clock.now += policy.ledger_window + 2 * DAY
    [audit] = [r for r in retention.RETENTION if r.setting == "AUDIT_RETENTION_DAYS"]
    keep = retention.keep_for(audit, app.config, policy)
    first = retention.purge(engine, audit, clock.now, keep=keep, batch=2, batches=2)
    assert (first, len(committed_ids(engine))) == (4, 1)


def test_erasure_still_works_beside_the_purge(engine, policy, clock):
    app = make_app(engine, policy, clock, AUDIT_RETENTION_DAYS=1)
    guard = services(app).guard
    accepted(guard.ingest([person("003E", "erin@example.com")]))
    old = guard.check({**NEWSLETTER, "to": "erin@example.com"}).decision_id
    clock.now += policy.ledger_window + 2 * DAY
    recent = guard.check({**NEWSLETTER, "to": "erin@example.com"}).decision_id
    worker.run_jobs(app, [worker.purge_expired])
    assert committed_ids(engine) == {recent}

    accepted(guard.ingest([{"type": "erase", "source": {"system": "privacy", "id": "DSR-9"},
                            "person": {"email": "erin@example.com"}}]))
    assert guard.decision(recent)["erased"] is True
    assert old not in committed_ids(engine)
    assert guard.check({**NEWSLETTER, "to": "erin@example.com"}).verdict == "block"


def test_db_stats_prints_rows_bytes_and_a_yearly_projection(engine, db_url, policy,
                                                           monkeypatch):
    from click.testing import CliRunner

    guard = Guard(engine, policy)  # the real clock: stats count what was added lately
    for n in range(30):
        guard.check({**NEWSLETTER, "to": f"p{n}@example.com"})
    monkeypatch.setenv("GUARD_DATABASE_URL", db_url)
    result = CliRunner().invoke(main, ["db", "stats"])
    assert result.exit_code == 0, result.output
    [line] = [row.split() for row in result.output.splitlines() if row.startswith("ledger ")]
    name, rows, size, unit, per_day, per_year, year_unit = line
    assert rows == "30" and float(size) > 0 and unit.endswith("B")
    assert float(per_day) == 1.0 and float(per_year) > 0
    sizes = {t.name: t for t in retention.store_sizes(engine, guard.clock())}
    assert sizes["ledger"].rows == 30 and sizes["ledger"].bytes > 0
    assert sizes["ledger"].per_year == pytest.approx(365 * sizes["ledger"].bytes / 30)
    assert sizes["settings"].added_per_day is None


def test_the_audit_purge_reads_only_the_rows_due(tmp_path):
    from guard.store.engine import make_engine
    from guard.store.migrate import upgrade

    engine = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    upgrade(engine)
    [audit] = [r for r in retention.RETENTION if r.setting == "AUDIT_RETENTION_DAYS"]
    due = sa.select(ledger.c.id).where(*(t < NOW for t in audit.times), *audit.where)
    compiled = due.compile(dialect=engine.dialect)
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.construct_params().values())))
    engine.dispose()
    assert "ix_ledger_committed_at (at<?)" in plan, plan
