"""A deferred HubSpot workflow action: HubSpot waits, the worker checks again, completes it.

HubSpot holds an execution answered ``{"outputFields": {"hs_execution_state":
"BLOCK", "hs_expiration_duration": "<ISO 8601>"}}`` until ``POST
/automation/v4/actions/callbacks/{callbackId}/complete`` (Bearer token) with
``{"outputFields": {…, "hs_execution_state": "SUCCESS"}}`` or until it expires
(Automation Actions API v4, "Complete a callback"; custom-action reference,
"Asynchronous custom action execution").
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from connectors.hubspot import Pacer, build_client, default_retry
from connectors.hubspot.client import Api
from guard.automation.hubspot_action import duration
from guard.automation.hubspot_waits import HubSpotWaits
from guard.store.tables import hubspot_actions
from tests.automation.conftest import SECRET, customer, decisions
from tests.automation.test_hubspot_action import execution, post
from tests.conftest import accepted, purchase

# 22:30 in Berlin: calls wait for 08:00 there (the shipped policy's call-hours).
LATE = datetime(2026, 11, 23, 21, 30, tzinfo=UTC)
OPENS = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
CALL = {"channel": "call", "purpose": "survey", "sender": "dealer:munich", "product": ""}


@pytest.fixture
def job(fake):
    client = build_client(fake.token, host=fake.url, retry=default_retry(backoff_factor=0.01))
    api = Api(client, pacer=Pacer(100_000, 1.0), search_pacer=Pacer(100_000, 1.0))
    return HubSpotWaits(lambda: api)


def state(engine, callback_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(hubspot_actions.c.state).where(
            hubspot_actions.c.callback_id == callback_id)).scalar_one()


@pytest.mark.parametrize("length, text", [
    (timedelta(minutes=1), "PT1M"), (timedelta(seconds=61), "PT2M"),
    (timedelta(hours=10, minutes=30), "PT10H30M"), (timedelta(days=8), "P8D"),
    (timedelta(days=1, hours=1), "P1DT1H"),
], ids=["minute", "rounded-up", "hours", "days", "day-and-hour"])
def test_expiration_durations_are_iso_8601(length, text):
    assert duration(length) == text


def test_a_deferred_contact_blocks_the_workflow_until_the_worker_completes_it(
        app, client, guard, engine, clock, fake, job):
    customer(guard)
    clock.now = LATE
    answer = post(client, execution("cb-late", **CALL)).get_json()
    # 9.5 hours until the call window opens, and an hour's grace for the worker.
    assert answer == {"outputFields": {"hs_execution_state": "BLOCK",
                                       "hs_expiration_duration": "PT10H30M"}}
    assert post(client, execution("cb-late", **CALL)).get_json() == answer
    job(app)
    assert fake.completed == {}  # not yet due
    clock.now = OPENS + timedelta(minutes=1)
    job(app)
    [completion] = fake.completed["cb-late"]
    fields = completion["outputFields"]
    assert (fields["hs_execution_state"], fields["verdict"]) == ("SUCCESS", "allow")
    assert state(engine, "cb-late") == "completed"
    made = decisions(engine)
    assert [(d["verdict"], d["via"]) for d in made] == [
        ("defer", "hubspot_workflow"), ("allow", "hubspot_workflow")]
    assert fields["decision_id"] == made[1]["id"]
    job(app)  # nothing is completed twice
    assert len(fake.completed["cb-late"]) == 1 and len(decisions(engine)) == 2


def test_a_completion_hubspot_did_not_take_is_sent_again_without_deciding_again(
        app, client, guard, engine, clock, fake, job):
    customer(guard)
    clock.now = LATE
    post(client, execution("cb-flaky", **CALL))
    clock.now = OPENS
    fake.fail_next = [502] * 10  # more than the transport's own retries
    job(app)
    assert state(engine, "cb-flaky") == "decided" and fake.completed == {}
    fake.fail_next = []
    job(app)
    assert fake.completed["cb-flaky"][0]["outputFields"]["verdict"] == "allow"
    assert state(engine, "cb-flaky") == "completed"
    assert len(decisions(engine)) == 2


def test_two_workers_check_a_due_contact_once(app, client, guard, engine, clock, fake, job):
    customer(guard)
    clock.now = LATE
    post(client, execution("cb-once", **CALL))
    clock.now = OPENS
    other = HubSpotWaits(job.factory)
    job(app)
    other(app)
    assert len(fake.completed["cb-once"]) == 1
    assert len(decisions(engine)) == 2


def test_without_hubspot_credentials_checked_contacts_wait_for_them(
        app, client, guard, engine, clock, fake):
    customer(guard)
    clock.now = LATE
    post(client, execution("cb-creds", **CALL))
    clock.now = OPENS
    HubSpotWaits(None)(app)
    assert state(engine, "cb-creds") == "decided"
    assert fake.completed == {}


def test_finished_executions_are_forgotten_after_the_inbox_retention_the_waiting_kept(
        app, client, guard, engine, clock, fake, job):
    customer(guard)
    post(client, execution("cb-done", purpose="newsletter", product=""))
    clock.now = LATE
    post(client, execution("cb-wait", **CALL))
    clock.now = LATE + timedelta(days=6)
    with engine.begin() as conn:  # a long deferral: cb-wait is due in a month
        conn.execute(hubspot_actions.update().values(due_at=LATE + timedelta(days=30)).where(
            hubspot_actions.c.callback_id == "cb-wait"))
    job(app)
    assert {state(engine, "cb-done"), state(engine, "cb-wait")} == {"answered", "waiting"}
    clock.now = LATE + timedelta(days=8)
    job(app)
    with engine.connect() as conn:
        left = conn.execute(sa.select(hubspot_actions.c.callback_id)).scalars().all()
    assert left == ["cb-wait"]
    assert len(decisions(engine)) == 2, "the decisions stay in the ledger"


def test_guard_worker_completes_the_callback_with_the_crms_hubspot_credentials(
        guard, engine, clock, fake, monkeypatch):
    from guard import create_app
    from guard.worker import run

    monkeypatch.setenv("GUARD_HUBSPOT_TOKEN", fake.token)
    monkeypatch.setenv("GUARD_HUBSPOT_URL", fake.url)
    monkeypatch.setenv("GUARD_SYNC_INTERVAL", "86400")
    app = create_app({"GUARD": guard, "TESTING": True, "HUBSPOT_WEBHOOK_SECRET": SECRET})
    customer(guard)
    clock.now = LATE
    post(app.test_client(), execution("cb-worker", **CALL))
    clock.now = OPENS
    run(app, once=True)
    assert fake.completed["cb-worker"][0]["outputFields"]["verdict"] == "allow"


def test_erasure_forgets_finished_executions_and_a_waiting_one_ends_blocked(
        app, client, guard, engine, clock, fake, job):
    customer(guard)
    accepted(guard.ingest([purchase("SO-1", {"hubspot": "501"})]))
    done = post(client, execution("cb-done")).get_json()
    assert "Bought audi-a4" in done["outputFields"]["reason"]
    clock.now = LATE
    post(client, execution("cb-wait", **CALL))

    accepted(guard.ingest([{"type": "erase", "source": {"system": "privacy", "id": "DSR-7"},
                            "person": {"email": "anna@example.com"}}]))

    with engine.connect() as conn:
        left = conn.execute(sa.select(hubspot_actions.c.callback_id)).scalars().all()
    assert left == ["cb-wait"], "HubSpot still waits on cb-wait; cb-done is forgotten"
    clock.now = OPENS + timedelta(minutes=1)
    job(app)
    [completion] = fake.completed["cb-wait"]
    fields = completion["outputFields"]
    assert (fields["hs_execution_state"], fields["verdict"]) == ("SUCCESS", "block")
    assert "erased" in fields["rules"].split(",")
    assert "anna" not in json.dumps(completion)
