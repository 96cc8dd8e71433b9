"""Salesforce connector: Contacts, Leads, deals and activities in as events; flags and tasks out."""

from connectors.salesforce.connector import SalesforceConnector
from connectors.salesforce.errors import (
    ConfigurationError,
    ConnectorError,
    CredentialsError,
    MappingError,
    QuotaReached,
    SalesforceUnavailable,
)
from connectors.salesforce.mapping import SalesforceMapping, load_mapping

__all__ = [
    "ConfigurationError",
    "ConnectorError",
    "CredentialsError",
    "MappingError",
    "QuotaReached",
    "SalesforceConnector",
    "SalesforceMapping",
    "SalesforceUnavailable",
    "load_mapping",
]
