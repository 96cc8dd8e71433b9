"""The outbox's fast paths: deferred settling of delivered sends, and driver-level statements."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from guard.proxy.outbox import _INSERT, Item, Outbox
from guard.proxy.transport import FAILED, REJECTED, SENT, UNKNOWN, Outcome, Reply
from guard.store.tables import outbox

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def stored_status(engine, row_id: str) -> str:
    """Read a row's status straight from the table, past the outbox (which would flush)."""
    with engine.connect() as conn:
        return conn.execute(sa.select(outbox.c.status).where(outbox.c.id == row_id)).scalar()


def item(key: str, **extra) -> Item:
    return Item("sendgrid", "mail", {"personalizations": [{"to": [{"email": "a@example.com"}]}],
                                     "subject": "Grüße"}, key,
                recipients=["a@example.com"], checks=[{"to": "a@example.com"}],
                defaults={"sender": "oem"}, decision_ids=["d1"], key_id="k", **extra)


def reply(status: int, body: bytes = b"") -> Reply:
    return Reply(status, {"X-Message-Id": "m1"}, body)


@pytest.fixture
def box(engine) -> Outbox:
    return Outbox(engine, clock=lambda: NOW)


def test_a_deferred_delivered_send_is_settled_once_its_response_is_out(box, engine):
    claim = box.start_sending(item("k1"))
    assert box.finish(claim, Outcome(SENT, reply(202), attempts=1), defer=True) == "sent"
    assert stored_status(engine, claim.id) == "sending"  # not yet: the caller is answered first
    box.settle_deferred()
    assert stored_status(engine, claim.id) == "sent"


def test_a_deferred_settle_writes_what_a_synchronous_one_writes(box, engine):
    now_claim = box.start_sending(item("now"))
    later_claim = box.start_sending(item("later"))
    outcome = Outcome(SENT, reply(202, b"ok"), attempts=2)
    box.finish(now_claim, outcome)
    box.finish(later_claim, outcome, defer=True)
    box.settle_deferred()
    now, later = box.get(now_claim.id), box.get(later_claim.id)
    for row in (now, later):
        row.pop("id")
        row.pop("idempotency_key")
    assert now == later
    assert now["status"] == "sent" and now["tries"] == 2 and now["response_body"] == "ok"


@pytest.mark.parametrize("outcome", [
    Outcome(FAILED, reply(503), error="upstream answered 503", attempts=3),
    Outcome(REJECTED, reply(400, b'{"errors": []}'), error="upstream answered 400", attempts=1),
    Outcome(UNKNOWN, error="no answer after sending", attempts=1),
], ids=["failed", "rejected", "unknown"])
def test_only_a_delivered_send_waits(box, engine, outcome):
    claim = box.start_sending(item("k1"))
    status = box.finish(claim, outcome, defer=True)
    assert stored_status(engine, claim.id) == status != "sending"


def test_reading_the_outbox_writes_the_pending_settles_first(box):
    claims = [box.start_sending(item(f"k{i}")) for i in range(3)]
    for claim in claims:
        box.finish(claim, Outcome(SENT, reply(202), attempts=1), defer=True)
    assert box.counts() == {"sent": 3}
    box.settle_deferred()  # nothing left: a no-op
    assert box.counts() == {"sent": 3}


def test_a_deferred_settle_never_overrides_a_claim_that_moved_on(box, engine):
    claim = box.start_sending(item("k1"))
    box.finish(claim, Outcome(SENT, reply(202), attempts=1), defer=True)
    # Meanwhile the row was taken from this sender (another claim token).
    with engine.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.id == claim.id)
                     .values(status="held", claim_token="someone-else"))
    box.settle_deferred()
    assert stored_status(engine, claim.id) == "held"


def test_the_driver_level_insert_stores_what_sqlalchemy_would(box, engine):
    full = item("fast", not_before=datetime(2027, 1, 2, 3, 4, 5, 6000, tzinfo=UTC),
                needs_check=True)
    fast_id = box.hold(full)
    row = box._row(item("slow", not_before=full.not_before, needs_check=True), "held", None)
    with engine.begin() as conn:
        slow_id = conn.execute(_INSERT[engine.dialect.name], row).scalar()
    fast, slow = box.get(fast_id), box.get(slow_id)
    for one in (fast, slow):
        one.pop("id")
        one.pop("idempotency_key")
    assert fast == slow
    assert fast["payload"]["subject"] == "Grüße"
    assert fast["needs_check"] is True
    assert fast["not_before"] == "2027-01-02T03:04:05.006000+00:00"
    assert json.dumps(fast["checks"]) == '[{"to": "a@example.com"}]'


def test_the_driver_level_insert_still_skips_a_known_key(box):
    assert box.hold(item("same")) is not None
    assert box.hold(item("same")) is None
    assert box.counts() == {"held": 1}
