"""Schemathesis against the guard's own /openapi.json: every v1 operation, live, on the real store.

Checks: no server error whatever the body, and every documented response
(status, content type, body) matches the document. Examples are few per
operation to keep CI fast; the API's fuzz tests (test_fuzz.py) cover more
bodies per endpoint in-process.
"""

from __future__ import annotations

import pytest
import requests
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import openapi
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from guard import create_app
from tests.conftest import person
from tests.proxy.upstream import Serving

MAX_EXAMPLES = 20
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
ADMIN = "conformance-admin-key-" + "x" * 20


@pytest.fixture
def live(store):
    store.ingest([person("003A", "anna@example.com", timezone="Europe/Berlin")])
    app = create_app({"GUARD": store, "TESTING": False, "ADMIN_KEY": ADMIN})
    with Serving(app) as server:
        yield server.url


@pytest.mark.parametrize("operation_id", [
    "health", "ingestEvents", "check", "screen", "createKey", "listKeys", "revokeKey",
    "getDecision", "getPerson",
])
def test_v1_operations_conform_to_the_document(live, operation_id):
    document = requests.get(f"{live}/openapi.json", timeout=10).json()
    [operation] = [result.ok() for result in
                   openapi.from_dict(document).include(operation_id=operation_id)
                   .get_all_operations()]

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(base_url=live, headers={"Authorization": f"Bearer {ADMIN}"},
                               checks=CHECKS)

    check()
