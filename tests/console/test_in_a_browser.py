"""The console in a real browser (Debian's Chromium): sign-in, each page, CSRF, the policy loop.

One app with a store full of data is served for the whole module. With
GUARD_SCREENSHOTS=1 each page's screenshot is saved under
tests/console/screenshots/ (the README shows them); otherwise to a temporary folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from playwright.sync_api import expect

from guard import create_app
from guard.checks.service import Guard
from guard.http import keys
from guard.proxy.outbox import Item
from guard.services import services
from guard.store.engine import make_engine
from guard.store.migrate import upgrade
from guard.store.tables import UNKNOWN, outbox
from tests.browser import served
from tests.conftest import NOW, accepted, empty_store, person, purchase

from .conftest import SCRIPT
from .test_policy import DEFAULT, NO_NEWSLETTERS

SHOTS = Path(__file__).with_name("screenshots")
PURPOSES = ["newsletter", "price_offer", "promotion", "service_reminder", "trade_in",
            "event_offer"]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def site(request, tmp_path_factory):
    """The console served on loopback over a store with a month of decisions."""
    with empty_store(request.param, tmp_path_factory.mktemp("console")) as url:
        yield from _serve(url, request.param)


def _serve(url: str, backend: str):
    from policies import default_policy_path, load_policy

    engine = make_engine(url)
    upgrade(engine)
    guard = Guard(engine, load_policy(default_policy_path()), clock=lambda: NOW)
    people = [person(f"003{n:03d}", f"customer{n}@example.com", name=f"Customer {n}",
                     crm_ids={"salesforce": f"003{n:03d}"}) for n in range(12)]
    accepted(guard.ingest([
        *people,
        person("003A", "anna@example.com", name="Anna Weber", phones=["+491701234567"],
               crm_ids={"salesforce": "003A"}, stage="customer", owner="dealer:munich"),
        person("003B", "bob@example.com", name=SCRIPT),
        purchase("P1", {"email": "anna@example.com"}),
        purchase("P2", {"email": "customer3@example.com"}, product="audi-q5",
                 at="2026-11-02T10:00:00Z"),
        {"type": "case", "source": {"system": "hubspot", "type": "ticket", "id": "77"},
         "person": {"email": "bob@example.com"}, "status": "open", "subject": SCRIPT,
         "at": "2026-11-20T10:00:00Z"},
    ]))
    for n in range(150):
        day, who = 1 + n % 23, f"customer{n % 12}@example.com"
        guard.check({"channel": ["email", "sms"][n % 5 == 0] if n % 5 else "email",
                     "to": who if n % 5 else who, "purpose": PURPOSES[n % len(PURPOSES)],
                     "sender": "oem", "product": "audi-q5", "campaign": None,
                     "at": f"2026-11-{day:02d}T{9 + n % 8:02d}:00:00Z"})
    guard.check({"channel": "email", "to": "anna@example.com", "purpose": "price_offer",
                 "sender": "oem", "product": "audi-a4", "campaign": SCRIPT})
    guard.check({"channel": "email", "to": "bob@example.com", "purpose": "newsletter",
                 "sender": "oem"})
    app = create_app({"GUARD": guard, "TESTING": True, "POLICY_POLL_SECONDS": 0,
                      "SALESFORCE_INSTANCE_URL": "https://acme.my.salesforce.com",
                      "HUBSPOT_PORTAL_ID": "4711"})
    box = services(app).outbox
    unknown = box.hold(Item("sendgrid", "mail", {"to": "anna@example.com"}, "idem-u",
                            recipients=["anna@example.com"]))
    box.hold(Item("twilio", "Messages", {"To": "+491701234567"}, "idem-h",
                  recipients=["+491701234567"], not_before=NOW.replace(hour=17)))
    with engine.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.id == unknown)
                     .values(status=UNKNOWN, last_error="the sender stopped before the "
                             "provider's answer was recorded; check the provider"))
    _, admin = keys.create_key(engine, "Ada (CRM admin)", ["admin"])
    _, reader = keys.create_key(engine, "Rita (compliance)", ["console"])
    keys.create_key(engine, "Marketing automation", ["check", "send"], sender="oem")
    with served(app) as base:
        yield {"base": base, "admin": admin, "reader": reader, "unknown": unknown,
               "guard": guard, "anna": guard.resolve("anna@example.com"),
               "bob": guard.resolve("bob@example.com"), "backend": backend}
    engine.dispose()


def shoot(page, name: str, tmp_path: Path, site: dict) -> None:
    """Save a full-page screenshot of the page as it is (the README's: SQLite's)."""
    keep = os.environ.get("GUARD_SCREENSHOTS") == "1" and site["backend"] == "sqlite"
    folder = SHOTS if keep else tmp_path
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def sign_in(page, site, key: str = "admin") -> None:
    page.goto(site["base"] + "/console/")
    assert page.url.startswith(site["base"] + "/console/login")
    page.get_by_label("API key").fill(site[key])
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(site["base"] + "/console/")


def test_sign_in_each_page_with_data_and_sign_out(page, site, tmp_path):
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(site["base"] + "/console/login")
    shoot(page, "login", tmp_path, site)
    sign_in(page, site)
    expect(page.get_by_role("heading", name="Decisions per day, last 30 days")).to_be_visible()
    assert page.locator("svg.chart rect").count() > 20
    shoot(page, "overview", tmp_path, site)

    page.get_by_role("link", name="Decisions", exact=True).click()
    assert page.locator("tbody tr").count() == 50
    page.get_by_label("Verdict").select_option("block")
    page.get_by_role("button", name="Filter").click()
    verdicts = page.locator("td.verdict").all_inner_texts()
    assert verdicts and {v.lower() for v in verdicts} == {"block"}
    shoot(page, "decisions", tmp_path, site)
    page.get_by_label("Person").fill("anna@example.com")
    page.get_by_role("button", name="Filter").click()
    page.locator("tbody a[href^='/console/decisions/dec_']").first.click()
    expect(page.get_by_role("heading", name="Reasons")).to_be_visible()
    expect(page.get_by_text("Policy version")).to_be_visible()
    shoot(page, "decision", tmp_path, site)

    page.get_by_role("link", name="People").click()
    page.get_by_label("Email, phone, name or CRM id").fill("ANNA web")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("cell", name="Anna Weber")).to_be_visible()
    shoot(page, "people", tmp_path, site)
    page.get_by_role("link", name=site["anna"]).click()
    expect(page.get_by_text("Bought audi-a4")).to_be_visible()
    link = page.get_by_role("link", name="salesforce Contact 003A")
    assert link.get_attribute("href") == (
        "https://acme.my.salesforce.com/lightning/r/Contact/003A/view")
    shoot(page, "person", tmp_path, site)

    page.get_by_role("link", name="Outbox").click()
    expect(page.get_by_text(site["unknown"])).to_be_visible()
    shoot(page, "outbox", tmp_path, site)
    page.get_by_role("link", name="Keys").click()
    expect(page.get_by_text("Marketing automation")).to_be_visible()
    shoot(page, "keys", tmp_path, site)
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("cell", name="sign-in").first).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url(re.compile(r".*/console/login$"))
    page.goto(site["base"] + "/console/keys")
    assert "/console/login" in page.url


def test_a_phone_reads_every_page_without_scrolling_sideways(page, site, tmp_path):
    page.set_viewport_size({"width": 390, "height": 844})
    sign_in(page, site, "reader")
    for path in ("/console/", "/console/decisions", f"/console/people/{site['anna']}",
                 "/console/outbox", "/console/keys", "/console/policy"):
        page.goto(site["base"] + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, path
    page.goto(site["base"] + "/console/decisions")
    shoot(page, "decisions-phone", tmp_path, site)


def test_a_form_without_its_csrf_token_is_refused(page, site):
    sign_in(page, site)
    page.goto(site["base"] + "/console/outbox")
    page.evaluate("document.querySelectorAll('input[name=csrf]').forEach(e => e.value = 'x')")
    page.get_by_role("button", name="Mark sent").first.click()
    expect(page.get_by_text("CSRF token missing or wrong")).to_be_visible()
    assert services_status(site) == "unknown"


def services_status(site) -> str:
    from sqlalchemy import select

    with site["guard"].engine.connect() as conn:
        return conn.execute(select(outbox.c.status).where(outbox.c.id == site["unknown"])
                            ).scalar_one()


def test_script_in_names_subjects_and_search_stays_text(page, site):
    sign_in(page, site)
    for path in (f"/console/people/{site['bob']}", "/console/people?q=%3Cscript%3Ewindow.pwned"
                 "%3D1%3C%2Fscript%3E", "/console/decisions?verdict=%3Cscript%3Ewindow.pwned"
                 "%3D1%3C%2Fscript%3E", "/console/decisions?verdict=block"):
        page.goto(site["base"] + path)
        assert page.evaluate("window.pwned") is None, path
    page.goto(site["base"] + f"/console/people/{site['bob']}")
    expect(page.get_by_text(SCRIPT).first).to_be_visible()


def test_settling_an_unknown_outbox_row(page, site):
    sign_in(page, site)
    page.goto(site["base"] + "/console/outbox")
    page.get_by_role("button", name="Mark sent").first.click()
    expect(page.get_by_text(f"{site['unknown']}: marked sent.")).to_be_visible()
    assert services_status(site) == "sent"


def test_the_policy_loop_edit_check_test_simulate_publish(page, site, tmp_path):
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, site)
    page.goto(site["base"] + "/console/policy")
    editor = page.get_by_label("Draft (console.yaml)")
    editor.fill(DEFAULT + "\n  - id: broken\n    kind: nonsense\n")
    page.get_by_role("button", name="Check").click()
    assert page.locator("ol.problems li").first.inner_text().startswith("line ")
    editor = page.get_by_label("Draft (console.yaml)")
    editor.fill(NO_NEWSLETTERS)
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_text("No problems")).to_be_visible()
    page.get_by_role("button", name="Test").click()
    # The example cases expect newsletters to pass where the draft now blocks them.
    expect(page.get_by_text(re.compile(r"\d+ passed, [1-9]\d* failed"))).to_be_visible()
    page.get_by_label("Simulate the last … days").fill("30")
    page.get_by_role("button", name="Simulate").click()
    expect(page.get_by_text(re.compile(r"Replayed \d+ decisions"))).to_be_visible()
    expect(page.locator("svg.chart")).to_be_visible()
    shoot(page, "policy", tmp_path, site)
    page.get_by_role("button", name="Publish").click()
    expect(page.get_by_text("Published version 1")).to_be_visible()
    answer = page.request.post(site["base"] + "/v1/check", headers={
        "Authorization": f"Bearer {site['admin']}"}, data={
        "channel": "email", "to": "customer1@example.com", "purpose": "newsletter",
        "sender": "oem", "commit": False})
    assert answer.ok and answer.json()["verdict"] == "block"
    assert [r["rule"] for r in answer.json()["reasons"]] == ["no-email-newsletters"]
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("cell", name="no-email-newsletters")).to_be_visible()
    page.get_by_role("link", name="Audit").click()
    expect(page.get_by_role("cell", name="policy.publish")).to_be_visible()
    shoot(page, "audit", tmp_path, site)


def test_a_rare_filter_says_how_far_back_it_looked_and_reads_on(page, site, tmp_path,
                                                                monkeypatch):
    from guard.console import decisions

    monkeypatch.setattr(decisions, "SCAN", 30)
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, site)
    page.goto(site["base"] + "/console/decisions?verdict=allow&purpose=trade_in")
    expect(page.get_by_text(re.compile(r"Looked through 30 decisions, back to"))).to_be_visible()
    shoot(page, "decisions-stretch", tmp_path, site)
    found = page.locator("tbody a[href^='/console/decisions/dec_']").all_inner_texts()
    while page.get_by_role("link", name="Look further back").count():
        page.get_by_role("link", name="Look further back").click()
        found += page.locator("tbody a[href^='/console/decisions/dec_']").all_inner_texts()
    with site["guard"].engine.connect() as conn:
        expected = set(conn.execute(sa.text(
            "SELECT id FROM ledger WHERE verdict = 'allow' AND purpose = 'trade_in'")).scalars())
    assert expected and sorted(found) == sorted(expected)
