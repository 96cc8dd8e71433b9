"""Releasing the outbox: checked again when due, claimed once, never sent twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from guard import worker
from guard.proxy.outbox import Item, Outbox
from guard.proxy.transport import Outcome
from guard.services import services

ANNA = "anna@example.com"


def held_mail(box: Outbox, to: str = ANNA, *, due: datetime | None = None, key: str = "k1",
              needs_check: bool = True) -> str:
    return box.hold(Item(
        "sendgrid", "mail",
        {"personalizations": [{"to": [{"email": to}]}], "from": {"email": "o@oem.example"},
         "subject": "Hi", "content": [{"type": "text/plain", "value": "Hello"}]},
        key, recipients=[to], checks=[{"channel": "email", "to": to, "purpose": "promotion"}],
        defaults={"sender": "oem"}, not_before=due, needs_check=needs_check))


@pytest.fixture
def box(app) -> Outbox:
    return services(app).outbox


@pytest.mark.parametrize(
    ("verdict", "status", "forwarded"),
    [("allow", "sent", 1), ("block", "dropped", 0), ("reroute", "dropped", 0),
     ("defer", "held", 0)],
    ids=["still-allowed", "opted-out-since", "owner-took-over", "still-too-early"],
)
def test_due_rows_are_checked_again_at_release(app, box, standin, upstream, verdict, status,
                                               forwarded):
    row_id = held_mail(box)
    standin.verdicts[ANNA] = verdict
    worker.release_due(app)
    row = box.get(row_id)
    assert row["status"] == status
    assert len(upstream.received) == forwarded
    [check] = standin.checks
    assert (check["to"], check["purpose"], check["sender"], check["commit"]) == (
        ANNA, "promotion", "oem", True)
    assert len(row["decision_ids"]) == 1
    if verdict == "defer":
        assert datetime.fromisoformat(row["not_before"]) > datetime.now(UTC)
    if verdict == "block":
        assert "opted out" in row["last_error"]


def test_rows_not_yet_due_wait(app, box, upstream):
    held_mail(box, due=datetime.now(UTC) + timedelta(hours=1))
    worker.release_due(app)
    assert upstream.received == []
    assert box.counts() == {"held": 1}


def test_an_unjudgeable_row_is_dropped_not_sent(app, box, standin, upstream):
    row_id = box.hold(Item("sendgrid", "mail", {"personalizations": []}, "k2",
                           checks=[{"channel": "email", "to": ANNA, "purpose": "bogus"}],
                           needs_check=True))
    worker.release_due(app)
    assert box.get(row_id)["status"] == "dropped"
    assert "purpose" in box.get(row_id)["last_error"]
    assert upstream.received == []


def test_the_same_recipient_of_the_same_message_is_queued_once(box):
    assert held_mail(box, key="same") is not None
    assert held_mail(box, key="same") is None
    assert box.counts() == {"held": 1}


def test_a_send_is_recorded_once_per_key(box):
    item = Item("sendgrid", "mail", {"personalizations": []}, "send-1", recipients=[ANNA])
    assert box.start_sending(item) is not None
    assert box.start_sending(item) is None
    assert box.counts() == {"sending": 1}


def test_holding_a_batch_skips_the_keys_queued_before(box):
    held_mail(box, key="first")
    items = [Item("sendgrid", "mail", {"personalizations": []}, key, recipients=[ANNA])
             for key in ("first", "second", "second")]
    first, second, again = box.hold_all(items)
    assert first is None and second is not None and again is None
    assert box.counts() == {"held": 2}


def test_a_row_is_claimed_by_one_worker_only(box):
    held_mail(box)
    first = box.claim_due()
    assert first is not None
    assert box.claim_due() is None


def test_a_crash_before_sending_loses_nothing(app, box, upstream, standin):
    """A worker that died holding a claim (not yet sending): the row is due again."""
    row_id = held_mail(box)
    box.claim_due()
    worker.release_due(app)
    assert upstream.received == []  # the lease has not run out
    box.lease = timedelta(0)
    worker.release_due(app)
    assert box.get(row_id)["status"] == "sent"
    assert len(upstream.received) == 1


def test_a_crash_while_sending_is_never_resent(app, box, upstream):
    """The provider may have sent it: the row becomes unknown for a human, not sent again."""
    row_id = held_mail(box, needs_check=False)
    claim = box.claim_due()
    assert box.begin_send(claim)
    box.lease = timedelta(0)
    counts = worker.release_due(app)
    assert counts["unknown"] == 1
    row = box.get(row_id)
    assert row["status"] == "unknown"
    assert "check the provider" in row["last_error"]
    assert upstream.received == []
    # A human checked the provider: not there, so send it.
    assert box.retry(row_id)
    worker.release_due(app)
    assert box.get(row_id)["status"] == "sent"
    assert len(upstream.received) == 1


def test_a_slow_sender_still_records_what_it_learnt(box):
    row_id = held_mail(box, needs_check=False)
    claim = box.claim_due()
    box.begin_send(claim)
    box.lease = timedelta(0)
    box.recover_stale()
    assert box.get(row_id)["status"] == "unknown"
    box.finish(claim, Outcome("sent", attempts=1))
    assert box.get(row_id)["status"] == "sent"


def test_a_lost_claim_cannot_be_settled(box):
    row_id = held_mail(box)
    claim = box.claim_due()
    box.lease = timedelta(0)
    box.recover_stale()
    again = box.claim_due()
    assert again.token != claim.token
    assert not box.begin_send(claim)
    assert box.begin_send(again)
    assert box.get(row_id)["status"] == "sending"


def test_scheduled_jobs_run_each_cycle_and_one_failure_does_not_stop_the_rest(app, monkeypatch):
    ran = []

    def broken(app_):
        raise RuntimeError("CRM down")

    monkeypatch.setattr(worker, "scheduled_jobs",
                        lambda _: [broken, lambda app_: ran.append(app_)])
    worker.run(app, once=True)
    assert ran == [app]


def test_worker_command_releases_due_rows_once(app, box, upstream, monkeypatch):
    from click.testing import CliRunner

    from guard.cli import main

    held_mail(box, needs_check=False)
    monkeypatch.setattr("guard.cli.worker.service_app", lambda **_: app)
    result = CliRunner().invoke(main, ["worker", "--once"])
    assert result.exit_code == 0, result.output
    assert "sent=1" in result.output
    assert len(upstream.received) == 1


def test_outbox_commands_list_and_settle_unknown_rows(app, box, monkeypatch):
    from click.testing import CliRunner

    from guard.cli import main

    row_id = held_mail(box, needs_check=False)
    box.begin_send(box.claim_due())
    box.lease = timedelta(0)
    box.recover_stale()
    monkeypatch.setattr("guard.cli.outbox.service_app", lambda **_: app)
    runner = CliRunner()
    listed = runner.invoke(main, ["outbox", "list", "--status", "unknown"])
    assert listed.exit_code == 0
    assert row_id in listed.output
    assert runner.invoke(main, ["outbox", "mark-sent", row_id]).exit_code == 0
    assert box.get(row_id)["status"] == "sent"
    again = runner.invoke(main, ["outbox", "mark-sent", row_id])
    assert again.exit_code == 1
    assert "no unknown row" in again.output
