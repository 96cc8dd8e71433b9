"""In a real browser at phone width: set preferences, the next check obeys, the CRM hears of it."""

from __future__ import annotations

import os
from pathlib import Path

from guard.crm.sync import run_sync
from guard.crm.writeback import write_preferences
from tests.browser import served
from tests.conftest import NOW
from tests.connectors.salesforce.conftest import make_connector as make_salesforce
from tests.crm.conftest import installed_org, mock  # noqa: F401

from .conftest import ANNA, check

SCREENSHOTS = Path(__file__).with_name("screenshots")
PHONE = {"width": 390, "height": 844}


def test_a_customer_sets_preferences_on_a_phone(page, mock, make_app, store, signer):  # noqa: F811
    org = installed_org(mock)
    contact = org.insert("Contact", Name="Anna Weber", Email=ANNA, HasOptedOutOfEmail=False,
                         DoNotCall=False)
    org.advance(minutes=5)
    salesforce = make_salesforce(org)
    run_sync(store, salesforce)
    person_id = store.resolve({"salesforce": contact})
    app = make_app(COMPANY_NAME="Autohaus Example", COMPANY_COLOUR="#0b6e4f")

    page.set_viewport_size(PHONE)
    with served(app) as base:
        page.goto(f"{base}/preferences/{signer.person(person_id, NOW)}")
        assert page.locator("h1").inner_text() == "Your contact preferences"
        # Nothing is wider than the phone.
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.get_by_label("Offers, newsletters and events").uncheck()
        page.get_by_label("Phone calls").uncheck()
        page.locator("select[name=preferred_channel]").select_option("sms")
        page.locator("input[name=hours_from]").fill("09:00")
        page.locator("input[name=hours_to]").fill("18:00")
        page.get_by_label("Sun").uncheck()
        page.locator("input[name=pause_until]").fill("2027-01-31")
        page.get_by_role("button", name="Save my preferences").click()
        page.get_by_role("status").wait_for()
        assert "Saved." in page.get_by_role("status").inner_text()
        assert not page.get_by_label("Offers, newsletters and events").is_checked()
        if os.environ.get("GUARD_SCREENSHOTS") == "1":
            SCREENSHOTS.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "preferences.png"), full_page=True)

    newsletter = check(store, "newsletter", sender="dealer:munich")
    assert newsletter.verdict == "block" and "consent" in newsletter.rules
    assert "consent" in check(store, "service_reminder", channel="call", sender="service").rules
    reminder = check(store, "service_reminder", sender="service")
    assert reminder.verdict == "reroute" and reminder.reroute == {"channel": "sms"}

    assert write_preferences(store, salesforce) == 1
    record = org.record(contact)
    assert record["DoNotCall"] is True and record["HasOptedOutOfEmail"] is False
    assert (record["Guard_Preferred_Channel__c"], record["Guard_Contact_Hours__c"],
            record["Guard_Do_Not_Market_Until__c"]) == (
        "sms", "mon-sat 09:00-18:00", "2027-01-31")
