"""The proxy's settings: provider credentials and delivery tuning, read once at start-up."""

from __future__ import annotations

from dataclasses import dataclass

from guard.config import ConfigurationError


@dataclass(frozen=True)
class ProxySettings:
    """Provider credentials and delivery tuning, read once from ``app.config``."""

    sendgrid_url: str = "https://api.sendgrid.com"
    sendgrid_api_key: str | None = None
    twilio_url: str = "https://api.twilio.com"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    forward_attempts: int = 3
    forward_wait: float = 0.5
    forward_wait_max: float = 8.0
    forward_retry_after_max: float = 30.0
    outbox_lease_seconds: float = 300.0
    outbox_retry_seconds: float = 30.0
    idempotency_wait: float = 30.0


_NUMBERS = {
    "FORWARD_ATTEMPTS": int,
    "FORWARD_WAIT": float,
    "FORWARD_WAIT_MAX": float,
    "FORWARD_RETRY_AFTER_MAX": float,
    "OUTBOX_LEASE_SECONDS": float,
    "OUTBOX_RETRY_SECONDS": float,
    "IDEMPOTENCY_WAIT": float,
}
_TEXTS = ("SENDGRID_URL", "SENDGRID_API_KEY", "TWILIO_URL", "TWILIO_ACCOUNT_SID",
          "TWILIO_AUTH_TOKEN", "TWILIO_FROM")


def read_settings(config) -> ProxySettings:
    """Build ProxySettings from a Flask config, raising ConfigurationError naming the setting."""
    values = {}
    for key in _TEXTS:
        value = config.get(key)
        if value not in (None, ""):
            # from_prefixed_env parses JSON-looking values; a token of digits is still text.
            values[key.lower()] = str(value).rstrip("/") if key.endswith("_URL") else str(value)
    for key, kind in _NUMBERS.items():
        value = config.get(key)
        if value in (None, ""):
            continue
        try:
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"GUARD_{key}: expected a number, got {value!r}") from None
        if number < 0 or (key == "FORWARD_ATTEMPTS" and number < 1):
            raise ConfigurationError(f"GUARD_{key}: must be positive, got {value!r}")
        values[key.lower()] = number
    return ProxySettings(**values)
