"""Schemathesis against the provider endpoints: SendGrid's and Twilio's own specs, and ours.

The provider specs are the official ones from ``shared/specs/``, trimmed to
the operations under test (``specs/*.json``; each records the sha256 of the
file it was cut from) so the suite needs nothing outside the repository.

Checks: no server errors, and every documented response matches its schema.
The guard runs live (a thread) in front of the recording upstream; verdicts
vary by recipient so allowed, blocked, deferred and rerouted answers are all
exercised. Examples are few per operation to keep CI fast.
"""

from __future__ import annotations

import base64
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
)

from guard import create_app
from guard.http import keys

from .conftest import proxy_config
from .standin import ScriptedGuard
from .upstream import Serving, Upstream

SPECS = Path(__file__).resolve().parent / "specs"
MAX_EXAMPLES = 25
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]


def mixed_verdict(attempt: dict) -> str:
    """Spread verdicts over recipients deterministically."""
    return ("allow", "block", "defer", "reroute")[zlib.crc32(attempt["to"].encode()) % 4]


@pytest.fixture
def live(engine):
    upstream = Upstream()
    with Serving(upstream) as provider:
        guard = ScriptedGuard(engine, {})
        guard.verdicts = _Everyone(mixed_verdict)
        app = create_app({"GUARD": guard, "TESTING": False, **proxy_config(provider.url)})
        _, token = keys.create_key(engine, "conformance", ["send"], sender="oem",
                                   purpose="promotion")
        with Serving(app) as guard_server:
            yield guard_server.url, token


class _Everyone(dict):
    def __init__(self, verdict):
        super().__init__()
        self.verdict = verdict

    def get(self, key, default=None):
        return self.verdict


def run(schema, base_url: str, headers: dict) -> int:
    """Run every operation of ``schema``; return how many were run."""
    ran = 0
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

        check()
        ran += 1
    return ran


def official(name: str):
    return openapi.from_path(str(SPECS / name))


def test_sendgrid_mail_send_conforms_to_sendgrids_spec(live):
    base_url, token = live
    schema = official("tsg_mail_v3.SendMail.json").include(operation_id="SendMail")
    assert run(schema, base_url, {"Authorization": f"Bearer {token}"}) == 1


def test_twilio_messages_and_calls_conform_to_twilios_spec(live):
    base_url, token = live
    schema = official("twilio_api_v2010.CreateMessage-CreateCall.json").include(
        operation_id=["CreateMessage", "CreateCall"])
    basic = base64.b64encode(f"AC{'c' * 32}:{token}".encode()).decode()
    assert run(schema, base_url, {"Authorization": f"Basic {basic}"}) == 2


def test_proxy_endpoints_conform_to_the_guards_own_openapi(live):
    import requests

    base_url, token = live
    document = requests.get(f"{base_url}/openapi.json", timeout=10).json()
    # The document describes Bearer for SendGrid and Basic for Twilio; the key works as both.
    ran = run(openapi.from_dict(document).include(operation_id="sendgridMailSend"), base_url,
              {"Authorization": f"Bearer {token}"})
    basic = base64.b64encode(f"AC{'c' * 32}:{token}".encode()).decode()
    ran += run(openapi.from_dict(document).include(operation_id_regex="^twilioCreate"),
               base_url, {"Authorization": f"Basic {basic}"})
    assert ran == 3
