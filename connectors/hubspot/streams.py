"""Declarative streams: which HubSpot object type is read how, and what events it yields.

Every stream reads incrementally through the CRM search API, sorted by its
modification time, and turns a page of records into events (fetching the
associations and related records it needs). Each stream also has an
archived twin that turns archived records into retractions.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from connectors.hubspot import records as rec
from connectors.hubspot.client import Api, chunks
from connectors.hubspot.mapping import HubSpotMapping

# HubSpot's search API returns at most 10,000 results per query; asking for
# a page past that is an HTTP 400.
SEARCH_LIMIT = 10_000
ID_PROPERTY = "hs_object_id"  # numeric, so it compares and sorts as a number


@dataclass
class Context:
    """What a stream needs while turning records into events."""

    api: Api
    mapping: HubSpotMapping
    closed_ticket_stages: frozenset[str] | None = None


def read_incremental(
    api: Api,
    object_type: str,
    key: str,
    properties: Sequence[str],
    since_ms: int,
    *,
    page_size: int = 200,
    search_limit: int = SEARCH_LIMIT,
    inclusive: bool = True,
) -> Iterator[list[dict]]:
    """Yield pages of records modified at or after ``since_ms`` (after, unless ``inclusive``).

    Pages come oldest first.

    When a query reaches the search limit it is restarted from the last
    timestamp seen. When every record of a query shares that timestamp (more
    than the limit modified in the same millisecond, e.g. by an import), that
    one timestamp is walked by numeric object id instead, so the read neither
    loops forever nor skips records.
    """
    lower = since_ms
    tie: tuple[int, int] | None = None  # (timestamp, last id) while walking one timestamp
    props = list(dict.fromkeys([*properties, key, ID_PROPERTY]))
    while True:
        if tie:
            filters = [
                {"propertyName": key, "operator": "EQ", "value": str(tie[0])},
                {"propertyName": ID_PROPERTY, "operator": "GT", "value": str(tie[1])},
            ]
            sorts = [{"propertyName": ID_PROPERTY, "direction": "ASCENDING"}]
        else:
            operator = "GTE" if inclusive else "GT"
            filters = [{"propertyName": key, "operator": operator, "value": str(lower)}]
            sorts = [{"propertyName": key, "direction": "ASCENDING"}]
        after: str | None = None
        first: dict | None = None
        last: dict | None = None
        exhausted = False
        while True:
            body: dict[str, Any] = {
                "filterGroups": [{"filters": filters}],
                "sorts": sorts,
                "properties": props,
                "limit": page_size,
            }
            if after is not None:
                body["after"] = after
            data = api.search(object_type, body)
            results = data.get("results") or []
            if results:
                first = first or results[0]
                last = results[-1]
                yield results
            after = ((data.get("paging") or {}).get("next") or {}).get("after")
            if not after or not results:
                exhausted = True
                break
            if int(after) + page_size > search_limit:
                break
        if tie:
            if exhausted:
                lower, inclusive, tie = tie[0], False, None
            else:
                tie = (tie[0], int(last["properties"][ID_PROPERTY] or last["id"]))
            continue
        if exhausted:
            return
        last_ms = rec.ms(last["properties"][key])
        if last_ms == rec.ms(first["properties"][key]):
            # The whole query shares one timestamp: walk it by id instead.
            tie = (last_ms, 0)
        else:
            lower, inclusive = last_ms, True


class Stream:
    """One object type read through search; subclasses say what its records become."""

    name: str
    object_type: str
    record_type: str
    event_type: str
    replication_key = "hs_lastmodifieddate"
    base_properties: tuple[str, ...] = ()

    def properties(self, mapping: HubSpotMapping) -> list[str]:
        return list(self.base_properties)

    def events(self, records: Sequence[Mapping], ctx: Context) -> list[dict]:
        raise NotImplementedError


def _assoc(ctx: Context, from_type: str, to_type: str, ids: Sequence[str]) -> dict[str, list]:
    return ctx.api.associations(from_type, to_type, ids) if ids else {}


class Contacts(Stream):
    """Contacts → ``person`` events, plus their email subscription statuses → ``consent``."""

    name = object_type = "contacts"
    record_type, event_type = "contact", "person"
    replication_key = "lastmodifieddate"

    def properties(self, mapping: HubSpotMapping) -> list[str]:
        return list(dict.fromkeys([*rec.CONTACT_PROPERTIES, *mapping.contact_properties()]))

    def events(self, records: Sequence[Mapping], ctx: Context) -> list[dict]:
        return [rec.person_event(r, ctx.mapping) for r in records]

    def consents(self, records: Sequence[Mapping], ctx: Context) -> list[dict]:
        """Read the contacts' email subscription statuses (v4) as consent events."""
        by_email: dict[str, str] = {}
        for record in records:
            email = (record.get("properties") or {}).get("email")
            if email:
                by_email[str(email).strip().lower()] = str(record["id"])
        if not by_email:
            return []
        statuses: dict[str, list] = {}
        wide: dict[str, list] = {}
        query = {"channel": "EMAIL"}
        for part in chunks(list(by_email)):
            data = ctx.api.post(
                "/communication-preferences/v4/statuses/batch/read", {"inputs": part}, query
            )
            for result in data.get("results") or ():
                key = str(result.get("subscriberIdString") or "").lower()
                statuses.setdefault(key, []).extend(result.get("statuses") or ())
            data = ctx.api.post(
                "/communication-preferences/v4/statuses/batch/unsubscribe-all/read",
                {"inputs": part},
                query,
            )
            for result in data.get("results") or ():
                key = str(result.get("subscriberIdString") or "").lower()
                wide.setdefault(key, []).extend(result.get("wideStatuses") or ())
        events = []
        for email, contact_id in by_email.items():
            events += rec.consent_events(
                contact_id, statuses.get(email, ()), wide.get(email, ()), ctx.mapping
            )
        return events


