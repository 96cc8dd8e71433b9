"""A send's decisions and its outbox rows commit together or not at all."""

from __future__ import annotations

import base64
import json
import threading
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from guard import worker
from guard.errors import InvalidField
from guard.http import keys
from guard.proxy import sendgrid
from guard.proxy.outbox import Item, Outbox
from guard.proxy.transport import Outcome, Reply
from guard.services import services
from guard.store.tables import ledger

from .conftest import CALLER_SID

A, B = "anna@example.com", "ben@example.com"
MESSAGES = f"/2010-04-01/Accounts/{CALLER_SID}/Messages.json"


def mail(*personalizations) -> dict:
    return {"personalizations": list(personalizations), "from": {"email": "news@oem.example"},
            "subject": "News", "content": [{"type": "text/plain", "value": "Hello"}]}


def post_mail(app, token, body):
    return app.test_client().post("/v3/mail/send", data=json.dumps(body), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def post_sms(app, token, to="+491701234567"):
    auth = base64.b64encode(f"{CALLER_SID}:{token}".encode()).decode()
    return app.test_client().post(
        MESSAGES, data=urlencode({"To": to, "From": "+4930123456", "Body": "Hi"}),
        headers={"Authorization": f"Basic {auth}",
                 "Content-Type": "application/x-www-form-urlencoded"})


def ledger_rows(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(ledger)).scalar()


@pytest.fixture
def real(make_app, guard):
    app = make_app(guard)
    _, token = keys.create_key(guard.engine, "mail tool", ["send"], sender="oem",
                               purpose="transactional")
    return app, token


def test_a_recipient_the_guard_cannot_judge_stores_nothing(client, token, standin, upstream,
                                                          app):
    def unjudgeable(attempt):
        raise InvalidField("to", f"cannot judge {attempt['to']}")

    standin.verdicts[B] = unjudgeable
    response = client.post("/v3/mail/send", data=json.dumps(mail({"to": [{"email": A}]},
                                                                 {"to": [{"email": B}]})),
                           headers={"Authorization": f"Bearer {token}",
                                    "Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "to"
    assert upstream.received == []
    assert services(app).outbox.counts() == {}
    assert standin.checks == []


def test_one_bad_recipient_rolls_back_the_whole_request(real, guard, upstream, monkeypatch):
    app, token = real
    # Let a bad purpose past the proxy's own early check, so the Guard's check finds it.
    monkeypatch.setattr(sendgrid, "validate_attempts", lambda *args: None)
    body = mail({"to": [{"email": A}]},
                {"to": [{"email": B}], "custom_args": {"guard_purpose": "bogus"}})
    response = post_mail(app, token, body)
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "purpose"
    assert upstream.received == []
    assert ledger_rows(guard.engine) == 0
    assert services(app).outbox.counts() == {}


def test_a_mail_whose_outbox_write_fails_leaves_no_counted_decision(real, guard, upstream,
                                                                    monkeypatch):
    app, token = real

    def full(self, conn, item):
        raise RuntimeError("outbox full")

    monkeypatch.setattr(Outbox, "start_sending_in", full)
    assert post_mail(app, token, mail({"to": [{"email": A}, {"email": B}]})).status_code == 500
    assert ledger_rows(guard.engine) == 0
    assert upstream.received == []
    monkeypatch.undo()
    response = post_mail(app, token, mail({"to": [{"email": A}, {"email": B}]}))
    assert response.status_code == 202
    assert ledger_rows(guard.engine) == 2
    assert services(app).outbox.counts() == {"sent": 1}


def test_an_sms_whose_outbox_write_fails_leaves_no_counted_decision(make_app, guard, upstream,
                                                                   monkeypatch):
    app = make_app(guard)
    _, token = keys.create_key(guard.engine, "sms tool", ["send"], sender="oem",
                               purpose="transactional")

    def full(self, conn, item):
        raise RuntimeError("outbox full")

    monkeypatch.setattr(Outbox, "start_sending_in", full)
    assert post_sms(app, token).status_code == 500
    assert ledger_rows(guard.engine) == 0
    assert upstream.received == []
    monkeypatch.undo()
    assert post_sms(app, token).status_code == 201
    assert ledger_rows(guard.engine) == 1
    assert services(app).outbox.counts() == {"sent": 1}


def test_mail_rows_commit_with_their_decisions(real, guard, upstream):
    app, token = real
    response = post_mail(app, token, mail({"to": [{"email": A}, {"email": B}]}))
    assert response.status_code == 202
    box: Outbox = services(app).outbox
    [row] = box.rows("sent")
    ids = response.headers["X-Guard-Decisions"].split(",")
    assert sorted(row["decision_ids"]) == sorted(ids)
    assert all(guard.decision(i)["committed"] for i in ids)


def _hold_for_recheck(box: Outbox, key: str, purpose_a: str, purpose_b: str) -> str:
    """Hold a mail to A and B whose release re-checks each with the given purpose."""
    return box.hold(Item(
        "sendgrid", "mail", mail({"to": [{"email": A}]}), key,
        recipients=[A, B], defaults={"sender": "oem"}, needs_check=True,
        checks=[{"channel": "email", "to": A, "purpose": purpose_a},
                {"channel": "email", "to": B, "purpose": purpose_b}]))


def test_a_recheck_with_one_bad_check_stores_no_decision_and_drops_the_row(make_app, guard,
                                                                          upstream):
    app = make_app(guard)
    box: Outbox = services(app).outbox
    row_id = _hold_for_recheck(box, "k-bad", "newsletter", "bogus")
    worker.release_due(app)
    row = box.get(row_id)
    assert row["status"] == "dropped"
    assert "purpose" in row["last_error"]
    assert ledger_rows(guard.engine) == 0
    assert upstream.received == []


def test_a_recheck_settles_the_row_with_its_decisions(make_app, guard, upstream):
    app = make_app(guard)
    box: Outbox = services(app).outbox
    row_id = _hold_for_recheck(box, "k-good", "transactional", "transactional")
    worker.release_due(app)
    row = box.get(row_id)
    assert row["status"] == "sent"
    assert len(row["decision_ids"]) == 2
    assert all(guard.decision(i)["committed"] for i in row["decision_ids"])
    assert len(upstream.received) == 1


def test_sends_finishing_together_are_each_settled(app):
    box: Outbox = services(app).outbox
    claims = [box.start_sending(Item("sendgrid", "mail", {"n": n}, f"key-{n}", recipients=[A]))
              for n in range(12)]
    sent = Outcome("sent", Reply(202, {}, b""), attempts=1)
    rejected = Outcome("rejected", Reply(400, {}, b"{}"), attempts=1)
    results: dict[int, str] = {}
    start = threading.Barrier(len(claims))

    def finish(n: int) -> None:
        start.wait()
        results[n] = box.finish(claims[n], sent if n % 3 else rejected)

    threads = [threading.Thread(target=finish, args=(n,)) for n in range(len(claims))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {n: "sent" if n % 3 else "rejected" for n in range(len(claims))}
    assert box.counts() == {"sent": 8, "rejected": 4}
    # A settled row is not settled again by a late report.
    box.finish(claims[1], rejected)
    assert box.counts() == {"sent": 8, "rejected": 4}
