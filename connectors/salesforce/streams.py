"""One declarative stream per sObject: what to select, and how a record becomes events.

A stream names its object, the fields it reads and an optional static filter;
``events(record)`` turns one record into SPEC §6 events and ``retract(id)``
says which events a deleted record takes back. Cursor handling, paging, Bulk
and retries live in the connector, not here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import urlparse

from connectors.salesforce.mapping import CHANNELS, CustomObject, SalesforceMapping

SYSTEM = "salesforce"
GUARD_TASK_PREFIX = "Contact Guard:"
# Salesforce key prefixes: who a Task or a campaign member is about.
PERSON_PREFIXES = {"003": "Contact", "00Q": "Lead"}
CHANNEL_WORDS = {"phone": "call", "text": "sms", "letter": "mail", "post": "mail"}
DATE_FIELDS = {"at", "start", "end", "sent_at", "due", "paid_at", "next_due", "starts", "ends",
               "do_not_market_until"}
NUMBER_FIELDS = {"amount", "mileage", "next_due_mileage", "replacement_cycle_years"}


def source(record_type: str, record_id: str) -> dict[str, str]:
    """Return the source of an event made from one Salesforce record."""
    return {"system": SYSTEM, "type": record_type, "id": record_id}


def retraction(event_type: str, record_type: str, record_id: str) -> dict[str, Any]:
    """Return the event that takes back what an earlier event from this source said."""
    return {"type": event_type, "source": source(record_type, record_id), "deleted": True}


def person_ref(record_id: str) -> dict[str, str]:
    """Refer to a person by Salesforce Contact or Lead id."""
    return {SYSTEM: record_id}


def account_ref(record_id: str) -> dict[str, str]:
    """Refer to an account by the source of its account event."""
    return source("Account", record_id)


def value(record: Mapping[str, Any], path: str) -> Any:
    """Follow a field path such as ``Account.Type`` through a record; None when absent."""
    current: Any = record
    for part in path.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    if isinstance(current, str):
        current = current.strip()
        return current or None
    return current


def as_bool(raw: Any) -> bool:
    """Read a checkbox from REST (a bool) or Bulk CSV (a string)."""
    if isinstance(raw, str):
        return raw.strip().lower() == "true"
    return bool(raw)


def as_number(raw: Any) -> int | float | None:
    """Read a number from REST (a number) or Bulk CSV (a string)."""
    if raw is None or raw == "":
        return None
    try:
        number = float(raw)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() else number


def as_datetime(raw: Any) -> str | None:
    """Return a Salesforce datetime or date as ISO 8601."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, datetime | date):
        return raw.isoformat()
    text = str(raw)
    if len(text) == 10:
        return text
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return text
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.isoformat()


def as_date(raw: Any) -> str | None:
    """Return the date part of a Salesforce date or datetime."""
    text = as_datetime(raw)
    return text[:10] if text else None


def convert(field: str, raw: Any) -> Any:
    """Convert a mapped value to what the event field holds."""
    if field in NUMBER_FIELDS:
        return as_number(raw)
    if field in DATE_FIELDS:
        return as_datetime(raw)
    if field == "notify_owner":
        return as_bool(raw)
    if field == "preferred_channel" and raw is not None:
        word = str(raw).strip().lower()
        word = CHANNEL_WORDS.get(word, word)
        return word if word in CHANNELS else None
    return None if raw is None else str(raw).strip() or None


def unique(names: Iterable[str | None]) -> tuple[str, ...]:
    """Keep the first of each field name, dropping empties, in order."""
    seen: dict[str, None] = {}
    for name in names:
        if name and name not in seen:
            seen[name] = None
    return tuple(seen)


