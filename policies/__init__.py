"""Decide one contact attempt: the model, the rule kinds, policy files."""

from policies.engine import combine, decide
from policies.model import (
    CATEGORIES,
    CHANNELS,
    VERDICTS,
    Account,
    Attempt,
    Campaign,
    Case,
    Consent,
    Contract,
    Decision,
    Evidence,
    Finding,
    Invoice,
    LedgerEntry,
    Notice,
    Profile,
    Purchase,
    Service,
)
from policies.policy import (
    Defaults,
    Policy,
    PolicyError,
    Problem,
    default_policy_path,
    load_policy,
    parse_policy,
)

__all__ = [
    "CATEGORIES", "CHANNELS", "VERDICTS", "Account", "Attempt", "Campaign", "Case", "Consent",
    "Contract", "Decision", "Defaults", "Evidence", "Finding", "Invoice", "LedgerEntry", "Notice",
    "Policy", "PolicyError", "Problem", "Profile", "Purchase", "Service", "combine", "decide",
    "default_policy_path", "load_policy", "parse_policy",
]
