"""HubSpot's custom workflow action: signed requests decided once, answered as outputFields.

Wire format (HubSpot, "Custom workflow action reference" → Execution, and the
custom-action guide): HubSpot POSTs ``{"callbackId", "origin": {"portalId"},
"object": {"objectId", "objectType": "CONTACT"}, "inputFields": {…}}`` to the
action URL, signed with signature v2 (``X-HubSpot-Signature`` = SHA-256 hex of
client secret + method + URI + body) or v3 (``X-HubSpot-Signature-v3`` =
base64 HMAC-SHA256 of method + URI + body + ``X-HubSpot-Request-Timestamp``,
refused when more than five minutes old). The answer is ``{"outputFields":
{…}}``; ``hs_execution_state`` ``BLOCK`` with ``hs_expiration_duration`` (ISO
8601) holds the contact until the callback is completed; ``FAIL_CONTINUE`` lets
the workflow go on with an error.
"""

from __future__ import annotations

import json
import time

from connectors.hubspot import sign
from connectors.hubspot.workflow_action import sign_v2
from tests.automation.conftest import PUBLIC, SECRET, customer, decisions
from tests.conftest import accepted, purchase

URL = PUBLIC + "/hooks/hubspot/action"
INPUTS = {"channel": "email", "purpose": "price_offer", "sender": "oem", "product": "audi-a4"}


def execution(callback_id: str = "ap-102670506-56777914962-11-0", contact: int = 501,
              **inputs) -> dict:
    return {"callbackId": callback_id,
            "origin": {"portalId": 102670506, "actionDefinitionId": 10860211,
                       "actionDefinitionVersion": 1},
            "context": {"source": "WORKFLOWS", "workflowId": 192814114},
            "object": {"objectId": contact, "objectType": "CONTACT"},
            "inputFields": {**INPUTS, **inputs}}


def v3(body: bytes, *, age: float = 0.0, secret: str = SECRET) -> dict:
    stamp = str(int((time.time() - age) * 1000))
    return {"X-HubSpot-Request-Timestamp": stamp,
            "X-HubSpot-Signature-v3": sign(secret, "POST", URL, body, stamp)}


def v2(body: bytes, *, secret: str = SECRET) -> dict:
    return {"X-HubSpot-Signature-Version": "v2",
            "X-HubSpot-Signature": sign_v2(secret, "POST", URL, body)}


def post(client, payload: dict, signer=v3, **options):
    body = json.dumps(payload).encode()
    return client.post("/hooks/hubspot/action", data=body, content_type="application/json",
                       headers=signer(body, **options))


def test_signature_v2_matches_hubspots_documented_example():
    # legacydocs.hubspot.com/docs/faq/v2-request-validation, "Example for a request with a body".
    assert sign_v2("yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy", "POST",
                   "https://www.example.com/webhook_uri",
                   b'{"example_field":"example_value"}') == (
        "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900")


def test_a_contact_who_just_bought_the_car_is_blocked_with_the_reason_and_rules(
        client, guard, engine):
    customer(guard)
    accepted(guard.ingest([purchase("SO-1", {"hubspot": "501"})]))
    answer = post(client, execution())
    assert answer.status_code == 200
    fields = answer.get_json()["outputFields"]
    assert fields["verdict"] == "block"
    assert "purchase-cooldown" in fields["rules"].split(",")
    assert "Bought audi-a4 on 2026-11-21" in fields["reason"]
    assert fields["decision_id"].startswith("dec_")
    assert all(isinstance(value, str) for value in fields.values())
    recorded = client.application.extensions["guard"].guard.decision(fields["decision_id"])
    assert recorded["via"] == "hubspot_workflow"
    assert recorded["attempt"]["to"] == "hubspot:501"


def test_a_contact_unknown_to_the_guard_gets_the_policys_unknown_recipient_verdict(
        client, engine):
    fields = post(client, execution(contact=999)).get_json()["outputFields"]
    assert (fields["verdict"], fields["rules"]) == ("allow", "unknown-recipient")
    assert [d["via"] for d in decisions(engine)] == ["hubspot_workflow"]


def test_a_retried_callback_gets_the_same_answer_and_is_counted_once(client, guard, engine):
    customer(guard)
    first = post(client, execution(purpose="newsletter", product=""))
    again = post(client, execution(purpose="newsletter", product=""))
    assert first.get_json() == again.get_json()
    assert first.get_json()["outputFields"]["verdict"] == "allow"
    assert len(decisions(engine)) == 1


