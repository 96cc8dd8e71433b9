"""The Mail Send fast paths: an unchanged body is not rebuilt, the row settles after the reply."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import sqlalchemy as sa

from guard.proxy import sendgrid
from guard.services import services
from guard.store.tables import outbox

A, B, C = "anna@example.com", "ben@example.com", "carl@example.com"


def allow(_check):
    return SimpleNamespace(verdict="allow", decision_id="d", reroute=None, not_before=None)


def body(**pers) -> dict:
    return {"personalizations": [{"subject": "first", "to": [{"email": A, "name": "Anna"}],
                                  **pers}],
            "from": {"email": "news@oem.example"}, "subject": "News",
            "content": [{"type": "text/plain", "value": "Hello"}],
            "custom_args": {"guard_purpose": "transactional"}}


@pytest.mark.parametrize("extra", [{}, {"cc": [{"email": B}], "bcc": [{"email": C}]}],
                         ids=["to", "to-cc-bcc"])
def test_a_body_whose_recipients_all_pass_is_forwarded_as_it_came(extra):
    mail = body(**extra)
    result = sendgrid.plan(mail, allow)
    assert result.forward is mail
    # The same content rebuilding it gives (rebuild only reorders a personalization's keys).
    assert result.forward == sendgrid.rebuild(mail, result.allowed)


@pytest.mark.parametrize("extra", [{"cc": []}, {"bcc": None}], ids=["empty-cc", "null-bcc"])
def test_an_empty_cc_or_bcc_is_still_left_out(extra):
    mail = body(**extra)
    result = sendgrid.plan(mail, allow)
    assert result.forward is not mail
    assert result.forward == sendgrid.rebuild(mail, result.allowed)
    assert set(result.forward["personalizations"][0]) == {"subject", "to"}


def test_a_removed_recipient_still_rebuilds_the_body():
    mail = body(cc=[{"email": B}])
    result = sendgrid.plan(mail, lambda check: SimpleNamespace(
        verdict="block" if check["to"] == B else "allow", decision_id="d", reroute=None,
        not_before=None))
    assert result.forward["personalizations"][0]["to"] == [{"email": A, "name": "Anna"}]
    assert "cc" not in result.forward["personalizations"][0]


def test_the_sent_row_settles_when_the_response_is_closed(client, token, upstream, app):
    engine = services(app).engine
    response = client.post("/v3/mail/send", data=json.dumps(body()), headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert response.status_code == 202
    assert len(upstream.received) == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(outbox.c.status)).scalars().all() == ["sending"]
    response.close()  # what the WSGI server does once the answer is sent
    with engine.connect() as conn:
        assert conn.execute(sa.select(outbox.c.status)).scalars().all() == ["sent"]