class Stream:
    """Records of one sObject, read incrementally by their cursor field."""

    object: str = ""
    event_type: str = ""
    cursor: str = "SystemModstamp"
    where: str | None = None
    bulk: bool = True  # Bulk API 2.0 cannot run parent-child subqueries
    deletions_only: bool = False

    def __init__(self, mapping: SalesforceMapping) -> None:
        self.mapping = mapping

    @property
    def name(self) -> str:
        """Name the stream (and its bookmark) after its object."""
        return self.object

    def fields(self) -> tuple[str, ...]:
        """Return the fields (and subqueries) to select."""
        return ("Id",)

    def select(self) -> tuple[str, ...]:
        """Return the full select list: the stream's fields plus cursor and deletion flag."""
        return unique(("Id", self.cursor, "IsDeleted", *self.fields()))

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Turn one live record into events."""
        raise NotImplementedError

    def retract(self, record_id: str) -> list[dict[str, Any]]:
        """Return the events that take back a deleted record."""
        return [retraction(self.event_type, self.object, record_id)]

    def owner(self, record: Mapping[str, Any], dealer_field: str | None = None) -> str | None:
        """Return the sender that owns a record: its dealer, a mapped user, else the user id."""
        if dealer_field:
            dealer = value(record, dealer_field)
            if dealer:
                return f"dealer:{dealer}"
        owner_id = value(record, "OwnerId")
        if not owner_id:
            return None
        return self.mapping.owners.get(owner_id, f"salesforce-user:{owner_id}")


def _compact(event: dict[str, Any]) -> dict[str, Any]:
    """Drop empty fields: a record's event is the whole record, so absence means unset."""
    return {key: item for key, item in event.items() if item not in (None, [], {})}


