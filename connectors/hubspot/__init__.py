"""HubSpot: contacts, companies, deals, tickets, engagements and subscriptions in; flags out."""

from connectors.hubspot.client import OAuthTokens, Pacer, StaticToken, build_client, default_retry
from connectors.hubspot.connector import HubSpotConnector, webhook_events
from connectors.hubspot.errors import (
    ApiError,
    CredentialsError,
    HubSpotError,
    MappingError,
    RateLimited,
)
from connectors.hubspot.mapping import HubSpotMapping, load_mapping, parse_mapping
from connectors.hubspot.webhooks import sign, verify_signature

__all__ = [
    "ApiError",
    "CredentialsError",
    "HubSpotConnector",
    "HubSpotError",
    "HubSpotMapping",
    "MappingError",
    "OAuthTokens",
    "Pacer",
    "RateLimited",
    "StaticToken",
    "build_client",
    "default_retry",
    "load_mapping",
    "parse_mapping",
    "sign",
    "verify_signature",
    "webhook_events",
]