class Companies(Stream):
    """Companies → ``account`` events."""

    name = object_type = "companies"
    record_type, event_type = "company", "account"
    base_properties = ("name", "domain", "hubspot_owner_id")

    def events(self, records: Sequence[Mapping], ctx: Context) -> list[dict]:
        return [rec.account_event(r, ctx.mapping) for r in records]


class Deals(Stream):
    """Closed-won deals → one ``purchase`` per line item; other deals retract theirs.

    A deal moved out of closed won (reopened, lost) must not keep counting as
    a purchase, so for deals that are not won the purchases of their line
    items are retracted.
    """

    name = object_type = "deals"
    record_type, event_type = "deal", "purchase"
    base_properties = (
        "dealname", "dealstage", "closedate", "createdate", "amount",
        "deal_currency_code", "hs_is_closed_won", "hubspot_owner_id",
    )  # fmt: skip
    line_item_properties = ("name", "hs_sku", "hs_product_id", "quantity", "price", "amount")

    def events(self, records: Sequence[Mapping], ctx: Context) -> list[dict]:
        ids = [str(r["id"]) for r in records]
        won = [str(r["id"]) for r in records if rec.is_won(r, ctx.mapping)]
        items_of = _assoc(ctx, "deals", "line_items", ids)
        contacts_of = _assoc(ctx, "deals", "contacts", won)
        companies_of = _assoc(ctx, "deals", "companies", won)
        item_ids = [i for d in won for i in items_of.get(d, ())]
        props = list(self.line_item_properties)
        if ctx.mapping.product_property:
            props.append(ctx.mapping.product_property)
        items = ctx.api.batch_read("line_items", item_ids, props) if item_ids else {}
        product_ids = {
            str(i["properties"].get("hs_product_id"))
            for i in items.values()
            if (i.get("properties") or {}).get("hs_product_id")
        }
        products: dict[str, dict] = {}
        if product_ids:
            product_props = ["name", "hs_sku"]
            if ctx.mapping.category_property:
                product_props.append(ctx.mapping.category_property)
            products = ctx.api.batch_read("products", sorted(product_ids), product_props)
        events: list[dict] = []
        for record in records:
            deal_id = str(record["id"])
            if deal_id not in won:
                events.append(rec.deleted("purchase", "deal", deal_id))
                for item_id in items_of.get(deal_id, ()):
                    events.append(rec.deleted("purchase", "line_item", item_id))
                continue
            line_items = [items[i] for i in items_of.get(deal_id, ()) if i in items]
            events += rec.purchase_events(
                record,
                line_items,
                products,
                contacts_of.get(deal_id, []),
                companies_of.get(deal_id, []),
                ctx.mapping,
            )
            if line_items:
                events.append(rec.deleted("purchase", "deal", deal_id))
        return events


