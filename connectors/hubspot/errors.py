"""What can go wrong talking to HubSpot, and what the caller should do about it.

HubSpotError
├── MappingError        the mapping file is wrong: fix it (fails at start-up)
├── CredentialsError    no usable token or OAuth app settings: fix the environment
└── ApiError            HubSpot answered with an error, or never answered
    ├── RateLimited     still throttled after the retries: try again later
    └── OutcomeUnknown  a create may have been applied (its answer was lost):
                        look before creating again
"""

from __future__ import annotations


class HubSpotError(Exception):
    """Base of every error the HubSpot connector raises."""


class MappingError(HubSpotError, ValueError):
    """A mapping configuration value is invalid; names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class CredentialsError(HubSpotError):
    """The environment lacks a private-app token or a complete OAuth app."""


class ApiError(HubSpotError):
    """A HubSpot API call failed; ``retriable`` says whether a later run may succeed."""

    def __init__(self, operation: str, status: int, detail: str) -> None:
        super().__init__(f"HubSpot {operation} failed with HTTP {status}: {detail}")
        self.operation = operation
        self.status = status
        self.detail = detail

    @property
    def retriable(self) -> bool:
        return self.status in (0, 429) or self.status >= 500


class RateLimited(ApiError):
    """HubSpot kept answering 429 after every retry."""


class OutcomeUnknown(ApiError):
    """A create reached HubSpot but its answer was lost: it may or may not have been applied."""
