"""Braze Connected Content: the README's call, made as Braze makes it, aborts on all but allow.

Braze's documented ``{% connected_content URL :method post :headers {…} :body
{{captured}} :content_type application/json :save name %}`` sends the
captured text as the POST body with ``Content-Type`` and ``Accept`` set to the
given type, and saves the JSON answer under ``name``; ``{% abort_message(…) %}``
stops the message (braze.com/docs, "Making a Connected Content API call",
"Aborting Connected Content"). The test reads the block from the README, so
what admins copy is what is tested.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.automation.conftest import customer, decisions
from tests.conftest import accepted

README = Path(__file__).resolve().parents[2] / "README.md"


def braze_block() -> str:
    text = README.read_text()
    section = text[text.index("### Braze (Connected Content)"):]
    return re.search(r"```liquid\n(.*?)```", section, re.S).group(1)


def connected_content(client, key: str, email: str) -> dict:
    """Make the README's call the way Braze renders it for a user with ``email``."""
    block = braze_block()
    captured = re.search(r"{% capture guard_check %}\n(.*?){% endcapture %}", block, re.S).group(1)
    body = captured.replace("{{${email_address}}}", email).replace("{{campaign.${api_id}}}",
                                                                     "spring-newsletter")
    tag = re.search(r"{% connected_content (\S+)\n(.*?)%}", block, re.S)
    url, options = tag.group(1), tag.group(2)
    assert re.search(r":method post\b", options)
    headers = json.loads(re.search(r":headers (\{.*?\})\n", options).group(1))
    headers["Authorization"] = headers["Authorization"].replace("cg_YOUR_KEY", key)
    content_type = re.search(r":content_type (\S+)", options).group(1)
    assert re.search(r":body {{guard_check}}", options) and ":save guard" in options
    path = "/" + url.split("/", 3)[3]
    answer = client.post(path, data=body.encode(), headers={
        **headers, "Content-Type": content_type, "Accept": content_type})
    return answer.get_json() if answer.is_json else {}


def aborts(guard_answer: dict) -> bool:
    """Evaluate the README's abort condition on the saved answer."""
    condition = re.search(r'{% if guard\.verdict != "(\w+)" %}{% abort_message', braze_block())
    return guard_answer.get("verdict") != condition.group(1)


def test_a_person_who_opted_out_aborts_the_message_and_the_decision_names_braze(
        client, guard, engine, key):
    customer(guard)
    accepted(guard.ingest([{"type": "consent", "source": {"system": "braze", "id": "c-1"},
                            "email": "anna@example.com", "channel": "email", "purpose": "*",
                            "status": "opt_out", "at": "2026-11-01T09:00:00Z"}]))
    answer = connected_content(client, key, "anna@example.com")
    assert answer["verdict"] == "block" and aborts(answer)
    assert answer["reasons"][0]["message"]
    assert [d["via"] for d in decisions(engine)] == ["braze"]


def test_an_allowed_recipient_gets_the_message(client, guard, engine, key):
    customer(guard)
    answer = connected_content(client, key, "anna@example.com")
    assert answer["verdict"] == "allow" and not aborts(answer)


def test_when_the_guard_cannot_answer_the_message_aborts(client, key):
    assert aborts(connected_content(client, "not-a-key", "anna@example.com"))


def test_a_via_that_is_not_a_name_or_belongs_to_a_signed_integration_is_refused(
        client, engine, key):
    for via in ("hubspot_workflow", "sfmc_journey", "Braze Campaign", "x" * 33):
        answer = client.post("/v1/check", json={"channel": "email", "to": "anna@example.com",
                                                "purpose": "newsletter", "sender": "oem"},
                             headers={"Authorization": f"Bearer {key}", "X-Guard-Via": via})
        assert answer.status_code == 400, via
        assert answer.get_json()["detail"].startswith("X-Guard-Via"), via
    assert decisions(engine) == []
