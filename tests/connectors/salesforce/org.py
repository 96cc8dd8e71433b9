"""A small dealer org in the fake, and a store that keeps events the way the guard does."""

from __future__ import annotations

from connectors.base import Batch, MemoryBookmarks

DEALER_USER = "005Fk000000MUNICAAA"
REP_USER = "005Fk000000REPXXAAA"


class Store:
    """Events kept by source, as the guard's store does: a source seen again updates the record."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, str, str], dict] = {}
        self.stored = 0

    def store(self, batch: Batch) -> None:
        """Apply a batch: deleted events retract, others replace."""
        for event in batch.events:
            key = (event["type"], event["source"]["type"], event["source"]["id"])
            if event.get("deleted"):
                self.events.pop(key, None)
            else:
                self.events[key] = event
            self.stored += 1

    def of(self, event_type: str) -> list[dict]:
        """Return the stored events of one type."""
        return [event for key, event in self.events.items() if key[0] == event_type]

    def get(self, event_type: str, record_type: str, record_id: str) -> dict | None:
        """Return the stored event from one source."""
        return self.events.get((event_type, record_type, record_id))


def run(connector, bookmarks: MemoryBookmarks | None = None,
        store: Store | None = None) -> tuple[Store, MemoryBookmarks]:
    """Sync everything: store each batch, then save its bookmark, as the guard does."""
    bookmarks = bookmarks if bookmarks is not None else MemoryBookmarks()
    store = store if store is not None else Store()
    for batch in connector.sync(bookmarks):
        store.store(batch)
        bookmarks.save(batch.stream, batch.bookmark)
    return store, bookmarks


def build_dealer_org(fake) -> dict[str, str]:
    """Create the records behind the stories of SPEC §1; return their ids by name."""
    ids: dict[str, str] = {}
    ids["acme"] = fake.insert("Account", Name="Acme Logistics", Website="https://www.acme.example",
                              Type="Customer - Direct", OwnerId=REP_USER)
    ids["anna"] = fake.insert(
        "Contact", Name="Anna Berg", Email="anna@example.com", Phone="+4989123456",
        AccountId=ids["acme"], OwnerId=DEALER_USER, HasOptedOutOfEmail=False, DoNotCall=True,
        Guard_Replacement_Cycle_Years__c=10, Guard_Preferred_Channel__c="Phone",
        Guard_Contact_Hours__c="09:00-18:00", Guard_Do_Not_Market_Until__c="2027-06-30")
    ids["ben"] = fake.insert("Contact", Name="Ben Ode", Email="ben@acme.example",
                             AccountId=ids["acme"], OwnerId=REP_USER,
                             HasOptedOutOfEmail=True, DoNotCall=False)
    ids["lead"] = fake.insert("Lead", Name="Lea Neu", Email="lea@newco.example", Company="NewCo",
                              OwnerId=REP_USER, IsConverted=False, HasOptedOutOfEmail=False,
                              DoNotCall=False)
    ids["a4"] = fake.insert("Product2", Name="Audi A4 Avant", ProductCode="audi-a4", Family="car")
    ids["won"] = fake.insert("Opportunity", Name="Anna's A4", IsWon=True, IsClosed=True,
                             CloseDate="2026-11-21", AccountId=ids["acme"], Amount=42000)
    ids["won_item"] = fake.insert("OpportunityLineItem", OpportunityId=ids["won"],
                                  Product2Id=ids["a4"], TotalPrice=42000)
    fake.insert("OpportunityContactRole", OpportunityId=ids["won"], ContactId=ids["anna"],
                IsPrimary=True)
    ids["open"] = fake.insert("Opportunity", Name="Fleet renewal", IsWon=False, IsClosed=False,
                              CloseDate="2027-01-31", AccountId=ids["acme"], Amount=90000)
    ids["contract"] = fake.insert("Contract", AccountId=ids["acme"], StatusCode="Activated",
                                  Status="Activated", StartDate="2024-04-01",
                                  EndDate="2027-03-31", OwnerId=REP_USER)
    ids["case"] = fake.insert("Case", ContactId=ids["ben"], IsClosed=False, OwnerId=REP_USER,
                              Subject="Invoice never arrived")
    ids["call"] = fake.insert("Task", WhoId=ids["anna"], Subject="Call about service",
                              TaskSubtype="Call", IsClosed=True,
                              CompletedDateTime="2026-11-20T15:00:00.000+0000")
    ids["guard_task"] = fake.insert("Task", WhoId=ids["anna"], TaskSubtype="Call", IsClosed=True,
                                    Subject="Contact Guard: call Anna about the offer")
    ids["campaign"] = fake.insert("Campaign", Name="q4-upgrade", Type="Email", IsActive=True)
    ids["member"] = fake.insert("CampaignMember", CampaignId=ids["campaign"],
                                ContactId=ids["ben"], Status="Sent")
    fake.insert("CampaignMember", CampaignId=ids["campaign"], ContactId=ids["anna"],
                Status="Planned")
    return ids
