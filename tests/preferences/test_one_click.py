"""One-click unsubscribe (RFC 8058): the link on the wire, the provider's POST, the block."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import requests
import sqlalchemy as sa

from guard.http import keys
from guard.services import services
from guard.store.tables import records, unsubscribes
from tests.conftest import NOW
from tests.proxy.upstream import Serving

from .conftest import ANNA, PUBLIC, check

sendgrid = pytest.importorskip("sendgrid")
from sendgrid.helpers.mail import CustomArg, Mail, Personalization, To  # noqa: E402

STRANGER = "x@example.com"


def _send(app, purpose: str, *addresses: str, sender: str = "dealer:munich") -> None:
    _, token = keys.create_key(services(app).engine, "tool", ["send"], sender=sender,
                               purpose=purpose)
    message = Mail(from_email="news@dealer.example", subject="Hi", plain_text_content="Hello")
    for address in addresses:
        p = Personalization()
        p.add_to(To(address))
        message.add_personalization(p)
    message.add_custom_arg(CustomArg("guard_purpose", purpose))
    with Serving(app) as live:
        response = sendgrid.SendGridAPIClient(token, host=live.url).send(message)
    assert response.status_code == 202


def _headers(upstream) -> dict[str, dict]:
    [sent] = upstream.received
    return {p["to"][0]["email"]: p.get("headers") or {} for p in sent.json()["personalizations"]}


def _path(header: str) -> str:
    assert header.startswith(f"<{PUBLIC}/u/") and header.endswith(">")
    return header[len(PUBLIC) + 1:-1]


def test_marketing_mail_carries_each_recipients_own_one_click_link(app, anna, upstream):
    _send(app, "newsletter", ANNA, STRANGER)
    got = _headers(upstream)
    assert set(got) == {ANNA, STRANGER}
    for headers in got.values():
        assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert got[ANNA]["List-Unsubscribe"] != got[STRANGER]["List-Unsubscribe"]


@pytest.mark.parametrize("purpose", ["transactional", "invoice", "safety_recall",
                                     "service_reminder"])
def test_transactional_billing_safety_and_service_mail_gets_no_link(app, anna, upstream,
                                                                    purpose):
    _send(app, purpose, STRANGER, sender="service")
    assert _headers(upstream) == {STRANGER: {}}


def test_without_a_public_url_no_link_is_added(make_app, anna, upstream):
    app = make_app(PUBLIC_URL=None)
    _send(app, "newsletter", STRANGER)
    assert _headers(upstream) == {STRANGER: {}}


def test_a_personalization_for_several_people_gets_no_link(app, anna, upstream):
    _, token = keys.create_key(services(app).engine, "tool", ["send"], sender="dealer:munich",
                               purpose="newsletter")
    body = {"personalizations": [{"to": [{"email": ANNA}, {"email": STRANGER}]}],
            "from": {"email": "news@dealer.example"}, "subject": "Hi",
            "content": [{"type": "text/plain", "value": "Hello"}]}
    response = app.test_client().post("/v3/mail/send", json=body,
                                      headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202
    [sent] = upstream.received
    assert "headers" not in sent.json()["personalizations"][0]


def test_the_providers_post_unsubscribes_at_once_and_only_from_that_category(
        app, anna, store, upstream):
    _send(app, "newsletter", ANNA)
    path = _path(_headers(upstream)[ANNA]["List-Unsubscribe"])
    assert check(store, "newsletter", sender="dealer:munich").verdict == "allow"

    with Serving(app) as live:
        # As a mailbox provider sends it: a bare form POST, no cookie, no CSRF token.
        answer = requests.post(live.url + path, data="List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"},
                               allow_redirects=False, timeout=10)
    assert answer.status_code == 200

    blocked = check(store, "newsletter", sender="dealer:munich")
    assert blocked.verdict == "block"
    [reason] = [r for r in blocked.reasons if r.rule == "consent"]
    [evidence] = reason.evidence
    assert evidence.system == "preferences"
    assert evidence.id.startswith("Unsubscribed from dealer:munich marketing email on 2026-11-23")
    # Other senders' marketing by email stops too (one opt-out, every sender) ...
    assert check(store, "event_offer", sender="dealer:munich").verdict == "block"
    # ... but not what the customer did not unsubscribe from.
    assert check(store, "transactional").verdict == "allow"
    assert "consent" not in check(store, "newsletter", channel="sms").rules


def test_a_replayed_post_changes_nothing_more(app, anna, store, upstream):
    _send(app, "newsletter", ANNA)
    path = _path(_headers(upstream)[ANNA]["List-Unsubscribe"])
    client = app.test_client()
    first = client.post(path, data={"List-Unsubscribe": "One-Click"})
    engine = services(app).engine
    with engine.connect() as conn:
        before = conn.execute(sa.select(records.c.source_id, records.c.updated_at,
                                        records.c.payload)).all()
    # The provider sends it again the next day.
    store.clock = lambda: NOW + timedelta(days=1)
    again = client.post(path, data={"List-Unsubscribe": "One-Click"})
    with engine.connect() as conn:
        after = conn.execute(sa.select(records.c.source_id, records.c.updated_at,
                                       records.c.payload)).all()
        receipts = conn.execute(sa.select(sa.func.count()).select_from(unsubscribes)).scalar()
    assert (first.status_code, again.status_code) == (200, 200)
    assert before == after
    assert receipts == 1


def test_an_unknown_recipient_is_unsubscribed_by_address(app, store, upstream):
    _send(app, "newsletter", STRANGER)
    path = _path(_headers(upstream)[STRANGER]["List-Unsubscribe"])
    assert app.test_client().post(path, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert check(store, "newsletter", to=STRANGER, sender="dealer:munich").verdict == "block"


def test_a_get_only_asks_and_links_to_the_preferences(app, anna, store, upstream):
    _send(app, "newsletter", ANNA)
    path = _path(_headers(upstream)[ANNA]["List-Unsubscribe"])
    page = app.test_client().get(path)
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="List-Unsubscribe" value="One-Click"' in html
    assert 'href="/preferences/' in html
    assert check(store, "newsletter", sender="dealer:munich").verdict == "allow"


def test_a_post_without_the_one_click_body_records_nothing(app, anna, store, upstream):
    _send(app, "newsletter", ANNA)
    path = _path(_headers(upstream)[ANNA]["List-Unsubscribe"])
    assert app.test_client().post(path, data={"x": "y"}).status_code == 400
    assert check(store, "newsletter", sender="dealer:munich").verdict == "allow"


@pytest.mark.parametrize("path", ["/u/k2.zqxpayload.zqxmac", "/u/zqx-not-a-link",
                                  "/preferences/k2.zqxperson.zqxmac"])
def test_a_forged_link_is_a_404_that_says_nothing(client, path):
    answer = client.post(path, data={"List-Unsubscribe": "One-Click"}) \
        if path.startswith("/u/") else client.get(path)
    assert answer.status_code == 404
    html = answer.get_data(as_text=True)
    assert "This link is not valid" in html
    # The page's random style nonce may hold any short text; nothing of the token may show.
    shown = re.sub(r'nonce="[^"]*"', "", html)
    assert "zqx" not in shown and "k2." not in shown


def test_a_person_link_cannot_unsubscribe(app, anna, signer, store):
    token = signer.person(anna, NOW)
    answer = app.test_client().post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 404


def test_a_dynamic_template_gets_both_links_for_its_own_text(app, anna, signer, upstream):
    _, token = keys.create_key(services(app).engine, "tool", ["send"], sender="dealer:munich",
                               purpose="newsletter")
    body = {"personalizations": [{"to": [{"email": ANNA}],
                                  "dynamic_template_data": {"first_name": "Anna"}}],
            "from": {"email": "news@dealer.example"}, "template_id": "d-1234"}
    response = app.test_client().post("/v3/mail/send", json=body,
                                      headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 202
    [sent] = upstream.received
    [pers] = sent.json()["personalizations"]
    data = pers["dynamic_template_data"]
    assert data["first_name"] == "Anna"
    assert f"<{data['guard_unsubscribe_url']}>" == pers["headers"]["List-Unsubscribe"]
    page = data["guard_preferences_url"]
    assert page.startswith(f"{PUBLIC}/preferences/")
    assert signer.read(page.rsplit("/", 1)[1], NOW).person_id == anna
