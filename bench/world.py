"""Hold a generated population in memory, the way the engine sees it: profiles and ledgers.

The engine figures need profiles and ledgers without a store. ``World``
folds the generator's events into ``Profile`` objects and ledger entries
keyed by address, and also keeps each profile in its stored form (the JSON
the store's ``people.profile`` column holds), so the engine can be compared
with the cheapest possible fetch of the same inputs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from policies.model import (
    Account,
    Campaign,
    Case,
    Consent,
    Contract,
    Evidence,
    Invoice,
    LedgerEntry,
    Profile,
    Purchase,
    Service,
    parse_datetime,
)

_FACTS = {
    "purchase": ("purchases", Purchase, "Purchase"),
    "consent": ("consents", Consent, "Consent"),
    "case": ("cases", Case, "Case"),
    "service": ("services", Service, "Service"),
    "invoice": ("invoices", Invoice, "Invoice"),
}


def _evidence(source: Mapping, kind: str) -> Evidence:
    return Evidence(source["system"], source.get("type") or kind, source["id"])


def _key(source: Mapping) -> tuple[str, str]:
    return source["system"], source["id"]


@dataclass
class World:
    """A population folded into profiles, ledgers and campaigns, addressable like the store."""

    profiles: dict[str, Profile] = field(default_factory=dict)  # person id → profile
    ledgers: dict[str, tuple[LedgerEntry, ...]] = field(default_factory=dict)
    addresses: dict[str, str] = field(default_factory=dict)  # email or phone → person id
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    stored: dict[str, str] = field(default_factory=dict)  # person id → profile JSON
    stored_ledgers: dict[str, str] = field(default_factory=dict)  # person id → ledger JSON

    @classmethod
    def build(cls, events: Iterable[Mapping], since: datetime | None = None) -> World:
        """Fold events into a world; ``since`` drops ledger entries no rule looks at."""
        world = cls()
        persons: dict[tuple[str, str], dict] = {}
        accounts: dict[tuple[str, str], Account] = {}
        contracts: dict[tuple[str, str], list[Contract]] = defaultdict(list)
        facts: dict[tuple[str, str], dict[str, list]] = defaultdict(lambda: defaultdict(list))
        touches: dict[tuple[str, str], list[LedgerEntry]] = defaultdict(list)
        for event in events:
            kind = event["type"]
            if kind == "person":
                persons[_key(event["source"])] = event
            elif kind == "account":
                key = _key(event["source"])
                accounts[key] = Account(id=f"acc:{key[0]}:{key[1]}", name=event.get("name"),
                                        domain=event.get("domain"), owner=event.get("owner"),
                                        source=_evidence(event["source"], "Account"))
            elif kind == "contract":
                contracts[_key(event["account"])].append(Contract.from_dict({
                    **event, "source": _evidence(event["source"], "Contract").to_dict()}))
            elif kind in _FACTS:
                name, record, label = _FACTS[kind]
                facts[_key(event["person"])][name].append(record.from_dict({
                    **event, "source": _evidence(event["source"], label).to_dict()}))
            elif kind == "touch":
                entry = LedgerEntry(
                    at=parse_datetime(event["at"]), channel=event["channel"],
                    purpose=event["purpose"], sender=event["sender"],
                    campaign=event.get("campaign"), template=event.get("template"),
                    source=_evidence(event["source"], "Touch"))
                if since is None or entry.at >= since:
                    touches[_key(event["person"])].append(entry)
            elif kind == "campaign":
                world.campaigns[event["id"]] = Campaign.from_dict({
                    **event, "source": _evidence(event["source"], "Campaign").to_dict()})
        for key, event in persons.items():
            person_id = f"per_{key[0]}_{key[1]}"
            account_key = _key(event["account"]) if event.get("account") else None
            mine = facts.get(key, {})
            profile = Profile(
                id=person_id,
                emails=tuple(event.get("emails") or ()),
                phones=tuple(event.get("phones") or ()),
                name=event.get("name"),
                stage=event.get("stage"),
                owner=event.get("owner"),
                timezone=event.get("timezone"),
                preferred_channel=event.get("preferred_channel"),
                contact_hours=event.get("contact_hours"),
                replacement_cycle_years=event.get("replacement_cycle_years"),
                account=accounts.get(account_key) if account_key else None,
                contracts=tuple(contracts.get(account_key, ())) if account_key else (),
                sources=(_evidence(event["source"], "Person"),),
                **{name: tuple(records) for name, records in mine.items()},
            )
            world.profiles[person_id] = profile
            world.ledgers[person_id] = tuple(sorted(touches.get(key, ()), key=lambda e: e.at))
            for address in (*profile.emails, *profile.phones):
                world.addresses[address] = person_id
            world.stored[person_id] = json.dumps(profile.to_dict())
            world.stored_ledgers[person_id] = json.dumps(
                [e.to_dict() for e in world.ledgers[person_id]])
        return world

    def fetch(self, address: str) -> tuple[Profile, tuple[LedgerEntry, ...]]:
        """Return the live profile and ledger for an address (a stranger's are empty)."""
        person_id = self.addresses.get(address)
        if person_id is None:
            return Profile(id=None), ()
        return self.profiles[person_id], self.ledgers[person_id]

    def load(self, address: str) -> tuple[Profile, list[LedgerEntry]]:
        """Rebuild the profile and ledger from their stored form, as a store read must."""
        person_id = self.addresses.get(address)
        if person_id is None:
            return Profile(id=None), []
        profile = Profile.from_dict(json.loads(self.stored[person_id]))
        ledger = [LedgerEntry.from_dict(e) for e in json.loads(self.stored_ledgers[person_id])]
        return profile, ledger
