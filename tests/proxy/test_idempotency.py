"""A retried provider request with the same Idempotency-Key is answered once and sent once."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa

from guard import worker
from guard.http import keys
from guard.proxy import idempotency
from guard.services import services
from guard.store.tables import idempotency_keys, ledger, outbox

from .conftest import CALLER_SID
from .upstream import Serving

A, B = "anna@example.com", "ben@example.com"
PHONE = "+491701234567"
MESSAGES = f"/2010-04-01/Accounts/{CALLER_SID}/Messages.json"


def newsletter(*recipients, campaign=None) -> dict:
    body = {"personalizations": [{"to": [{"email": r} for r in recipients]}],
            "from": {"email": "news@oem.example"}, "subject": "News",
            "content": [{"type": "text/plain", "value": "Hello"}]}
    if campaign:
        body["custom_args"] = {"guard_campaign": campaign}
    return body


def three_recent_newsletters_for(guard, address: str) -> None:
    """Give ``address`` three marketing contacts this month: the next is the cap's fourth."""
    now = datetime.now(UTC)
    events = [{"type": "person", "source": {"system": "crm", "id": "p-a"}, "emails": [address],
               "stage": "customer"}]
    events += [{"type": "touch", "source": {"system": "crm", "id": f"t-{n}"},
                "person": {"email": address}, "channel": "email", "purpose": "newsletter",
                "sender": "oem", "at": (now - timedelta(days=n + 1)).isoformat()}
               for n in range(3)]
    assert guard.ingest(events)["rejected"] == []


def decisions(engine) -> list[tuple]:
    with engine.connect() as conn:
        return conn.execute(sa.select(ledger.c.verdict, ledger.c.committed).where(
            ledger.c.decision.is_not(None)).order_by(ledger.c.verdict)).all()


def outbox_rows(engine, app=None) -> list[tuple]:
    if app is not None:
        services(app).outbox.flush()  # delivered sends settle after their answer
    with engine.connect() as conn:
        return conn.execute(sa.select(outbox.c.status, outbox.c.recipients)
                            .order_by(outbox.c.status)).all()


@pytest.fixture
def tool(make_app, guard):
    app = make_app(guard)
    _, token = keys.create_key(guard.engine, "newsletter tool", ["send"], sender="oem",
                               purpose="newsletter")
    return app, token


def post(app, token, body, key="K-1", **headers):
    return app.test_client().post("/v3/mail/send", data=json.dumps(body), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json",
        **({"Idempotency-Key": key} if key is not None else {}), **headers})


def guard_headers(response) -> dict:
    return {k: v for k, v in response.headers.items() if k.startswith("X-Guard-")}


def test_a_retried_mail_is_not_delivered_decided_or_held_again(tool, guard, upstream):
    app, token = tool
    three_recent_newsletters_for(guard, A)
    first = post(app, token, newsletter(A, B))
    assert first.status_code == 202
    before = (decisions(guard.engine), outbox_rows(guard.engine, app))

    again = post(app, token, newsletter(A, B))

    assert again.status_code == 202
    assert guard_headers(again) == guard_headers(first)
    assert len(upstream.received) == 1
    assert [t["email"] for t in upstream.received[0].json()["personalizations"][0]["to"]] == [A, B]
    # No second decision (so no second count toward A's cap), and no held copy for A.
    assert (decisions(guard.engine), outbox_rows(guard.engine, app)) == before
    assert [status for status, _ in outbox_rows(guard.engine, app)] == ["sent"]


def test_a_retried_campaign_mail_is_not_blocked_as_a_duplicate_of_itself(tool, guard, upstream):
    app, token = tool
    guard.ingest([{"type": "campaign", "source": {"system": "crm", "id": "c-1"},
                   "id": "winter-news", "purpose": "newsletter"}])
    first = post(app, token, newsletter(B, campaign="winter-news"))
    again = post(app, token, newsletter(B, campaign="winter-news"))
    assert first.headers["X-Guard-Blocked"] == again.headers["X-Guard-Blocked"] == "0"
    assert len(upstream.received) == 1


