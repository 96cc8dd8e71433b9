"""The rule kinds of a policy file (SPEC §8), by the name a policy file uses."""

from policies.rules.already_owned import AlreadyOwned
from policies.rules.base import Rule
from policies.rules.campaign_registry import CampaignRegistry
from policies.rules.consent import ConsentRule
from policies.rules.contact_window import ContactWindow
from policies.rules.custom import Custom
from policies.rules.duplicate_content import DuplicateContent
from policies.rules.existing_customer import ExistingCustomer
from policies.rules.frequency_cap import FrequencyCap
from policies.rules.open_case import OpenCase
from policies.rules.preferred_channel import PreferredChannel
from policies.rules.prerequisite import Prerequisite
from policies.rules.purchase_cooldown import PurchaseCooldown
from policies.rules.relationship_owner import RelationshipOwner
from policies.rules.replacement_cycle import ReplacementCycle
from policies.rules.service_due import ServiceDue

KINDS: dict[str, type[Rule]] = {
    kind.kind: kind
    for kind in (
        ConsentRule, PurchaseCooldown, AlreadyOwned, ReplacementCycle, ExistingCustomer,
        RelationshipOwner, FrequencyCap, DuplicateContent, ContactWindow, PreferredChannel,
        Prerequisite, ServiceDue, CampaignRegistry, OpenCase, Custom,
    )
}

__all__ = ["KINDS"]
