"""The activity's configuration page in a real browser, speaking Postmonger to Journey Builder.

Journey Builder shows the page in an iframe and talks to it through
Salesforce's Postmonger: the page triggers ``ready``, receives
``initActivity`` with the activity (its ``arguments.execute.inArguments``),
and on ``clickedNext`` sends ``updateActivity`` with the edited activity. A
stand-in Postmonger served in place of the shipped copy records what the page sends.
"""

from __future__ import annotations

import pytest

from guard import create_app
from guard.automation.sfmc import POSTMONGER
from tests.browser import served

STAND_IN = """
window.Postmonger = {Session: function () {
  var handlers = {};
  window.journeyBuilder = {handlers: handlers, sent: []};
  this.on = function (name, handler) { handlers[name] = handler; };
  this.trigger = function (name, data) { window.journeyBuilder.sent.push([name, data]); };
}};
"""


@pytest.fixture
def app(tmp_path, policy):
    """The page reads only the policy: one store (SQLite) serves it."""
    from guard.services import services

    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'guard.db'}", "TESTING": True,
                      "WARN_MISSING_PROVIDERS": False})
    yield app
    services(app).engine.dispose()


def test_the_page_fills_in_and_sends_the_activitys_in_arguments(app, page, tmp_path):
    page.route("**" + POSTMONGER, lambda route: route.fulfill(
        status=200, content_type="application/javascript", body=STAND_IN))
    with served(app) as base:
        page.goto(base + "/hooks/sfmc/")
        page.wait_for_function("window.journeyBuilder && window.journeyBuilder.sent.length")
        assert page.evaluate("journeyBuilder.sent[0][0]") == "ready"
        page.evaluate("""journeyBuilder.handlers.initActivity({name: "Contact Guard check",
            arguments: {execute: {inArguments: [{channel: "sms"}, {purpose: "newsletter"}]}},
            metaData: {}})""")
        assert page.locator("#channel").input_value() == "sms"
        assert page.locator("#purpose").input_value() == "newsletter"
        page.fill("#sender", "dealer:munich")
        page.fill("#to", "{{Contact.Attribute.Customers.Email}}")
        page.screenshot(path=str(tmp_path / "sfmc-page.png"), full_page=True)
        page.evaluate("journeyBuilder.handlers.clickedNext()")
        name, activity = page.evaluate("journeyBuilder.sent[journeyBuilder.sent.length - 1]")
    assert name == "updateActivity"
    assert activity["name"] == "Contact Guard check"
    assert activity["metaData"]["isConfigured"] is True
    assert activity["arguments"]["execute"]["inArguments"] == [
        {"to": "{{Contact.Attribute.Customers.Email}}"}, {"channel": "sms"},
        {"purpose": "newsletter"}, {"sender": "dealer:munich"}]


def test_the_page_offers_the_channels_and_purposes_the_policy_knows(app, page):
    page.route("**" + POSTMONGER, lambda route: route.abort())
    with served(app) as base:
        page.goto(base + "/hooks/sfmc/index.html")
        options = page.locator("#purpose option").all_inner_texts()
        assert "price_offer" in options and "newsletter" in options
        assert page.locator("#channel option").all_inner_texts()[:2] == ["email", "sms"]
        assert page.locator("h1").inner_text() == "Contact Guard check"


def test_the_page_loads_the_shipped_postmonger_from_the_guard_itself(app, page):
    requested = []
    page.on("request", lambda request: requested.append(request.url))
    with served(app) as base:
        page.goto(base + "/hooks/sfmc/")
        page.wait_for_function("window.Postmonger && typeof Postmonger.Session === 'function'")
    assert base + POSTMONGER in requested
    assert all(url.startswith(base) for url in requested), requested


def test_postmonger_ships_with_its_licence(app):
    client = app.test_client()
    with client.get(POSTMONGER) as script:
        assert script.status_code == 200
        assert "javascript" in script.content_type and b"Postmonger" in script.data
    with client.get(POSTMONGER.replace("postmonger.js", "postmonger.LICENSE")) as licence:
        assert licence.status_code == 200 and b"BSD" in licence.data