def test_the_same_key_with_another_body_is_a_conflict_naming_the_header(tool, guard, upstream):
    app, token = tool
    assert post(app, token, newsletter(A)).status_code == 202
    before = decisions(guard.engine)
    other = post(app, token, newsletter(B))
    assert other.status_code == 409
    assert other.get_json()["errors"][0]["field"] == "Idempotency-Key"
    assert decisions(guard.engine) == before
    assert len(upstream.received) == 1


def test_keys_are_kept_per_api_key(tool, guard, upstream):
    app, token = tool
    _, other_token = keys.create_key(guard.engine, "another tool", ["send"], sender="oem",
                                     purpose="newsletter")
    assert post(app, token, newsletter(A)).status_code == 202
    # Another tool that happens to use the same key value sends its own mail.
    assert post(app, other_token, newsletter(B)).status_code == 202
    assert len(upstream.received) == 2


@pytest.mark.parametrize("value", ["", "x" * 256, "tab\there"], ids=["empty", "long", "control"])
def test_a_malformed_key_is_refused_before_anything_is_decided(tool, guard, upstream, value):
    app, token = tool
    response = post(app, token, newsletter(A), key=value)
    assert response.status_code == 400
    assert response.get_json()["errors"][0]["field"] == "Idempotency-Key"
    assert decisions(guard.engine) == [] and upstream.received == []


def test_a_refused_mail_is_answered_with_the_refusal_again(tool, guard, upstream):
    app, token = tool
    upstream.script.append((400, {}, {"errors": [{"message": "bad from", "field": "from"}]}))
    first = post(app, token, newsletter(A))
    again = post(app, token, newsletter(A))
    assert first.status_code == again.status_code == 400
    assert again.get_json() == first.get_json() == {
        "errors": [{"message": "bad from", "field": "from"}]}
    assert len(upstream.received) == 1


def test_a_request_that_lost_the_race_rolls_back_and_replays_the_winner(tool, guard, upstream,
                                                                        monkeypatch):
    app, token = tool
    three_recent_newsletters_for(guard, A)
    first = post(app, token, newsletter(A, B))
    before = (decisions(guard.engine), outbox_rows(guard.engine, app))
    # As if the retry had looked before the first one committed: it decides (A is deferred
    # now) and only then finds the stored answer.
    answers = services(app).answers
    real_replay = answers.replay
    looks = []

    def late(claimed):
        looks.append(claimed)
        return None if len(looks) == 1 else real_replay(claimed)

    monkeypatch.setattr(answers, "replay", late)
    again = post(app, token, newsletter(A, B))

    assert len(looks) == 2
    assert again.status_code == 202 and guard_headers(again) == guard_headers(first)
    assert (decisions(guard.engine), outbox_rows(guard.engine, app)) == before
    assert len(upstream.received) == 1


def test_the_real_sendgrid_client_retrying_sends_once(tool, guard, upstream):
    sendgrid = pytest.importorskip("sendgrid")
    app, token = tool
    with Serving(app) as live:
        client = sendgrid.SendGridAPIClient(token, host=live.url)
        answers = [client.client.mail.send.post(request_body=newsletter(A, B),
                                                request_headers={"Idempotency-Key": "retry-1"})
                   for _ in range(3)]
    assert {a.status_code for a in answers} == {202}
    assert len({a.headers["X-Guard-Decisions"] for a in answers}) == 1
    assert len(upstream.received) == 1


def twilio_client(live, token, key: str):
    from twilio.http.http_client import TwilioHttpClient
    from twilio.rest import Client

    class ToGuard(TwilioHttpClient):
        def request(self, method, url, params=None, data=None, headers=None, *args, **kwargs):
            url = url.replace("https://api.twilio.com", live.url)
            headers = {**(headers or {}), "Idempotency-Key": key}
            return super().request(method, url, params, data, headers, *args, **kwargs)

    return Client(CALLER_SID, token, http_client=ToGuard())


