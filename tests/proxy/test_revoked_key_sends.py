"""Sends a key left in the outbox are not sent once the key is revoked (or removed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from guard import worker
from guard.http import keys
from guard.services import services
from guard.store.tables import api_keys, outbox

from .test_twilio import send

ANNA, BEN = "anna@example.com", "ben@example.com"
ANNA_PHONE, BEN_PHONE = "+491701234567", "+491707654321"


def mail_to(app, token, to):
    body = {"personalizations": [{"to": [{"email": to}]}], "from": {"email": "o@oem.example"},
            "subject": "Hi", "content": [{"type": "text/plain", "value": "Hello"}]}
    return app.test_client().post("/v3/mail/send", data=json.dumps(body), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})


def sms_to(app, token, to):
    return send(app.test_client(), token, form={"To": to, "From": "+4930123456", "Body": "Hi"})


TRANSPORTS = {"sendgrid": (mail_to, ANNA, BEN), "twilio": (sms_to, ANNA_PHONE, BEN_PHONE)}


def revoke(engine, key_id):
    keys.revoke_key(engine, key_id)


def delete(engine, key_id):
    with engine.begin() as conn:
        conn.execute(sa.delete(api_keys).where(api_keys.c.id == key_id))


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize(("end", "reason"), [(revoke, "was revoked"), (delete, "no longer exists")],
                         ids=["revoked", "row-deleted"])
def test_held_sends_of_a_revoked_key_are_dropped_not_sent(app, standin, upstream, transport,
                                                          end, reason):
    engine = services(app).engine
    post, mine, theirs = TRANSPORTS[transport]
    leaving, leaving_secret = keys.create_key(engine, "leaving tool", ["send"], sender="oem",
                                              purpose="promotion")
    _, staying_secret = keys.create_key(engine, "staying tool", ["send"], sender="oem",
                                        purpose="promotion")
    standin.verdicts.update({mine: "defer", theirs: "defer"})
    assert post(app, leaving_secret, mine).status_code in (201, 202)
    assert post(app, staying_secret, theirs).status_code in (201, 202)
    end(engine, leaving.id)
    # Their time comes; the re-check would let both go.
    standin.verdicts.update({mine: "allow", theirs: "allow"})
    with engine.begin() as conn:
        conn.execute(outbox.update().values(not_before=datetime.now(UTC) - timedelta(minutes=1)))
    checks_before = len(standin.checks)

    counts = worker.release_due(app)

    assert counts == {"dropped": 1, "sent": 1}
    rows = {row["key_id"]: row for row in services(app).outbox.rows()}
    dropped = rows[leaving.id]
    assert dropped["status"] == "dropped"
    assert leaving.id in dropped["last_error"] and reason in dropped["last_error"]
    [sent] = upstream.received
    assert theirs in unquote(sent.body.decode())
    # Only the staying key's send was checked again; the revoked one was never judged.
    assert [c["to"] for c in standin.checks[checks_before:]] == [theirs]
