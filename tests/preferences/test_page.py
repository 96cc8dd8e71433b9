"""The preference page: what it shows, what saving records, and that the next check obeys."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from guard.services import services
from guard.store.tables import records
from tests.conftest import NOW, accepted

from .conftest import ANNA, check

CHANNELS = ("email", "sms", "call", "mail")
TOPICS = ("marketing", "sales", "service")
EVERYTHING = {**{f"channel_{c}": "on" for c in CHANNELS}, **{f"topic_{t}": "on" for t in TOPICS}}


@pytest.fixture
def link(anna, signer) -> str:
    return f"/preferences/{signer.person(anna, NOW)}"


def _csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)


def save(client, link: str, form: dict, **headers):
    page = client.get(link, headers=headers)
    assert page.status_code == 200
    return client.post(link, data={"csrf": _csrf(page.get_data(as_text=True)), **form},
                       headers=headers)


def _stored(app) -> list:
    with services(app).engine.connect() as conn:
        return conn.execute(sa.select(records.c.source_id, records.c.payload)
                            .where(records.c.source_system == "preferences")).all()


def test_the_page_shows_the_masked_address_and_covers_every_sender(client, link):
    page = client.get(link)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "a***@example.com" in html and ANNA not in html
    assert "every part of Contact Guard at once" in html
    assert "Bills and payment reminders" in html and "Always on" in html
    assert page.headers["Cache-Control"] == "no-store"
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert 'name="viewport"' in html


def test_german_when_the_browser_asks_for_it(client, link):
    html = client.get(link, headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}
                      ).get_data(as_text=True)
    assert "Ihre Kontakteinstellungen" in html and 'lang="de"' in html


def test_stored_and_configured_text_is_escaped(make_app, store, anna, signer):
    app = make_app(COMPANY_NAME='<img src=x onerror="alert(1)">Acme')
    html = app.test_client().get(f"/preferences/{signer.person(anna, NOW)}"
                                 ).get_data(as_text=True)
    assert "<img src=x" not in html
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;Acme" in html
    assert "<script>alert(1)</script>" not in html


def test_a_post_without_the_pages_own_form_field_changes_nothing(app, client, link):
    client.get(link)
    answer = client.post(link, data={**EVERYTHING, "topic_marketing": ""})
    assert answer.status_code == 400
    assert "out of date" in answer.get_data(as_text=True)
    other = app.test_client()  # a cross-site post carries no cookie of ours
    assert other.post(link, data={"csrf": "0" * 64, **EVERYTHING}).status_code == 400
    assert _stored(app) == []


def test_topics_off_block_that_category_on_every_channel_and_leave_bills(client, store, link):
    form = {k: v for k, v in EVERYTHING.items() if k != "topic_marketing"}
    answer = save(client, link, form)
    assert answer.status_code == 200 and "Saved." in answer.get_data(as_text=True)
    assert check(store, "newsletter", sender="dealer:munich").verdict == "block"
    assert "consent" in check(store, "newsletter", channel="sms", sender="dealer:munich").rules
    assert "consent" not in check(store, "service_reminder", sender="service").rules
    assert check(store, "invoice", sender="billing").verdict == "allow"


def test_a_channel_off_blocks_only_that_channel(client, store, link):
    save(client, link, {k: v for k, v in EVERYTHING.items() if k != "channel_email"})
    assert "consent" in check(store, "service_reminder", sender="service").rules
    assert "consent" not in check(store, "service_reminder", channel="sms",
                                  sender="service").rules


def test_a_pause_holds_every_offer_until_its_day(client, store, link):
    save(client, link, {**EVERYTHING, "pause_until": "2027-01-31"})
    paused = check(store, "newsletter", sender="dealer:munich")
    assert paused.verdict == "block" and "do-not-market-until" in paused.rules
    assert check(store, "transactional").verdict == "allow"
    assert check(store, "newsletter", sender="dealer:munich",
                 at="2027-02-01T11:00:00Z").verdict != "block"


def test_the_preferred_channel_reroutes(client, store, link):
    save(client, link, {**EVERYTHING, "preferred_channel": "sms"})
    decision = check(store, "service_reminder", sender="service")
    assert decision.verdict == "reroute" and decision.reroute == {"channel": "sms"}


def test_contact_hours_defer_texts_outside_them(client, store, link):
    save(client, link, {**EVERYTHING, "hours_from": "18:00", "hours_to": "20:00"})
    decision = check(store, "service_reminder", channel="sms", sender="service")
    assert decision.verdict == "defer"
    assert decision.not_before.isoformat() == "2026-11-23T18:00:00+01:00"


def test_stop_everything_keeps_only_what_the_law_requires(client, store, link):
    save(client, link, {**EVERYTHING, "stop": "on"})
    for purpose, sender in (("newsletter", "oem"), ("trade_in", "dealer:munich"),
                            ("service_reminder", "service")):
        for channel in ("email", "sms", "push"):
            assert "consent" in check(store, purpose, channel=channel, sender=sender).rules
    assert check(store, "invoice", sender="billing").verdict == "allow"
    assert check(store, "safety_recall", sender="oem").verdict == "allow"
    # Unticking it, with the channels and topics ticked, lets contact through again.
    save(client, link, EVERYTHING)
    assert "consent" not in check(store, "newsletter", channel="push").rules


def test_saving_an_unchanged_page_does_not_undo_an_opt_out_made_elsewhere(
        app, client, store, anna, link):
    accepted(store.ingest([{"type": "consent", "source": {"system": "crm", "id": "c1"},
                            "person": {"person": anna}, "channel": "email",
                            "purpose": "newsletter", "status": "opt_out",
                            "at": "2026-11-01T00:00:00Z"},
                           {"type": "consent", "source": {"system": "crm", "id": "c2"},
                            "person": {"person": anna}, "channel": "sms",
                            "purpose": "marketing", "status": "opt_out",
                            "at": "2026-11-01T00:00:00Z"}]))
    page = client.get(link).get_data(as_text=True)
    # The sms channel still shows as on (its sales and service are welcome).
    assert re.search(r'name="channel_sms"\s+checked', page)
    save(client, link, EVERYTHING)
    assert check(store, "newsletter", sender="dealer:munich").verdict == "block"
    assert "consent" in check(store, "newsletter", channel="sms").rules
    assert _stored(app) == []


@pytest.mark.parametrize("form,says", [
    ({"hours_from": "09:00"}, "both times"),
    ({"hours_from": "25:00", "hours_to": "26:00"}, "both times"),
    ({"hours_from": "09:00", "hours_to": "09:00"}, "both times"),
    ({"pause_until": "2026-11-01"}, "after today"),
    ({"pause_until": "2040-01-01"}, "after today"),
    ({"pause_until": "soon"}, "after today"),
    ({"preferred_channel": "pigeon"}, "listed channels"),
], ids=["one-time", "not-a-time", "all-day", "past", "far", "not-a-date", "channel"])
def test_a_bad_value_is_a_clear_message_and_nothing_is_stored(app, client, link, form, says):
    answer = save(client, link, {**EVERYTHING, **form})
    assert answer.status_code == 400
    assert says in answer.get_data(as_text=True)
    assert _stored(app) == []


def test_an_erased_person_s_link_is_a_404(make_app, store, anna, signer):
    app = make_app()
    store._erasure_key = b"e" * 32
    accepted(store.ingest([{"type": "erase", "source": {"system": "crm", "id": "e1"},
                            "person": {"person": anna}}]))
    assert app.test_client().get(f"/preferences/{signer.person(anna, NOW)}").status_code == 404


def test_contact_days_defer_calls_to_the_next_day_the_customer_chose(client, store, link):
    weekdays = {f"day_{d}": "on" for d in ("mon", "tue", "wed", "thu", "fri")}
    save(client, link, {**EVERYTHING, **weekdays, "hours_from": "09:00", "hours_to": "18:00"})
    saturday = check(store, "service_reminder", channel="call", sender="service",
                     at="2026-11-28T11:00:00Z")
    assert saturday.verdict == "defer"
    assert saturday.not_before.isoformat() == "2026-11-30T09:00:00+01:00"
    page = client.get(link).get_data(as_text=True)
    assert re.search(r'name="day_fri"\s+checked', page)
    assert not re.search(r'name="day_sat"\s+checked', page)
