"""``guard install salesforce`` with the Flow action: credentials, External Service, access.

Each component is deployed with ``upsertMetadata`` through simple-salesforce's
zeep client, which serialises it against the Metadata WSDL simple-salesforce
ships (an element the type lacks, or a value outside an enumeration, fails
before anything is sent); the test also reads that WSDL to check every element
the type requires is there.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import simple_salesforce

from connectors.salesforce.external_service import (
    FlowAction,
    external_credential,
    named_credential,
    principal_access,
    registration,
)
from connectors.salesforce.install import install
from tests.connectors.salesforce.conftest import make_connector
from tests.connectors.salesforce.fake import FakeSalesforce

WSDL = (Path(simple_salesforce.__file__).parent / "metadata.wsdl").read_text()
URL = "https://guard.example.com"
SCHEMA = json.dumps({"openapi": "3.0.3", "info": {"title": "Contact Guard", "version": "1"},
                     "paths": {}})


def wsdl_type(name: str) -> dict[str, dict]:
    """Return the elements of a Metadata WSDL complex type (its own and its base's)."""
    body = re.search(rf'<xsd:complexType name="{name}">(.*?)</xsd:complexType>', WSDL, re.S)
    elements = {}
    for attributes in re.findall(r"<xsd:element ([^>]*?)/?>", body.group(1)):
        element = dict(re.findall(r'(\w+)="([^"]*)"', attributes))
        elements[element["name"]] = element
    return elements


def enumeration(name: str) -> list[str]:
    body = re.search(rf'<xsd:simpleType name="{name}">(.*?)</xsd:simpleType>', WSDL, re.S)
    return re.findall(r'value="(\w+)"', body.group(1))


def shape_problems(kind: str, data: dict) -> list[str]:
    """Compare metadata with its WSDL type: no unknown element, every required one, enum values."""
    elements = wsdl_type(kind)
    problems = [f"{kind}.{key}: not in the WSDL" for key in data
                if key not in elements and key != "fullName"]
    problems += [f"{kind}.{name}: required" for name, element in elements.items()
                 if element.get("minOccurs") != "0" and name not in data]
    for key, value in data.items():
        element = elements.get(key)
        if element is None:
            continue
        type_name = element["type"].split(":")[-1]
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict):
                problems += shape_problems(type_name, item)
            elif f'<xsd:simpleType name="{type_name}">' in WSDL and \
                    item not in enumeration(type_name):
                problems.append(f"{kind}.{key}: {item!r} is not a {type_name}")
    return problems


@pytest.mark.parametrize("kind, data", [
    ("ExternalCredential", external_credential()),
    ("NamedCredential", named_credential(URL)),
    ("ExternalServiceRegistration", registration(SCHEMA)),
    ("PermissionSetExternalCredentialPrincipalAccess", principal_access()),
], ids=["external-credential", "named-credential", "external-service", "principal-access"])
def test_each_component_has_the_metadata_apis_shape(kind, data):
    assert shape_problems(kind, data) == []


def test_the_credential_sends_the_principals_key_as_a_bearer_token_and_names_the_flow():
    headers = {p["parameterName"]: p.get("parameterValue")
               for p in external_credential()["externalCredentialParameters"]
               if p["parameterType"] == "AuthHeader"}
    assert headers == {"Authorization": "{!'Bearer ' & $Credential.Contact_Guard.ApiKey}",
                       "X-Guard-Via": "salesforce_flow"}
    [principal] = [p for p in external_credential()["externalCredentialParameters"]
                   if p["parameterType"] == "NamedPrincipal"]
    assert principal_access()["externalCredentialPrincipal"] == \
        f"Contact_Guard-{principal['parameterName']}"
    parameters = {p["parameterType"]: p for p in named_credential(URL)["namedCredentialParameters"]}
    assert parameters["Url"]["parameterValue"] == URL
    assert parameters["Authentication"]["externalCredential"] == "Contact_Guard"


def test_install_deploys_the_flow_action_in_order_then_changes_nothing(mock):
    fake = FakeSalesforce(mock)
    connector = make_connector(fake)
    flow = FlowAction(URL, SCHEMA)

    first = install(connector.sf, connector.api, flow)
    second = install(connector.sf, connector.api, flow)

    order = [line for line in first if not line.startswith("created field")]
    assert order == ["created external credential Contact_Guard",
                     "created named credential Contact_Guard",
                     "created external service Contact_Guard",
                     "created permission set Contact_Guard_Users",
                     "created permission set Contact_Guard_Integration"]
    assert second == []
    service = fake.metadata[("ExternalServiceRegistration", "Contact_Guard")]
    assert json.loads(service["schema"]) == json.loads(SCHEMA)
    assert (service["namedCredentialReference"], service["schemaType"]) == (
        "Contact_Guard", "OpenApi3")
    integration = fake.metadata[("PermissionSet", "Contact_Guard_Integration")]
    assert integration["externalCredentialPrincipalAccesses"] == {
        "enabled": "true", "externalCredentialPrincipal": "Contact_Guard-Contact_Guard_Key"}
    assert len(integration["fieldPermissions"]) == 15, "the fields stay granted"
    # Nothing secret is deployed: the key is entered on the principal after the deploy.
    deployed = json.dumps({str(k): v for k, v in fake.metadata.items()})
    assert "cg_" not in deployed


def test_a_new_public_url_updates_the_named_credential_only(mock):
    fake = FakeSalesforce(mock)
    connector = make_connector(fake)
    install(connector.sf, connector.api, FlowAction(URL, SCHEMA))
    moved = install(connector.sf, connector.api, FlowAction("https://guard2.example.com", SCHEMA))
    assert moved == ["updated named credential Contact_Guard"]
