"""The worker purges what is kept only for a while: dry runs, finished sends, processed webhooks."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from guard import create_app, worker
from guard.checks.service import Guard
from guard.config import ConfigurationError
from guard.proxy.outbox import DONE_SENT, DROPPED, HELD, UNKNOWN, Item, Outbox
from guard.proxy.transport import SENT, Outcome
from guard.services import services
from guard.store import retention
from guard.store.engine import make_engine
from guard.store.migrate import upgrade
from guard.store.tables import hook_inbox, ledger, outbox
from tests.conftest import NOW

SCREEN = {"channel": "email", "purpose": "newsletter", "sender": "oem"}
DAY = timedelta(days=1)


@pytest.fixture
def app(engine, policy, clock):
    guard = Guard(engine, policy, clock=clock)
    return create_app({"GUARD": guard, "TESTING": True})


def ledger_ids(engine) -> dict[str, bool]:
    with engine.connect() as conn:
        return dict(conn.execute(sa.select(ledger.c.id, ledger.c.committed)).all())


def test_dry_runs_are_purged_after_their_retention_and_committed_decisions_stay(app, engine,
                                                                                clock):
    guard = services(app).guard
    old_screen = [d.decision_id for _, d in guard.screen(
        SCREEN, [f"p{i}@example.com" for i in range(25)])]
    old_dry = guard.check({**SCREEN, "to": "a@example.com"}, commit=False).decision_id
    committed = guard.check({**SCREEN, "to": "a@example.com"}).decision_id
    clock.now += 20 * DAY
    recent = guard.check({**SCREEN, "to": "b@example.com"}, commit=False).decision_id

    clock.now += 11 * DAY  # the first ones are 31 days old, the recent one 11
    worker.run_jobs(app, worker.scheduled_jobs(app))

    assert set(ledger_ids(engine)) == {committed, recent}
    assert all(guard.decision(i) for i in (committed, recent))
    assert old_dry not in ledger_ids(engine) and not set(old_screen) & set(ledger_ids(engine))


def test_a_purge_goes_in_small_batches_and_resumes_next_cycle(app, engine, clock):
    guard = services(app).guard
    list(guard.screen(SCREEN, [f"p{i}@example.com" for i in range(7)]))
    clock.now += 31 * DAY
    [dry_runs] = [r for r in retention.RETENTION if r.setting == "DRY_RUN_RETENTION_DAYS"]

    first = retention.purge(engine, dry_runs, clock.now, keep=30, batch=2, batches=2)
    left = len(ledger_ids(engine))
    second = retention.purge(engine, dry_runs, clock.now, keep=30, batch=2, batches=10)

    assert (first, left, second) == (4, 3, 3)
    assert ledger_ids(engine) == {}


def test_the_dry_run_purge_reads_only_the_rows_due(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'plan.db'}")
    upgrade(engine)
    [dry_runs] = [r for r in retention.RETENTION if r.setting == "DRY_RUN_RETENTION_DAYS"]
    due = sa.select(ledger.c.id).where(ledger.c.created_at < NOW, *dry_runs.where)
    compiled = due.compile(dialect=engine.dialect)
    with engine.connect() as conn:
        plan = " ".join(str(row[-1]) for row in conn.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {compiled}", tuple(compiled.construct_params().values())))
    engine.dispose()
    assert "ix_ledger_dry_runs (created_at<?)" in plan, plan


def test_finished_sends_are_purged_after_their_retention(app, engine, clock):
    box = Outbox(engine, clock=clock)
    ids = {}
    for name in ("sent", "dropped", "unknown", "held"):
        ids[name] = box.hold(Item("sendgrid", "mail", {"to": name}, name, recipients=[name]))
    for name, status in (("sent", DONE_SENT), ("dropped", DROPPED), ("unknown", UNKNOWN)):
        with engine.begin() as conn:
            conn.execute(outbox.update().where(outbox.c.id == ids[name]).values(status=status))
    clock.now += 6 * DAY
    claim = box.start_sending(Item("sendgrid", "mail", {"to": "late"}, "late",
                                   recipients=["late"]))
    box.finish(claim, Outcome(SENT, attempts=1))

    clock.now += 2 * DAY  # the first rows are 8 days old, the late one 2
    worker.run_jobs(app, worker.scheduled_jobs(app))

    with engine.connect() as conn:
        left = dict(conn.execute(sa.select(outbox.c.idempotency_key, outbox.c.status)).all())
    assert left == {"unknown": UNKNOWN, "held": HELD, "late": DONE_SENT}


def test_processed_webhook_deliveries_are_purged_after_their_retention(app, engine, clock):
    with engine.begin() as conn:
        conn.execute(sa.insert(hook_inbox), [
            {"system": "hubspot", "payload": [], "received_at": NOW, "attempts": 1,
             "processed_at": NOW},
            {"system": "hubspot", "payload": [{"still": "waiting"}], "received_at": NOW,
             "attempts": 3, "processed_at": None},
            {"system": "hubspot", "payload": [{"done": "lately"}], "received_at": NOW,
             "attempts": 1, "processed_at": NOW + 5 * DAY},
        ])
    clock.now += 8 * DAY

    worker.run_jobs(app, worker.scheduled_jobs(app))

    with engine.connect() as conn:
        left = conn.execute(sa.select(hook_inbox.c.payload).order_by(hook_inbox.c.id)
                            ).scalars().all()
    assert left == [[{"still": "waiting"}], [{"done": "lately"}]]


@pytest.mark.parametrize(("setting", "value", "message"), [
    ("DRY_RUN_RETENTION_DAYS", "0", "GUARD_DRY_RUN_RETENTION_DAYS: must be positive, got 0"),
    ("OUTBOX_RETENTION_DAYS", "a week",
     "GUARD_OUTBOX_RETENTION_DAYS: expected a whole number, got 'a week'"),
    ("INBOX_RETENTION_DAYS", "-1", "GUARD_INBOX_RETENTION_DAYS: must be positive, got -1"),
    ("HUBSPOT_WEBHOOK_MAX_BYTES", "0", "GUARD_HUBSPOT_WEBHOOK_MAX_BYTES: must be positive, got 0"),
], ids=["dry-runs", "outbox", "inbox", "webhook-size"])
def test_a_bad_retention_setting_stops_the_start(engine, setting, value, message):
    with pytest.raises(ConfigurationError) as raised:
        create_app({"GUARD": None, setting: value, "DATABASE_URL": "sqlite:///:memory:"})

    assert str(raised.value) == message
