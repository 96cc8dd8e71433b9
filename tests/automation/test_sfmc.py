"""Journey Builder's custom split activity: signed JWT bodies in, ``branchResult`` out.

Wire format (developer.salesforce.com, Marketing Cloud "Custom Activity
Configuration", "Define a Custom Split Activity with Multiple Outcomes",
"Encode Custom Activities Using a JWT"): config.json with ``type``
``RestDecision`` and ``outcomes`` each holding ``arguments.branchResult``;
with ``useJwt`` Journey Builder POSTs the call as a JWT signed with the
installed package's signing secret; the decoded execute body holds
``inArguments`` (a list of objects) and the contact key ``keyValue``; the
answer ``{"branchResult": value}`` picks the outcome.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import jwt

from guard import create_app
from tests.automation.conftest import SFMC_SECRET, customer, decisions
from tests.conftest import accepted, purchase

OFFER = [{"channel": "email"}, {"purpose": "price_offer"}, {"sender": "oem"},
         {"product": "audi-a4"}]


def execute_body(in_arguments=OFFER, key="anna@example.com", **claims) -> dict:
    return {"inArguments": in_arguments, "outArguments": [], "activityObjectID": "a1b2",
            "journeyId": "j-1", "activityId": "act-1", "definitionInstanceId": "d-1",
            "activityInstanceId": "ai-1", "keyValue": key, "mode": 0, **claims}


def signed(claims: dict, secret: str = SFMC_SECRET, algorithm: str = "HS256") -> bytes:
    return jwt.encode(claims, secret, algorithm=algorithm).encode()


def post(client, path: str, body: bytes):
    return client.post(f"/hooks/sfmc/{path}", data=body, content_type="application/jwt")


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def forged(header: dict, claims: dict, key: bytes) -> bytes:
    """A token whose header names ``header['alg']`` but that is signed HMAC-SHA256 with ``key``."""
    signing = _b64(json.dumps(header).encode()) + b"." + _b64(json.dumps(claims).encode())
    return signing + b"." + _b64(hmac.new(key, signing, hashlib.sha256).digest())


def test_config_json_is_a_restdecision_with_one_outcome_per_verdict(client):
    config = client.get("/hooks/sfmc/config.json").get_json()
    assert config["type"] == "RestDecision"
    assert config["workflowApiVersion"] == "1.1"
    assert [o["arguments"]["branchResult"] for o in config["outcomes"]] == [
        "allow", "defer", "reroute", "block"]
    assert all(o["metaData"]["label"] for o in config["outcomes"])
    execute = config["arguments"]["execute"]
    assert execute["url"] == "http://localhost/hooks/sfmc/execute"
    assert (execute["verb"], execute["useJwt"]) == ("POST", True)
    assert {name: c["url"] for name, c in config["configurationArguments"].items()} == {
        name: f"http://localhost/hooks/sfmc/{name}"
        for name in ("save", "validate", "publish", "stop")}
    assert all(c["useJwt"] for c in config["configurationArguments"].values())
    names = [next(iter(a)) for a in config["schema"]["arguments"]["execute"]["inArguments"]]
    assert names == ["to", "channel", "purpose", "sender", "campaign", "template", "product"]


def test_a_contact_who_just_bought_the_car_takes_the_block_branch(client, guard, engine):
    customer(guard)
    accepted(guard.ingest([purchase("SO-1", "anna@example.com")]))
    answer = post(client, "execute", signed(execute_body()))
    assert answer.status_code == 200
    assert answer.get_json() == {"branchResult": "block"}
    [made] = decisions(engine)
    assert made["via"] == "sfmc_journey"
    assert guard.decision(made["id"])["attempt"]["to"] == "anna@example.com"


def test_to_in_the_in_arguments_wins_over_the_contact_key(client, guard, engine):
    customer(guard)
    body = execute_body([*OFFER, {"to": "someone.else@example.com"}, {"purpose": "newsletter"}],
                        key="0031x000003AbCd")
    assert post(client, "execute", signed(body)).get_json() == {"branchResult": "allow"}
    [made] = decisions(engine)
    assert guard.decision(made["id"])["attempt"]["to"] == "someone.else@example.com"


def test_a_salesforce_contact_key_names_the_contact_by_its_id(guard, engine):
    accepted(guard.ingest([{"type": "person", "emails": ["max@example.com"],
                            "source": {"system": "salesforce", "type": "Contact",
                                       "id": "0031x000003AbCd"}},
                           purchase("SO-2", "max@example.com")]))
    app = create_app({"GUARD": guard, "TESTING": True, "SFMC_JWT_SECRET": SFMC_SECRET,
                      "SFMC_CONTACT_KEY": "salesforce"})
    answer = post(app.test_client(), "execute", signed(execute_body(key="0031x000003AbCd")))
    assert answer.get_json() == {"branchResult": "block"}
    [made] = decisions(engine)
    assert guard.decision(made["id"])["attempt"]["to"] == "salesforce:0031x000003AbCd"


FORGED = {
    "alg-none": lambda claims: jwt.encode(claims, None, algorithm="none").encode(),
    "rs256-with-the-secret": lambda claims: forged({"alg": "RS256", "typ": "JWT"}, claims,
                                                   SFMC_SECRET.encode()),
    "hs512": lambda claims: signed(claims, algorithm="HS512"),
    "wrong-secret": lambda claims: signed(claims, secret="another-packages-secret-" + "x" * 48),
    "expired": lambda claims: signed({**claims, "exp": int(time.time()) - 60}),
    "plain-json": lambda claims: json.dumps(claims).encode(),
    "empty": lambda claims: b"",
}


def test_bodies_not_signed_hs256_with_the_packages_secret_are_refused_before_deciding(
        client, guard, engine):
    customer(guard)
    for case, token in FORGED.items():
        for path in ("execute", "save", "validate", "publish", "stop"):
            answer = post(client, path, token(execute_body()))
            assert answer.status_code == 401, (case, path)
            assert answer.content_type == "application/problem+json", (case, path)
    assert decisions(engine) == []


BAD_INPUTS = {
    "unknown-purpose": ([*OFFER, {"purpose": "bargain"}], "anna@example.com", "purpose"),
    "no-sender": ([{"channel": "email"}, {"purpose": "newsletter"}], "anna@example.com",
                  "sender"),
    "no-recipient": (OFFER, None, "to"),
    "bad-contact-key": (OFFER, "not an address", "to"),
    "channel-a-number": ({"channel": 5}, "anna@example.com", "channel"),
    "in-arguments-not-objects": ("email", "anna@example.com", "inArguments"),
}


def test_bad_in_arguments_are_a_400_naming_the_field_and_decide_nothing(client, engine):
    for case, (in_arguments, key, field) in BAD_INPUTS.items():
        answer = post(client, "execute", signed(execute_body(in_arguments, key)))
        assert answer.status_code == 400, case
        assert answer.get_json()["detail"].startswith(field), case
    assert decisions(engine) == []


def test_signed_lifecycle_calls_are_acknowledged(client):
    body = {"arguments": {"execute": {"inArguments": OFFER}}}
    for path in ("save", "publish", "stop", "validate"):
        answer = post(client, path, signed(body))
        assert (answer.status_code, answer.get_json()) == (200, {"success": True}), path


def test_validate_refuses_a_fixed_purpose_the_policy_does_not_know(client):
    body = {"arguments": {"execute": {"inArguments": [{"purpose": "bargain"}]}}}
    answer = post(client, "validate", signed(body))
    assert answer.status_code == 400 and answer.get_json()["detail"].startswith("purpose")
    bound = {"arguments": {"execute": {"inArguments": [
        {"purpose": "{{Contact.Attribute.Offers.Purpose}}"}]}}}
    assert post(client, "validate", signed(bound)).status_code == 200


def test_without_the_packages_secret_the_activity_is_unavailable(guard, engine):
    app = create_app({"GUARD": guard, "TESTING": True})
    answer = post(app.test_client(), "execute", signed(execute_body()))
    assert answer.status_code == 503
    assert "GUARD_SFMC_JWT_SECRET" in answer.get_json()["detail"]
    assert decisions(engine) == []


def test_a_retried_execution_gets_the_first_answer_and_is_decided_once(client, guard, engine):
    newsletter = [*OFFER, {"to": "ben@example.com"}, {"purpose": "newsletter"}]
    first = post(client, "execute", signed(execute_body(newsletter, iat=int(time.time()) - 5)))
    # Journey Builder sends the same contact's pass again (a timeout), in a new token, after
    # Ben opted out: the branch already taken stands, and caps count one contact.
    accepted(guard.ingest([{"type": "consent", "source": {"system": "crm", "id": "c1"},
                            "email": "ben@example.com", "channel": "email",
                            "purpose": "*", "status": "opt_out"}]))
    again = post(client, "execute", signed(execute_body(newsletter, iat=int(time.time()))))
    assert first.get_json() == again.get_json() == {"branchResult": "allow"}
    assert len(decisions(engine)) == 1
    # Ben's next pass through the activity is a new execution: decided anew.
    later = post(client, "execute", signed(execute_body(newsletter, activityInstanceId="ai-2")))
    assert later.get_json() == {"branchResult": "block"}
    assert len(decisions(engine)) == 2


def test_executions_without_an_instance_id_are_each_decided(client, guard, engine):
    body = execute_body([*OFFER, {"to": "ben@example.com"}, {"purpose": "newsletter"}])
    del body["activityInstanceId"]
    for _ in range(2):
        assert post(client, "execute", signed(body)).get_json() == {"branchResult": "allow"}
    assert len(decisions(engine)) == 2


def test_two_copies_of_one_execution_at_once_count_one_decision(app, guard, engine):
    import threading

    token = signed(execute_body([*OFFER, {"to": "ben@example.com"}, {"purpose": "newsletter"}]))
    answers = []
    start = threading.Barrier(2)

    def call() -> None:
        with app.test_client() as client:
            start.wait()
            answers.append(post(client, "execute", token).get_json())

    threads = [threading.Thread(target=call) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [{"branchResult": "allow"}] * 2
    assert len(decisions(engine)) == 1
