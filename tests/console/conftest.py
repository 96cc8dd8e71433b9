"""The console on the shared test store (SQLite and PostgreSQL), signed-in clients, data."""

from __future__ import annotations

import re

import pytest

from guard import create_app
from guard.http import keys
from guard.proxy.outbox import Item
from guard.services import services
from guard.store.tables import UNKNOWN, outbox
from tests.conftest import NOW, accepted, person, purchase

# A name, subject and campaign that would run script if a page did not escape them.
SCRIPT = '<script>window.pwned = 1</script>"\'><b>x'
_CSRF = re.compile(r'name="csrf" value="([^"]*)"')


@pytest.fixture
def app(store):
    return create_app({"GUARD": store, "TESTING": True, "POLICY_POLL_SECONDS": 0})


@pytest.fixture
def make_key(app):
    """Create a key with the given scopes; return (id, secret)."""

    def make(*scopes: str, name: str | None = None) -> tuple[str, str]:
        key, secret = keys.create_key(services(app).engine, name or "test " + "+".join(scopes),
                                      scopes)
        return key.id, secret

    return make


def csrf_of(html: str) -> str:
    """The CSRF token a console page's forms carry."""
    found = _CSRF.search(html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def sign_in(client, secret: str, next_page: str = ""):
    """Sign a test client in through the form; return the response."""
    form = client.get("/console/login").get_data(as_text=True)
    return client.post("/console/login", data={"key": secret, "csrf": csrf_of(form),
                                               "next": next_page})


@pytest.fixture
def admin(app, make_key):
    """A test client signed in with an admin key."""
    client = app.test_client()
    _, secret = make_key("admin", name="Ada admin")
    assert sign_in(client, secret).status_code == 302
    return client


@pytest.fixture
def reader(app, make_key):
    """A test client signed in with a read-only console key."""
    client = app.test_client()
    _, secret = make_key("console", name="Rita reader")
    assert sign_in(client, secret).status_code == 302
    return client


def post(client, path: str, data: dict | None = None, page: str | None = None):
    """POST a console form with the CSRF token of the page it is on."""
    html = client.get(page or path).get_data(as_text=True)
    return client.post(path, data={"csrf": csrf_of(html), **(data or {})})


@pytest.fixture
def world(store, app):
    """People (one named like a script), a purchase, decisions, an unknown outbox row."""
    accepted(store.ingest([
        person("003A", "anna@example.com", name="Anna Weber", phones=["+491701234567"],
               crm_ids={"salesforce": "003A"}),
        person("003B", "bob@example.com", name=SCRIPT),
        purchase("P1", {"email": "anna@example.com"}),
        {"type": "case", "source": {"system": "hubspot", "type": "ticket", "id": "77"},
         "person": {"email": "bob@example.com"}, "status": "open", "subject": SCRIPT,
         "at": "2026-11-20T10:00:00Z"},
    ]))
    decided = [
        store.check({"channel": "email", "to": "anna@example.com", "purpose": "price_offer",
                     "sender": "oem", "product": "audi-a4", "campaign": SCRIPT}),
        store.check({"channel": "email", "to": "bob@example.com", "purpose": "newsletter",
                     "sender": "oem"}),
        store.check({"channel": "email", "to": "stranger@example.com",
                     "purpose": "newsletter", "sender": "oem"}),
    ]
    box = services(app).outbox
    row_id = box.hold(Item("sendgrid", "mail", {"to": "anna@example.com"}, "idem-1",
                           recipients=["anna@example.com"]))
    with store.engine.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.id == row_id)
                     .values(status=UNKNOWN, last_error="no answer from the provider"))
    return {"decisions": decided, "unknown": row_id,
            "anna": store.resolve("anna@example.com"), "bob": store.resolve("bob@example.com"),
            "now": NOW}