def test_a_bad_input_field_fails_and_continues_with_the_reason_and_decides_nothing(
        client, guard, engine):
    customer(guard)
    fields = post(client, execution(purpose="bargain")).get_json()["outputFields"]
    assert fields["hs_execution_state"] == "FAIL_CONTINUE"
    assert fields["error"] == "invalid_input"
    assert fields["reason"].startswith("purpose: unknown purpose 'bargain'")
    fields = post(client, execution("cb-2", commit="maybe")).get_json()["outputFields"]
    assert fields["hs_execution_state"] == "FAIL_CONTINUE"
    assert fields["reason"].startswith("commit:")
    assert decisions(engine) == []


def test_a_dry_run_input_is_recorded_but_not_counted(client, guard, engine):
    customer(guard)
    post(client, execution(purpose="newsletter", product="", commit="false"))
    assert [(d["committed"], d["via"]) for d in decisions(engine)] == [
        (False, "hubspot_workflow")]


def test_signature_v2_alone_is_accepted(client, guard):
    customer(guard)
    answer = post(client, execution(purpose="newsletter", product=""), signer=v2)
    assert answer.get_json()["outputFields"]["verdict"] == "allow"


REFUSED = {
    "unsigned": lambda body: {},
    "v3-wrong-secret": lambda body: v3(body, secret="another-apps-secret"),
    "v3-stale": lambda body: v3(body, age=301),
    "v3-future": lambda body: v3(body, age=-301),
    "v2-wrong-secret": lambda body: v2(body, secret="another-apps-secret"),
    "v1-not-accepted": lambda body: {**v2(body), "X-HubSpot-Signature-Version": "v1"},
    "v3-of-another-body": lambda body: {
        **v3(body), "X-HubSpot-Signature-v3": v3(b"{}")["X-HubSpot-Signature-v3"]},
}


def test_unsigned_mis_signed_or_stale_requests_are_refused_before_deciding(
        client, guard, engine):
    customer(guard)
    body = json.dumps(execution()).encode()
    for case, headers in REFUSED.items():
        answer = client.post("/hooks/hubspot/action", data=body,
                             content_type="application/json", headers=headers(body))
        assert answer.status_code == 401, case
        assert answer.content_type == "application/problem+json", case
    assert decisions(engine) == []
    # Nothing was stored for the callback either: a signed retry is decided afresh.
    assert post(client, execution()).status_code == 200


def test_a_signature_for_another_url_is_refused(client, guard, engine):
    body = json.dumps(execution()).encode()
    stamp = str(int(time.time() * 1000))
    forged = sign(SECRET, "POST", PUBLIC + "/hooks/hubspot", body, stamp)
    answer = client.post("/hooks/hubspot/action", data=body, content_type="application/json",
                         headers={"X-HubSpot-Request-Timestamp": stamp,
                                  "X-HubSpot-Signature-v3": forged})
    assert answer.status_code == 401
    assert decisions(engine) == []


NOT_EXECUTIONS = {
    "no-callback": ({"object": {"objectId": 501, "objectType": "CONTACT"}}, "callbackId"),
    "a-deal": ({"callbackId": "cb", "object": {"objectId": 7, "objectType": "DEAL"}},
               "object.objectType"),
    "no-object-id": ({"callbackId": "cb", "object": {"objectType": "CONTACT"}},
                     "object.objectId"),
    "inputs-not-an-object": ({"callbackId": "cb", "inputFields": ["email"],
                              "object": {"objectId": 1, "objectType": "CONTACT"}},
                             "inputFields"),
}


def test_a_signed_request_that_is_not_an_action_execution_is_a_400_naming_the_field(
        client, engine):
    for case, (payload, field) in NOT_EXECUTIONS.items():
        answer = post(client, payload)
        assert answer.status_code == 400, case
        assert field in answer.get_json()["detail"], case
    assert decisions(engine) == []


def test_without_the_apps_secret_the_action_is_unavailable(guard, engine):
    from guard import create_app

    app = create_app({"GUARD": guard, "TESTING": True})
    answer = post(app.test_client(), execution())
    assert answer.status_code == 503
    assert "GUARD_HUBSPOT_WEBHOOK_SECRET" in answer.get_json()["detail"]
