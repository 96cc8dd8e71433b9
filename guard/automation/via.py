"""Where a decision came from: the ``via`` the ledger keeps with it.

The guard's own integrations name themselves; a caller of ``POST /v1/check``
(Braze Connected Content, a script) may name itself in ``X-Guard-Via``, but
never as one of the guard's own integrations, whose requests are signed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from guard.errors import InvalidField

HUBSPOT_WORKFLOW = "hubspot_workflow"
SFMC_JOURNEY = "sfmc_journey"
SALESFORCE_FLOW = "salesforce_flow"
# Names only a signed endpoint records: a key holder cannot pass a check off as theirs.
SIGNED = frozenset({HUBSPOT_WORKFLOW, SFMC_JOURNEY})
HEADER = "X-Guard-Via"
_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,31}")


def from_headers(headers: Mapping[str, str]) -> str | None:
    """Return the ``X-Guard-Via`` a caller names itself by, or None; raise InvalidField."""
    value = headers.get(HEADER)
    if value is None:
        return None
    name = value.strip().lower()
    if not _NAME.fullmatch(name):
        raise InvalidField(HEADER, "expected a name of 1 to 32 lower-case letters, digits, "
                                   f"'_', '.' or '-' starting with a letter, got {value!r}")
    if name in SIGNED:
        raise InvalidField(HEADER, f"{name!r} is recorded only by the guard's own signed "
                                   "endpoint for it")
    return name