def test_the_real_twilio_client_retrying_creates_one_message(make_app, guard, upstream):
    app = make_app(guard)
    _, token = keys.create_key(guard.engine, "sms tool", ["send"], sender="service",
                               purpose="transactional")
    with Serving(app) as live:
        client = twilio_client(live, token, "sms-1")
        sent = [client.messages.create(to=PHONE, from_="+4930123456", body="Your car is ready")
                for _ in range(3)]
    assert len({m.sid for m in sent}) == 1
    assert len(upstream.received) == 1
    assert len(decisions(guard.engine)) == 1


def test_a_retried_blocked_sms_is_refused_again_without_a_new_decision(make_app, guard, upstream):
    app = make_app(guard)
    guard.ingest([{"type": "consent", "source": {"system": "crm", "id": "o-1"}, "phone": PHONE,
                   "channel": "*", "purpose": "*", "status": "opt_out",
                   "at": "2026-01-05T09:00:00Z"}])
    _, token = keys.create_key(guard.engine, "sms tool", ["send"], sender="oem",
                               purpose="promotion")
    auth = base64.b64encode(f"{CALLER_SID}:{token}".encode()).decode()

    def send():
        return app.test_client().post(MESSAGES, data=urlencode(
            {"To": PHONE, "From": "+4930123456", "Body": "Sale"}), headers={
            "Authorization": f"Basic {auth}", "Idempotency-Key": "promo-7",
            "Content-Type": "application/x-www-form-urlencoded"})

    first, again = send(), send()
    assert first.status_code == again.status_code == 400
    assert again.get_json() == first.get_json() and again.get_json()["code"] == 21610
    assert again.headers["X-Guard-Decisions"] == first.headers["X-Guard-Decisions"]
    assert len(decisions(guard.engine)) == 1 and upstream.received == []


def test_answers_are_kept_for_the_configured_time(tool, guard, upstream):
    app, token = tool
    post(app, token, newsletter(A))
    assert app.config["IDEMPOTENCY_HOURS"] == 24
    worker.purge_expired(app)
    post(app, token, newsletter(A))
    assert len(upstream.received) == 1
    with guard.engine.begin() as conn:
        conn.execute(idempotency_keys.update().values(
            created_at=datetime.now(UTC) - timedelta(hours=25)))
    worker.purge_expired(app)
    with guard.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(idempotency_keys)).scalar() == 0
    # Past the window the key is free again: a send under it is a new send.
    post(app, token, newsletter(A))
    assert len(upstream.received) == 2


SENDER = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from guard import create_app
    url, upstream, token, start, out = sys.argv[1:6]
    app = create_app({"DATABASE_URL": url, "SENDGRID_URL": upstream,
                      "SENDGRID_API_KEY": "SG.guard", "TESTING": True,
                      "IDEMPOTENCY_WAIT": 5})
    body = json.dumps({"personalizations": [{"to": [{"email": "anna@example.com"},
                                                   {"email": "ben@example.com"}]}],
                       "from": {"email": "news@oem.example"}, "subject": "News",
                       "content": [{"type": "text/plain", "value": "Hello"}]})
    client = app.test_client()
    Path(out + ".ready").touch()
    while not Path(start).exists():
        time.sleep(0.001)
    response = client.post("/v3/mail/send", data=body, headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/json",
        "Idempotency-Key": "race-1"})
    response.close()  # as a server does once the answer is out: the send settles
    Path(out).write_text(json.dumps({"status": response.status_code, "headers": {
        k: v for k, v in response.headers.items() if k.startswith("X-Guard-")}}))
