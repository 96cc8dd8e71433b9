"""What can go wrong talking to Salesforce, and what the caller should do about it.

    ConnectorError
    ├── MappingError        fix the mapping file (or the org's fields), then restart
    ├── CredentialsError    set the named environment variables
    ├── ConfigurationError  fix the named GUARD_SALESFORCE_* setting
    ├── QuotaReached        stop; the org's API quota is at its reserve, try after it resets
    ├── SalesforceUnavailable  retries ran out on faults; try again later
    └── OutcomeUnknown      a write reached Salesforce but its answer was lost: look before
                            writing again
"""

from __future__ import annotations


class ConnectorError(Exception):
    """Base of every error the Salesforce connector raises."""


class ConfigurationError(ConnectorError, ValueError):
    """A GUARD_SALESFORCE_* setting is malformed; the message names it."""


class MappingError(ConnectorError, ValueError):
    """The mapping configuration is invalid; the message names the key."""


class CredentialsError(ConnectorError, ValueError):
    """No usable Salesforce credentials in the environment."""


class QuotaReached(ConnectorError):
    """The org's daily API quota is down to the reserve kept for its own users."""


class SalesforceUnavailable(ConnectorError):
    """Salesforce kept failing (connection errors, 5xx, concurrency limits)."""


class OutcomeUnknown(ConnectorError):
    """A create may or may not have been applied: its answer never arrived."""
