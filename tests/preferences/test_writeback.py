"""The customer's choices reach the CRMs' own fields: Salesforce and HubSpot fakes on the wire."""

from __future__ import annotations

import re

import pytest

from connectors.hubspot import parse_mapping
from guard.crm.sync import run_sync
from guard.crm.writeback import write_preferences
from tests.conftest import NOW
from tests.connectors.hubspot import shapes
from tests.connectors.hubspot.conftest import OWNERS, make_connector
from tests.connectors.hubspot.fake import FakeHubSpot
from tests.connectors.salesforce.conftest import make_connector as make_salesforce
from tests.crm.conftest import installed_org, mock  # noqa: F401

from .conftest import ANNA, check

CHANNELS = ("email", "sms", "call", "mail")
TOPICS = ("marketing", "sales", "service")
EVERYTHING = {**{f"channel_{c}": "on" for c in CHANNELS}, **{f"topic_{t}": "on" for t in TOPICS}}
STATUS_WRITE = "/communication-preferences/v4/statuses/batch/write"


def save(app, person_id: str, signer, form: dict):
    client = app.test_client()
    link = f"/preferences/{signer.person(person_id, NOW)}"
    html = client.get(link).get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)
    answer = client.post(link, data={"csrf": csrf, **form})
    assert answer.status_code == 200, answer.get_data(as_text=True)


def test_salesforce_gets_the_fields_and_its_own_opt_out_checkboxes(mock, make_app, store,  # noqa: F811
                                                                   signer):
    org = installed_org(mock)
    contact = org.insert("Contact", Name="Anna Weber", Email=ANNA, HasOptedOutOfEmail=False,
                         DoNotCall=False)
    org.advance(minutes=5)
    salesforce = make_salesforce(org)
    summary, rejected = run_sync(store, salesforce)
    assert rejected == []
    person_id = store.resolve({"salesforce": contact})

    form = {k: v for k, v in EVERYTHING.items() if k not in ("channel_email", "channel_call")}
    save(make_app(), person_id, signer, {**form, "preferred_channel": "sms",
                                         "hours_from": "09:00", "hours_to": "18:00",
                                         "pause_until": "2027-01-31"})
    assert write_preferences(store, salesforce) == 1

    record = org.record(contact)
    assert record["HasOptedOutOfEmail"] is True and record["DoNotCall"] is True
    assert record["Guard_Preferred_Channel__c"] == "sms"
    assert record["Guard_Contact_Hours__c"] == "09:00-18:00"
    assert record["Guard_Do_Not_Market_Until__c"] == "2027-01-31"
    org.collections.clear()
    assert write_preferences(store, salesforce) == 0
    assert org.collections == []
    # Read back on the next sync, the checkboxes say what the customer said.
    org.advance(minutes=1)
    run_sync(store, salesforce)
    assert "consent" in check(store, "service_reminder", sender="service").rules
    assert check(store, "service_reminder", channel="sms", sender="service").verdict == "allow"


class WritableHubSpot(FakeHubSpot):
    """The HubSpot fake, also taking v4 subscription status writes (batch/write)."""

    def _answer(self, method, path, query, headers, raw, body):
        if method == "POST" and path == STATUS_WRITE:
            self.log.append((method, path))
            results = []
            for status in body["inputs"]:
                assert set(status) <= {"channel", "statusState", "subscriberIdString",
                                       "subscriptionId", "legalBasis", "legalBasisExplanation"}
                assert status["channel"] == "EMAIL"
                email = status["subscriberIdString"].lower()
                kept = [s for s in self.statuses.get(email, [])
                        if s["subscriptionId"] != status["subscriptionId"]]
                written = {"channel": "EMAIL", "status": status["statusState"],
                           "subscriptionId": status["subscriptionId"],
                           "subscriberIdString": email, "source": "API",
                           "timestamp": "2026-11-23T10:00:00Z"}
                self.statuses[email] = [*kept, written]
                results.append(written)
            return 200, self._batch_answer(results), {}
        return super()._answer(method, path, query, headers, raw, body)


@pytest.fixture
def portal():
    server = WritableHubSpot(token="pat-test")
    server.start()
    yield server
    server.stop()
    others = [e for e in server.exchanges if e.path != STATUS_WRITE]
    problems = shapes.check(others)
    assert not problems, "\n".join(problems[:20])


def test_hubspot_gets_the_properties_and_the_subscription_status(portal, make_app, store,
                                                                 signer):
    connector = make_connector(portal, parse_mapping(OWNERS))
    connector.install()
    contact = portal.add("contacts", {"email": ANNA, "firstname": "Anna"})
    run_sync(store, connector)
    person_id = store.resolve({"hubspot": contact})

    form = {k: v for k, v in EVERYTHING.items() if k != "topic_marketing"}
    save(make_app(), person_id, signer, {**form, "preferred_channel": "email",
                                         "pause_until": "2027-01-31"})
    assert write_preferences(store, connector) >= 1

    props = portal.record("contacts", contact)["properties"]
    assert props["guard_preferred_channel"] == "email"
    assert props["guard_do_not_market_until"] == "2027-01-31"
    [status] = portal.statuses[ANNA]
    assert (status["subscriptionId"], status["status"]) == (11, "UNSUBSCRIBED")

    # Ticking it again subscribes on the customer's own word, with that as the legal basis.
    save(make_app(), person_id, signer, {**EVERYTHING, "preferred_channel": "email",
                                         "pause_until": "2027-01-31"})
    write_preferences(store, connector)
    [status] = portal.statuses[ANNA]
    assert status["status"] == "SUBSCRIBED"
    assert check(store, "newsletter", sender="dealer:munich",
                 at="2027-02-01T11:00:00Z").verdict == "allow"
