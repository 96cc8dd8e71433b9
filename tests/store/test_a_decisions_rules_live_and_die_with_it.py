"""Each rule behind a decision's reasons is indexed with the decision and goes when it goes."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from guard import create_app, worker
from guard.checks.service import Guard
from guard.services import services
from guard.store.tables import decision_rules, ledger
from tests.conftest import accepted, person

SCREEN = {"channel": "email", "purpose": "newsletter", "sender": "oem"}


@pytest.fixture
def app(engine, policy, clock):
    return create_app({"GUARD": Guard(engine, policy, clock=clock), "TESTING": True})


def indexed(engine) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(decision_rules.c.rule, decision_rules.c.decision_id)))


def test_every_rule_of_a_decisions_reasons_is_indexed_once_and_allowed_plain_ones_not(app,
                                                                                   engine):
    guard = services(app).guard
    accepted(guard.ingest([person("003A", "anna@example.com")]))
    plain = guard.check({**SCREEN, "purpose": "transactional", "to": "anna@example.com"})
    stopped = [guard.check({**SCREEN, "to": "nobody@example.com"}),
               guard.check({**SCREEN, "to": "nobody@example.com"}, commit=False)]
    screened = [d for _, d in guard.screen(SCREEN, ["x@example.com", "y@example.com"])]
    assert not plain.reasons
    expected = {(f.rule, d.decision_id) for d in stopped + screened for f in d.reasons}
    assert expected and indexed(engine) == expected
    with engine.connect() as conn:
        times = dict(conn.execute(sa.select(ledger.c.id, ledger.c.at)).all())
        kept = conn.execute(sa.select(decision_rules.c.decision_id, decision_rules.c.at)).all()
    assert all(times[decision_id] == at for decision_id, at in kept)


def test_purged_decisions_take_their_rules_with_them(app, engine, clock):
    guard = services(app).guard
    old = [d.decision_id for _, d in guard.screen(SCREEN, ["a@example.com", "b@example.com"])]
    clock.now += timedelta(days=20)
    recent = guard.check({**SCREEN, "to": "c@example.com"}, commit=False).decision_id
    clock.now += timedelta(days=11)  # the screen's dry runs are past their 30 days

    worker.run_jobs(app, worker.scheduled_jobs(app))

    left = {decision_id for _, decision_id in indexed(engine)}
    assert left == {recent} and not set(old) & left
