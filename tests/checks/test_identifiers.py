"""Senders, owners and campaign, template, product and source ids are refused with a line break.

A stored identifier later becomes a response header, a CSV cell or a log line;
one with CR/LF in it (``dealer:x\\r\\nX-Injected: 1``) would break that response
after the mail went out. Each is refused on the way in, naming the field.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from guard import create_app
from guard.errors import InvalidField
from tests.conftest import accepted, person

INJECTED = "dealer:x\r\nX-Injected: 1"
BAD = {"crlf": INJECTED, "nul": "dealer:x\x00", "nel": "dealer:x\x85y",
       "line-separator": "dealer:x\u2028y", "tab": "dealer:\tx"}
CHECK = {"channel": "email", "to": "anna@example.com", "purpose": "newsletter",
         "sender": "oem"}
SOURCE = {"system": "dms", "id": "E-1"}
ANNA = {"email": "anna@example.com"}

EVENTS = {
    "person.owner": person("003A", "anna@example.com", owner=INJECTED),
    "account.owner": {"type": "account", "source": SOURCE, "name": "Acme", "owner": INJECTED},
    "contract.owner": {"type": "contract", "source": SOURCE, "person": ANNA,
                       "status": "active", "owner": INJECTED},
    "case.owner": {"type": "case", "source": SOURCE, "person": ANNA, "status": "open",
                   "owner": INJECTED},
    "touch.sender": {"type": "touch", "source": SOURCE, "person": ANNA, "channel": "email",
                     "purpose": "newsletter", "sender": INJECTED, "at": "2026-11-20T10:00Z"},
    "touch.campaign": {"type": "touch", "source": SOURCE, "person": ANNA, "channel": "email",
                       "purpose": "newsletter", "sender": "oem", "at": "2026-11-20T10:00Z",
                       "campaign": "spring\nX: 1"},
    "touch.template": {"type": "touch", "source": SOURCE, "person": ANNA, "channel": "email",
                       "purpose": "newsletter", "sender": "oem", "at": "2026-11-20T10:00Z",
                       "template": "t\r1"},
    "purchase.product": {"type": "purchase", "source": SOURCE, "person": ANNA,
                         "product": "a4\r\nX: 1", "at": "2026-11-20T10:00Z"},
    "campaign.id": {"type": "campaign", "source": SOURCE, "id": "spring\u2029autumn",
                    "purpose": "promotion"},
    "person.source.id": person("003A\r\nX: 1", "olaf@example.com"),
}


@pytest.mark.parametrize("field", list(EVENTS), ids=list(EVENTS))
def test_an_event_with_a_control_character_in_an_identifier_is_rejected(store, engine, field):
    accepted(store.ingest([person("003A", "anna@example.com")]))
    with engine.connect() as conn:
        before = {t: conn.execute(sa.text(f"select count(*) from {t}")).scalar()
                  for t in ("records", "ledger", "campaigns", "accounts", "people")}

    result = store.ingest([EVENTS[field], person("003B", "bert@example.com")])

    assert result["accepted"] == 1
    [rejected] = result["rejected"]
    assert rejected["detail"] == f"{field}: control characters are not allowed"
    with engine.connect() as conn:
        after = {t: conn.execute(sa.text(f"select count(*) from {t}")).scalar()
                 for t in before}
    assert after == {**before, "records": before["records"] + 1,
                     "people": before["people"] + 1}


def test_an_owner_longer_than_a_sender_is_rejected_not_cut(store):
    result = store.ingest([person("003A", "anna@example.com", owner="dealer:" + "x" * 130)])

    assert result["rejected"][0]["detail"] == "person.owner: at most 128 characters, got 137"


@pytest.mark.parametrize("field", ["sender", "campaign", "template", "product"])
@pytest.mark.parametrize("value", list(BAD.values()), ids=list(BAD))
def test_a_check_with_a_control_character_in_an_identifier_is_refused(store, engine, field,
                                                                      value):
    with pytest.raises(InvalidField) as raised:
        store.check({**CHECK, field: value})

    assert raised.value.detail == f"{field}: control characters are not allowed"
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ledger")).scalar() == 0


@pytest.mark.parametrize(("field", "value", "detail"), [
    ("campaign", "c" * 256, "campaign: at most 255 characters, got 256"),
    ("template", "t" * 300, "template: at most 255 characters, got 300"),
    ("product", "p" * 256, "product: at most 255 characters, got 256"),
], ids=["campaign", "template", "product"])
def test_an_identifier_too_long_to_store_is_refused(store, engine, field, value, detail):
    # The proxy's checks (SendGrid custom_args, Twilio headers) reach the store this way.
    [outcome] = store.check_many([{**CHECK, field: value}])

    assert isinstance(outcome, InvalidField)
    assert outcome.detail == detail
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ledger")).scalar() == 0


def test_a_sender_longer_than_the_ledger_holds_is_a_400_not_a_500(store, engine):
    # dealer:* matches it; PostgreSQL would refuse to store it mid-transaction.
    client = create_app({"GUARD": store, "TESTING": True, "ADMIN_KEY": "a" * 40}).test_client()

    response = client.post("/v1/check", json={**CHECK, "sender": "dealer:" + "m" * 122},
                           headers={"Authorization": f"Bearer {'a' * 40}"})

    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()["detail"] == "sender: at most 128 characters, got 129"
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from ledger")).scalar() == 0


def test_a_screen_with_a_line_break_in_its_sender_fails_before_any_recipient(store):
    with pytest.raises(InvalidField) as raised:
        next(store.screen({**CHECK, "sender": INJECTED}, ["a@example.com"]))

    assert raised.value.field == "sender"
