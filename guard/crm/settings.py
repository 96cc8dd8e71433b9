"""The CRM settings: which CRMs are configured, how often they sync, the webhook secret."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from guard.config import ConfigurationError

# The environment variables the connectors read their credentials and mappings from.
ENV_PREFIXES = ("GUARD_SALESFORCE_", "GUARD_HUBSPOT_")


@dataclass(frozen=True)
class CrmSettings:
    """What the CRM jobs and the webhook endpoint need, read once at start-up."""

    systems: tuple[str, ...] = ()
    sync_interval: float = 300.0
    # The connectors' part of the environment, as it was at start-up.
    environ: Mapping[str, str] = field(default_factory=dict)
    webhook_secret: str | None = None
    webhook_max_bytes: int = 1024 * 1024
    public_url: str | None = None


def read_settings(config: Mapping, environ: Mapping[str, str]) -> CrmSettings:
    """Build CrmSettings from a Flask config and the environment; bad values name the setting."""
    raw = config.get("SYNC_INTERVAL", 300)
    try:
        interval = float(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"GUARD_SYNC_INTERVAL: expected seconds, got {raw!r}") from None
    if interval <= 0:
        raise ConfigurationError(f"GUARD_SYNC_INTERVAL: must be positive, got {raw!r}")
    # HubSpot signs webhooks with the app's client secret; a separate one may be given.
    secret = config.get("HUBSPOT_WEBHOOK_SECRET") or config.get("HUBSPOT_CLIENT_SECRET")
    public = config.get("PUBLIC_URL")
    return CrmSettings(
        systems=tuple(configured_systems(environ)),
        sync_interval=interval,
        environ=MappingProxyType(
            {k: v for k, v in environ.items() if k.startswith(ENV_PREFIXES)}),
        webhook_secret=str(secret) if secret else None,
        webhook_max_bytes=config["HUBSPOT_WEBHOOK_MAX_BYTES"],
        public_url=str(public).rstrip("/") if public else None,
    )


def configured_systems(environ: Mapping[str, str]) -> list[str]:
    """Name the CRMs whose credentials are present in the environment."""
    def has(*names: str) -> bool:
        return all(environ.get(name) for name in names)

    found = []
    sf = "GUARD_SALESFORCE_"
    if (has(sf + "USERNAME", sf + "PASSWORD") or has(sf + "CONSUMER_KEY", sf + "CONSUMER_SECRET")
            or (has(sf + "USERNAME", sf + "CONSUMER_KEY")
                and (has(sf + "PRIVATE_KEY") or has(sf + "PRIVATE_KEY_FILE")))):
        found.append("salesforce")
    hs = "GUARD_HUBSPOT_"
    if has(hs + "TOKEN") or has(hs + "CLIENT_ID", hs + "CLIENT_SECRET", hs + "REFRESH_TOKEN"):
        found.append("hubspot")
    return found