""")


def run_sender(db_url, upstream_url, token, start: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", SENDER, db_url, upstream_url, token,
                             str(start), str(out)], env={**os.environ, "GUARD_ADMIN_KEY": ""})


def test_two_processes_racing_with_one_key_make_one_send(db_url, engine, upstream, tmp_path):
    _, token = keys.create_key(engine, "newsletter tool", ["send"], sender="oem",
                               purpose="newsletter")
    start = tmp_path / "go"
    outs = [tmp_path / "one.json", tmp_path / "two.json"]
    upstream.delay = 0.2
    senders = [run_sender(db_url, upstream.url, token, start, out) for out in outs]
    deadline = time.monotonic() + 120
    while not all(Path(f"{out}.ready").exists() for out in outs):
        assert time.monotonic() < deadline, "the senders never got ready"
        time.sleep(0.01)
    start.touch()
    for sender in senders:
        assert sender.wait(120) == 0
    one, two = (json.loads(out.read_text()) for out in outs)
    assert one == two and one["status"] == 202
    assert len(upstream.received) == 1
    assert sorted(decisions(engine)) == [("allow", True), ("allow", True)]
    assert [status for status, _ in outbox_rows(engine)] == ["sent"]


CRASHING = textwrap.dedent("""
    import json, sys
    from guard import create_app
    url, upstream, token = sys.argv[1:4]
    app = create_app({"DATABASE_URL": url, "SENDGRID_URL": upstream,
                      "SENDGRID_API_KEY": "SG.guard", "TESTING": True})
    body = json.dumps({"personalizations": [{"to": [{"email": "anna@example.com"}]}],
                       "from": {"email": "news@oem.example"}, "subject": "News",
                       "content": [{"type": "text/plain", "value": "Hello"}]})
    app.test_client().post("/v3/mail/send", data=body, headers={
        "Authorization": "Bearer " + token, "Content-Type": "application/json",
        "Idempotency-Key": "dies-1"})
""")


def test_a_retry_after_the_first_died_mid_send_gets_the_stored_answer(db_url, engine, upstream,
                                                                      make_app, guard):
    _, token = keys.create_key(engine, "newsletter tool", ["send"], sender="oem",
                               purpose="newsletter")
    upstream.hold_from = 1
    first = subprocess.Popen([sys.executable, "-c", CRASHING, db_url, upstream.url, token],
                             env={**os.environ, "GUARD_ADMIN_KEY": ""})
    try:
        assert upstream.holding.wait(60), "the first request never reached the provider"
        # Killed after its decisions and answer committed, before it could answer.
        first.send_signal(signal.SIGKILL)
        first.wait(30)
    finally:
        upstream.release.set()
        if first.poll() is None:
            first.kill()
    app = make_app(guard, IDEMPOTENCY_WAIT=0.3)
    retry = post(app, token, newsletter(A), key="dies-1")

    assert retry.status_code == 202
    assert retry.headers["X-Guard-Blocked"] == "0"
    assert len(retry.headers["X-Guard-Decisions"].split(",")) == 1
    assert len(upstream.received) == 1
    assert decisions(engine) == [("allow", True)]
    # The send is the outbox's: left 'sending', it becomes 'unknown', never sent again.
    assert [status for status, _ in outbox_rows(engine)] == ["sending"]


def test_presented_keys_hash_the_value_and_fingerprint_the_request(app):
    with app.test_request_context("/v3/mail/send", method="POST",
                                  headers={"Idempotency-Key": "k", "X-Guard-Purpose": "a"}):
        one = idempotency.presented("key_1", b"{}")
    with app.test_request_context("/v3/mail/send", method="POST",
                                  headers={"Idempotency-Key": "k", "X-Guard-Purpose": "b"}):
        other = idempotency.presented("key_1", b"{}")
    assert one.key_hash == other.key_hash and one.header == "k"
    assert one.fingerprint != other.fingerprint
    with app.test_request_context("/v3/mail/send", method="POST"):
        assert idempotency.presented("key_1", b"{}") is None
