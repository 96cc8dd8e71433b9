"""The "Contact Guard check" workflow action is registered for the app, once, by the real client.

Action definitions belong to the app and are managed with its developer API
key (``hapikey``): ``GET`` / ``POST /automation/v4/actions/{appId}``, ``PATCH
/automation/v4/actions/{appId}/{definitionId}`` (Automation Actions API v4,
"Definitions"). The fake checks each definition against the documented fields
(``actionUrl`` https, ``objectTypes``, input fields with ``typeDefinition`` and
``supportedValueTypes``, output fields, ``labels.en.actionName``, execution rules
with their labels).
"""

from __future__ import annotations

import pytest
from hubspot import HubSpot

from connectors.hubspot import ApiError, default_retry, workflow_action
from connectors.hubspot.install import install_action
from connectors.hubspot.workflow_action import INPUTS, OUTPUTS, VERDICTS, definition
from tests.automation.fake_hubspot import FakeAutomation

ACTION_URL = "https://guard.example.com/hooks/hubspot/action"


@pytest.fixture
def fake():
    server = FakeAutomation().start()
    yield server
    server.stop()
    assert server.problems == []


def client(fake, key=None) -> HubSpot:
    return HubSpot(api_key=key or fake.developer_key, host=fake.url,
                   retry=default_retry(backoff_factor=0.01))


def test_the_action_is_registered_once_and_a_second_run_changes_nothing(fake):
    done = install_action(client(fake), fake.app_id, ACTION_URL)
    assert len(done) == 1 and done[0].startswith("created workflow action 'Contact Guard check'")
    assert install_action(client(fake), fake.app_id, ACTION_URL) == []
    [stored] = fake.definitions.values()
    assert stored["actionUrl"] == ACTION_URL and stored["objectTypes"] == ["CONTACT"]
    assert stored["published"] is True


def test_the_definition_has_the_check_inputs_and_the_verdict_outputs():
    wanted = definition(ACTION_URL)
    inputs = {f["typeDefinition"]["name"]: f for f in wanted["inputFields"]}
    assert list(inputs) == ["channel", "purpose", "sender", "campaign", "template", "product",
                            "commit"]
    assert [n for n, f in inputs.items() if f["isRequired"]] == ["channel", "purpose", "sender"]
    assert all(f["supportedValueTypes"] == ["STATIC_VALUE", "OBJECT_PROPERTY"]
               for f in inputs.values())
    outputs = {f["typeDefinition"]["name"]: f["typeDefinition"] for f in wanted["outputFields"]}
    assert [o["value"] for o in outputs["verdict"]["options"]] == list(VERDICTS)
    assert {"reason", "rules", "not_before", "reroute_owner", "reroute_channel",
            "decision_id"} <= set(outputs)
    labels = wanted["labels"]["en"]
    assert set(labels["inputFieldLabels"]) == {name for name, *_ in INPUTS}
    assert set(labels["outputFieldLabels"]) == {name for name, _ in OUTPUTS}


def test_a_definition_that_drifted_is_brought_up_to_date(fake):
    install_action(client(fake), fake.app_id, ACTION_URL)
    [stored] = fake.definitions.values()
    stored["labels"] = {"en": {"actionName": "Old name"}}
    done = install_action(client(fake), fake.app_id, ACTION_URL)
    assert done == [f"updated workflow action 'Contact Guard check' (definition {stored['id']}): "
                    "labels"]
    assert fake.definitions[stored["id"]]["labels"] == definition(ACTION_URL)["labels"]
    assert ("POST", f"/automation/v4/actions/{fake.app_id}") in fake.requests


def test_other_definitions_of_the_app_are_read_past_and_left_alone(fake):
    other = install_action(client(fake), fake.app_id, "https://other.example.com/action")
    assert other
    install_action(client(fake), fake.app_id, ACTION_URL)
    # The fake pages one definition at a time: the second run must read page two.
    assert install_action(client(fake), fake.app_id, ACTION_URL) == []
    assert len(fake.definitions) == 2


def test_a_wrong_developer_key_is_a_clear_error(fake):
    with pytest.raises(ApiError) as refused:
        install_action(client(fake, "not-the-key"), fake.app_id, ACTION_URL)
    assert refused.value.status == 401 and not refused.value.retriable


def test_a_definition_hubspot_filled_with_its_defaults_needs_no_update():
    wanted = definition(ACTION_URL)
    answered = {**wanted, "id": "1000", "revisionId": "3", "functions": [], "published": True,
                "inputFields": [{**field, "typeDefinition": {
                    **field["typeDefinition"], "options": field["typeDefinition"].get(
                        "options", []), "externalOptions": False}}
                    for field in wanted["inputFields"]]}
    assert workflow_action.differs(answered, wanted) == []
    renamed = {**answered, "labels": {**answered["labels"], "en": {
        **answered["labels"]["en"], "actionName": "Old name"}}}
    assert workflow_action.differs(renamed, wanted) == ["labels"]
    fewer = {**answered, "inputFields": answered["inputFields"][:-1]}
    assert workflow_action.differs(fewer, wanted) == ["inputFields"]
    moved = {key: value for key, value in answered.items() if key != "actionUrl"}
    assert workflow_action.differs(moved, wanted) == ["actionUrl"]
