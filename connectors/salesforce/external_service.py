"""The Flow action "Contact Guard: check" with no Apex: External Service, credentials, access.

Metadata API shapes (the Metadata WSDL that simple-salesforce ships, types
``ExternalCredential``, ``NamedCredential``, ``ExternalServiceRegistration``
and ``PermissionSet.externalCredentialPrincipalAccesses``):

- an External Credential with the ``Custom`` protocol, one named principal,
  and the headers every call carries: ``Authorization: Bearer`` and the
  principal's ``ApiKey`` (``{!'Bearer ' & $Credential.Contact_Guard.ApiKey}``,
  Salesforce's formula for a credential parameter), and ``X-Guard-Via``;
- a Named Credential of type ``SecuredEndpoint`` whose ``Url`` is the guard
  and whose ``Authentication`` is that External Credential;
- the External Service registration of the trimmed OpenAPI 3 document,
  calling through the Named Credential;
- the integration permission set's access to the principal
  (``<External Credential>-<principal>``).

The key itself is never deployed: the admin enters it on the principal after
the deploy (Setup → Named Credentials → External Credentials → Contact Guard
→ Principals → Authentication Parameters, ``ApiKey``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

NAME = "Contact_Guard"
LABEL = "Contact Guard"
PRINCIPAL = "Contact_Guard_Key"
KEY_PARAMETER = "ApiKey"
VIA = "salesforce_flow"


@dataclass(frozen=True)
class FlowAction:
    """What the deploy needs: the guard's public URL and the External Services document."""

    url: str
    schema: str  # the OpenAPI 3 document, as JSON text


def external_credential() -> dict[str, Any]:
    """Describe the External Credential: Custom protocol, one principal, the call's headers."""
    return {
        "fullName": NAME, "label": LABEL, "authenticationProtocol": "Custom",
        "description": "The Contact Guard API key (set ApiKey on the principal after deploy).",
        "externalCredentialParameters": [
            {"parameterName": PRINCIPAL, "parameterType": "NamedPrincipal",
             "sequenceNumber": 1},
            {"parameterName": "Authorization", "parameterType": "AuthHeader",
             "parameterValue": f"{{!'Bearer ' & $Credential.{NAME}.{KEY_PARAMETER}}}",
             "sequenceNumber": 1},
            {"parameterName": "X-Guard-Via", "parameterType": "AuthHeader",
             "parameterValue": VIA, "sequenceNumber": 2},
        ],
    }


def named_credential(url: str) -> dict[str, Any]:
    """Describe the Named Credential: the guard's URL, authenticated by the External Credential."""
    return {
        "fullName": NAME, "label": LABEL, "namedCredentialType": "SecuredEndpoint",
        "allowMergeFieldsInBody": False, "allowMergeFieldsInHeader": False,
        "generateAuthorizationHeader": True, "calloutStatus": "Enabled",
        "namedCredentialParameters": [
            {"parameterName": "Url", "parameterType": "Url", "parameterValue": url},
            {"parameterName": "ExternalCredential", "parameterType": "Authentication",
             "externalCredential": NAME},
        ],
    }


def registration(schema: str) -> dict[str, Any]:
    """Describe the External Service registration of the check operation."""
    return {
        "fullName": NAME, "label": LABEL,
        "description": "Contact Guard: check a contact before it is made; branch on verdict.",
        "namedCredentialReference": NAME, "registrationProviderType": "Custom",
        "schemaType": "OpenApi3", "schema": schema, "status": "Complete",
        "operations": [{"name": "check", "active": True}],
    }


def principal_access() -> dict[str, Any]:
    """Describe the permission set's access to the External Credential's principal."""
    return {"externalCredentialPrincipal": f"{NAME}-{PRINCIPAL}", "enabled": True}