class PersonStream(Stream):
    """Contacts and Leads: the person, and their opt-outs as consent events."""

    event_type = "person"
    section = "contact"

    @property
    def config(self) -> Mapping[str, Any]:
        """Return this object's part of the mapping."""
        return getattr(self.mapping, self.section)

    def fields(self) -> tuple[str, ...]:
        mapped = [name for names in self.config["fields"].values() for name in names]
        return unique(("Name", "Email", "Phone", "MobilePhone", "OwnerId",
                       "HasOptedOutOfEmail", "DoNotCall", self.config["dealer_field"], *mapped))

    def person(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """Build the person event of a record."""
        record_id = record["Id"]
        event: dict[str, Any] = {
            "type": "person",
            "source": source(self.object, record_id),
            "name": value(record, "Name"),
            "emails": [email for email in [value(record, "Email")] if email],
            "phones": [phone for phone in (value(record, "Phone"), value(record, "MobilePhone"))
                       if phone],
            "owner": self.owner(record, self.config["dealer_field"]),
            "crm_ids": {SYSTEM: record_id},
        }
        for field, names in self.config["fields"].items():
            for name in names:
                converted = convert(field, value(record, name))
                if converted is not None:
                    event[field] = converted
                    break
        return event

    def consents(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Return the record's email and call opt-outs as consent events with stable sources.

        HasOptedOutOfFax has no counterpart: fax is not a channel (SPEC §3). The
        events carry no ``at``: Salesforce keeps no date for the checkbox, and the
        record's LastModifiedDate moves with every edit (our own write-back too).
        """
        record_id = record["Id"]
        return [
            _compact({
                "type": "consent",
                "source": source(self.object, f"{record_id}:{suffix}"),
                "person": person_ref(record_id),
                "channel": channel,
                "purpose": "*",
                "status": "opt_out" if as_bool(value(record, field)) else "opt_in",
            })
            for field, channel, suffix in (("HasOptedOutOfEmail", "email", "email-optout"),
                                           ("DoNotCall", "call", "call-optout"))
        ]


class ContactStream(PersonStream):
    """Contacts, staged by a mapped field or their account's Type."""

    object = "Contact"
    section = "contact"

    def fields(self) -> tuple[str, ...]:
        return unique((*super().fields(), "AccountId", "Account.Type",
                       self.config["stage_field"]))

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        event = self.person(record)
        event["stage"] = self.stage(record)
        if value(record, "AccountId"):
            event["account"] = account_ref(record["AccountId"])
        return [_compact(event), *self.consents(record)]

    def stage(self, record: Mapping[str, Any]) -> str | None:
        """Return the stage from the mapped stage field, else from the account's Type."""
        stage_field = self.config["stage_field"]
        if stage_field:
            stage = self.config["stages"].get(value(record, stage_field))
            if stage:
                return stage
        return self.config["account_types"].get(value(record, "Account.Type"))


class LeadStream(PersonStream):
    """Leads: prospects until converted, when the Contact carries the person on."""

    object = "Lead"
    section = "lead"

    def fields(self) -> tuple[str, ...]:
        return unique((*super().fields(), "IsConverted"))

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        if as_bool(value(record, "IsConverted")):
            return self.retract(record["Id"])
        event = self.person(record)
        event["stage"] = self.config["stage"]
        return [_compact(event), *self.consents(record)]


class AccountStream(Stream):
    """Accounts: name, web domain and owner."""

    object = "Account"
    event_type = "account"

    def fields(self) -> tuple[str, ...]:
        return ("Name", "Website", "OwnerId")

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [_compact({
            "type": "account",
            "source": source("Account", record["Id"]),
            "name": value(record, "Name"),
            "domain": _domain(value(record, "Website")),
            "owner": self.owner(record),
        })]


def _domain(website: str | None) -> str | None:
    if not website:
        return None
    host = urlparse(website if "//" in website else f"//{website}").hostname or ""
    return host.removeprefix("www.") or None


class OpportunityStream(Stream):
    """Won opportunities become purchases: one per line item, else one for the opportunity."""

    object = "Opportunity"
    event_type = "purchase"
    bulk = False

    def fields(self) -> tuple[str, ...]:
        config = self.mapping.opportunity
        product = unique(("Name", config["product_field"], config["category_field"]))
        items = ", ".join(unique(("Id", "TotalPrice", *(f"Product2.{name}" for name in product))))
        return unique((
            "Name", "IsWon", "CloseDate", "Amount", "AccountId", config["currency_field"],
            f"(SELECT {items} FROM OpportunityLineItems)",
            "(SELECT ContactId, IsPrimary FROM OpportunityContactRoles)",
        ))

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        opp_id = record["Id"]
        items = _children(record, "OpportunityLineItems")
        if not as_bool(value(record, "IsWon")):
            # Reopened or lost: whatever this deal said was bought no longer stands.
            return [retraction("purchase", "Opportunity", opp_id),
                    *(retraction("purchase", "OpportunityLineItem", item["Id"]) for item in items)]
        config = self.mapping.opportunity
        base = {
            "type": "purchase",
            "person": _primary_contact(record),
            "account": account_ref(record["AccountId"]) if value(record, "AccountId") else None,
            "at": as_date(value(record, "CloseDate")),
            "currency": value(record, config["currency_field"]) if config["currency_field"]
            else None,
        }
        if not items:
            return [_compact({**base, "source": source("Opportunity", opp_id),
                              "product": value(record, "Name"),
                              "amount": as_number(value(record, "Amount"))})]
        events = [retraction("purchase", "Opportunity", opp_id)]
        for item in items:
            product = value(item, f"Product2.{config['product_field']}") or value(
                item, "Product2.Name")
            category = (value(item, f"Product2.{config['category_field']}")
                        if config["category_field"] else None)
            events.append(_compact({
                **base, "source": source("OpportunityLineItem", item["Id"]),
                "product": product or value(record, "Name"), "category": category,
                "amount": as_number(value(item, "TotalPrice")),
            }))
        return events


def _children(record: Mapping[str, Any], relationship: str) -> list[Mapping[str, Any]]:
    related = record.get(relationship)
    if isinstance(related, Mapping):
        return list(related.get("records") or [])
    return []


def _primary_contact(record: Mapping[str, Any]) -> dict[str, str] | None:
    roles = [role for role in _children(record, "OpportunityContactRoles")
             if value(role, "ContactId")]
    roles.sort(key=lambda role: not as_bool(role.get("IsPrimary")))
    return person_ref(roles[0]["ContactId"]) if roles else None


class LineItemDeletionStream(Stream):
    """Deleted opportunity line items: their purchases are taken back.

    Live line items come with their opportunity, whose every change (winning
    it, adding a product) the Opportunity stream sees.
    """

    object = "OpportunityLineItem"
    event_type = "purchase"
    where = "IsDeleted = true"
    deletions_only = True

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        return []


class AssetStream(Stream):
    """Assets a person or account owns are purchases, dated by purchase or install."""

    object = "Asset"
    event_type = "purchase"

    def fields(self) -> tuple[str, ...]:
        config = self.mapping.opportunity
        return unique(("Name", "ContactId", "AccountId", "PurchaseDate", "InstallDate", "Price",
                       "Product2.Name", f"Product2.{config['product_field']}",
                       f"Product2.{config['category_field']}" if config["category_field"]
                       else None))

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        config = self.mapping.opportunity
        at = as_date(value(record, "PurchaseDate") or value(record, "InstallDate"))
        contact, account = value(record, "ContactId"), value(record, "AccountId")
        if not at or not (contact or account):
            return self.retract(record["Id"])
        return [_compact({
            "type": "purchase",
            "source": source("Asset", record["Id"]),
            "person": person_ref(contact) if contact else None,
            "account": account_ref(account) if account else None,
            "product": value(record, f"Product2.{config['product_field']}")
            or value(record, "Product2.Name") or value(record, "Name"),
            "category": value(record, f"Product2.{config['category_field']}")
            if config["category_field"] else None,
            "at": at,
            "amount": as_number(value(record, "Price")),
        })]


class ContractStream(Stream):
    """Contracts of accounts, with their status mapped from StatusCode."""

    object = "Contract"
    event_type = "contract"

    def fields(self) -> tuple[str, ...]:
        return unique(("AccountId", "StatusCode", "Status", "StartDate", "EndDate", "OwnerId",
                       self.mapping.contract["product_field"]))

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        config = self.mapping.contract
        code = value(record, "StatusCode") or value(record, "Status") or ""
        if not value(record, "AccountId"):
            return self.retract(record["Id"])
        return [_compact({
            "type": "contract",
            "source": source("Contract", record["Id"]),
            "account": account_ref(record["AccountId"]),
            "status": config["statuses"].get(code, code.lower() or None),
            "start": as_date(value(record, "StartDate")),
            "end": as_date(value(record, "EndDate")),
            "owner": self.owner(record),
            "product": value(record, config["product_field"]) if config["product_field"]
            else None,
        })]


class CaseStream(Stream):
    """Cases of a contact: open or closed, with their owner."""

    object = "Case"
    event_type = "case"

    def fields(self) -> tuple[str, ...]:
        return ("ContactId", "IsClosed", "OwnerId", "Subject", "CreatedDate")

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        contact = value(record, "ContactId")
        if not contact:
            return self.retract(record["Id"])
        return [_compact({
            "type": "case",
            "source": source("Case", record["Id"]),
            "person": person_ref(contact),
            "status": "closed" if as_bool(value(record, "IsClosed")) else "open",
            "owner": self.owner(record),
            "subject": value(record, "Subject"),
            "at": as_datetime(value(record, "CreatedDate")),
        })]


class TaskStream(Stream):
    """Completed calls and emails logged on a Contact or Lead are touches."""

    object = "Task"
    event_type = "touch"
    where = "TaskSubtype IN ('Call', 'Email', 'ListEmail') OR Type IN ('Call', 'Email')"

    def fields(self) -> tuple[str, ...]:
        return unique(("WhoId", "Subject", "TaskSubtype", "Type", "IsClosed", "CreatedDate",
                       "CompletedDateTime", self.mapping.task["purpose_field"]))

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        # The guard's own owner tasks are instructions, not contacts made.
        if (value(record, "Subject") or "").startswith(GUARD_TASK_PREFIX):
            return []
        config = self.mapping.task
        kind = (value(record, "TaskSubtype") or value(record, "Type") or "").lower()
        channel = {"call": "call", "email": "email", "listemail": "email"}.get(kind)
        who = value(record, "WhoId") or ""
        if not channel or who[:3] not in PERSON_PREFIXES or not as_bool(value(record, "IsClosed")):
            return self.retract(record["Id"])
        purpose_field = config["purpose_field"]
        purpose = value(record, purpose_field) if purpose_field else None
        return [_compact({
            "type": "touch",
            "source": source("Task", record["Id"]),
            "person": person_ref(who),
            "channel": channel,
            "purpose": purpose or config["purposes"].get(channel, "prospecting"),
            "sender": config["sender"],
            "at": as_datetime(value(record, "CompletedDateTime") or value(record, "CreatedDate")),
        })]


class CampaignStream(Stream):
    """Campaigns that carry the guard's offer fields are registered campaigns."""

    object = "Campaign"
    event_type = "campaign"

    def fields(self) -> tuple[str, ...]:
        config = self.mapping.campaign
        return unique(("Name", "StartDate", "EndDate", config["id_field"],
                       config["purpose_field"], config["offer_field"],
                       config["eligible_when_field"], config["notify_owner_field"]))

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        config = self.mapping.campaign
        purpose = value(record, config["purpose_field"])
        offer = value(record, config["offer_field"])
        if not purpose or not offer:
            return self.retract(record["Id"])
        eligible = config["eligible_when_field"]
        notify = config["notify_owner_field"]
        return [_compact({
            "type": "campaign",
            "source": source("Campaign", record["Id"]),
            "id": value(record, config["id_field"]) or record["Id"],
            "purpose": purpose,
            "offer": offer,
            "eligible_when": value(record, eligible) if eligible else None,
            "starts": as_date(value(record, "StartDate")),
            "ends": as_date(value(record, "EndDate")),
            "notify_owner": as_bool(value(record, notify)) if notify else None,
        })]


class CampaignMemberStream(Stream):
    """Campaign members whose status means "sent" are touches made outside the guard."""

    object = "CampaignMember"
    event_type = "touch"

    def fields(self) -> tuple[str, ...]:
        campaign = self.mapping.campaign
        return unique(("ContactId", "LeadId", "CampaignId", "Status", "LastModifiedDate",
                       "Campaign.Type", f"Campaign.{campaign['id_field']}",
                       f"Campaign.{campaign['purpose_field']}" if self.mapping.campaigns_enabled
                       else None))

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        config, campaign = self.mapping.campaign_member, self.mapping.campaign
        who = value(record, "ContactId") or value(record, "LeadId")
        channel = config["channels"].get(value(record, "Campaign.Type"))
        if not who or not channel or value(record, "Status") not in config["sent_statuses"]:
            return self.retract(record["Id"])
        purpose = (value(record, f"Campaign.{campaign['purpose_field']}")
                   if self.mapping.campaigns_enabled else None)
        return [_compact({
            "type": "touch",
            "source": source("CampaignMember", record["Id"]),
            "person": person_ref(who),
            "channel": channel,
            "purpose": purpose or config["purpose"],
            "sender": config["sender"],
            "campaign": value(record, f"Campaign.{campaign['id_field']}")
            or value(record, "CampaignId"),
            "at": as_datetime(value(record, "LastModifiedDate")),
        })]


class CustomObjectStream(Stream):
    """An org's own object mapped onto one event type without code."""

    def __init__(self, mapping: SalesforceMapping, spec: CustomObject) -> None:
        super().__init__(mapping)
        self.spec = spec
        self.object = spec.object
        self.event_type = spec.event

    def fields(self) -> tuple[str, ...]:
        return unique((self.spec.person, self.spec.account, *self.spec.fields.values()))

    def events(self, record: Mapping[str, Any]) -> list[dict[str, Any]]:
        person = value(record, self.spec.person) if self.spec.person else None
        account = value(record, self.spec.account) if self.spec.account else None
        if not person and not account:
            return self.retract(record["Id"])
        event: dict[str, Any] = {
            "type": self.spec.event,
            "source": source(self.spec.object, record["Id"]),
            "person": person_ref(person) if person else None,
            "account": account_ref(account) if account else None,
        }
        for field, name in self.spec.fields.items():
            raw = value(record, name)
            event[field] = (self.owner({"OwnerId": raw}) if field == "owner" and raw
                            else convert(field, raw))
        return [_compact(event)]


def build_streams(mapping: SalesforceMapping) -> list[Stream]:
    """Return the streams to sync, in an order where referenced records tend to come first."""
    streams: list[Stream] = [
        AccountStream(mapping), ContactStream(mapping), LeadStream(mapping),
        OpportunityStream(mapping), LineItemDeletionStream(mapping), AssetStream(mapping),
        ContractStream(mapping), CaseStream(mapping), TaskStream(mapping),
    ]
    if mapping.campaigns_enabled:
        streams.append(CampaignStream(mapping))
    streams.append(CampaignMemberStream(mapping))
    streams.extend(CustomObjectStream(mapping, spec) for spec in mapping.objects)
    return streams
