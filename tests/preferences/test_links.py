"""POST /v1/preferences/link: a sending tool gets a person's preference link for its own mail."""

from __future__ import annotations

import pytest

from guard.http import keys
from guard.services import services
from tests.conftest import NOW

from .conftest import ANNA, ANNA_SF, PUBLIC


def _key(app, *scopes: str) -> dict:
    _, secret = keys.create_key(services(app).engine, "tool", list(scopes))
    return {"Authorization": f"Bearer {secret}"}


@pytest.mark.parametrize("to", [ANNA, {"salesforce": ANNA_SF}, "+49 170 1234567"],
                         ids=["email", "crm-id", "phone"])
def test_a_sending_tool_gets_the_persons_link(app, anna, signer, to):
    answer = app.test_client().post("/v1/preferences/link", json={"to": to},
                                    headers=_key(app, "send"))
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["person"] == anna
    assert body["url"].startswith(f"{PUBLIC}/preferences/")
    assert signer.read(body["url"].rsplit("/", 1)[1], NOW).person_id == anna
    assert body["expires"].startswith("2027-11-23")


@pytest.mark.parametrize("body,status,field", [
    ({"to": "nobody@example.com"}, 404, "to"), ({}, 400, "to"), ({"to": "not an address"}, 400,
                                                                  "to"),
], ids=["unknown", "missing", "unparseable"])
def test_a_bad_recipient_is_a_problem_naming_to(app, anna, body, status, field):
    answer = app.test_client().post("/v1/preferences/link", json=body,
                                    headers=_key(app, "send"))
    assert answer.status_code == status
    assert answer.mimetype == "application/problem+json"
    assert answer.get_json()["detail"].startswith(field)


def test_only_keys_that_may_send_get_links(app, anna):
    client = app.test_client()
    assert client.post("/v1/preferences/link", json={"to": ANNA}).status_code == 401
    assert client.post("/v1/preferences/link", json={"to": ANNA},
                       headers=_key(app, "events")).status_code == 403


def test_without_a_public_url_there_are_no_links(make_app, anna):
    app = make_app(PUBLIC_URL=None)
    answer = app.test_client().post("/v1/preferences/link", json={"to": ANNA},
                                    headers=_key(app, "send"))
    assert answer.status_code == 409
    assert "GUARD_PUBLIC_URL" in answer.get_json()["detail"]


def _link(app) -> str:
    answer = app.test_client().post("/v1/preferences/link", json={"to": ANNA},
                                    headers=_key(app, "send"))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()["url"].rsplit("/", 1)[1]


def test_without_keys_configured_links_are_signed_with_a_key_the_store_keeps(make_app, anna):
    from guard.preferences import settings

    token = _link(make_app(PREFERENCES_KEYS=None))
    assert token.startswith(f"{settings.STORED_KEY_ID}.")
    settings._store_key.cache_clear()  # another replica: it reads the key from the store
    replica = make_app(PREFERENCES_KEYS=None).test_client()
    assert replica.get(f"/preferences/{token}").status_code == 200
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert replica.get(f"/preferences/{forged}").status_code == 404


def test_links_signed_with_the_stores_key_still_open_once_keys_are_configured(make_app, anna):
    from guard.preferences import settings

    old = _link(make_app(PREFERENCES_KEYS=None))
    settings._kept_key.cache_clear()
    configured = make_app()
    assert configured.test_client().get(f"/preferences/{old}").status_code == 200
    assert _link(configured).startswith("k2.")