class Tickets(Stream):
    """Tickets → ``case`` events, closed when their pipeline stage is a closed one."""

    name = object_type = "tickets"
    record_type, event_type = "ticket", "case"
    base_properties = (
        "subject", "hs_pipeline", "hs_pipeline_stage", "createdate", "hubspot_owner_id",
    )  # fmt: skip

    def events(self, records: Sequence[Mapping], ctx: Context) -> list[dict]:
        if ctx.closed_ticket_stages is None:
            closed = set(ctx.mapping.closed_ticket_stages)
            for pipeline in ctx.api.pipelines("tickets"):
                for stage in pipeline.get("stages") or ():
                    state = (stage.get("metadata") or {}).get("ticketState", "")
                    if str(state).upper() == "CLOSED":
                        closed.add(str(stage["id"]))
            ctx.closed_ticket_stages = frozenset(closed)
        contacts_of = _assoc(ctx, "tickets", "contacts", [str(r["id"]) for r in records])
        closed = ctx.closed_ticket_stages
        return [
            rec.case_event(r, contacts_of.get(str(r["id"]), []), closed, ctx.mapping)
            for r in records
        ]


class Engagements(Stream):
    """Outbound emails, calls and meetings → ``touch`` events."""

    event_type = "touch"

    def __init__(self, kind: str) -> None:
        self.name = self.object_type = kind
        self.record_type = rec.ENGAGEMENTS[kind][0]
        direction = rec.ENGAGEMENTS[kind][1]
        self.base_properties = ("hs_timestamp", "createdate", "hubspot_owner_id") + (
            (direction,) if direction else ()
        )

    def properties(self, mapping: HubSpotMapping) -> list[str]:
        extra = mapping.engagements[self.name].purpose_property
        return list(self.base_properties) + ([extra] if extra else [])

    def events(self, records: Sequence[Mapping], ctx: Context) -> list[dict]:
        contacts_of = _assoc(ctx, self.object_type, "contacts", [str(r["id"]) for r in records])
        events: list[dict] = []
        for record in records:
            events += rec.touch_events(
                self.name, record, contacts_of.get(str(record["id"]), []), ctx.mapping
            )
        return events


class CustomObjects(Stream):
    """A mapped custom object type → events of the type its mapping names."""

    def __init__(self, object_type: str, event: str, fields: Mapping[str, str], key: str) -> None:
        self.name = self.object_type = self.record_type = object_type
        self.event_type = event
        self.fields = fields
        self.replication_key = key

    def properties(self, mapping: HubSpotMapping) -> list[str]:
        return list(dict.fromkeys(self.fields.values()))

    def events(self, records: Sequence[Mapping], ctx: Context) -> list[dict]:
        ids = [str(r["id"]) for r in records]
        contacts_of = _assoc(ctx, self.object_type, "contacts", ids)
        companies_of = _assoc(ctx, self.object_type, "companies", ids)
        return [
            rec.custom_event(
                self.event_type,
                self.record_type,
                self.fields,
                r,
                contacts_of.get(str(r["id"]), []),
                companies_of.get(str(r["id"]), []),
            )
            for r in records
        ]


def all_streams(mapping: HubSpotMapping) -> list[Stream]:
    """List the streams a sync reads, in an order that puts people before their facts."""
    streams: list[Stream] = [Companies(), Contacts(), Deals(), Tickets()]
    streams += [Engagements(kind) for kind in rec.ENGAGEMENTS]
    streams += [
        CustomObjects(o.object_type, o.event, o.fields, o.replication_key) for o in mapping.objects
    ]
    return streams


# Archived records that have no stream of their own: line items carry purchases.
ARCHIVED_EXTRA = (("line_items", "line_item", "purchase"),)
