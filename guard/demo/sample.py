"""A realistic sample: an OEM, its dealers, billing and ticketing, and a few hundred people.

Everything is generated from a seeded random, so every run gives the same
people, histories and decisions. The people of ``STORIES`` re-enact the
stories of SPEC §1 among ordinary customers; one of them is handed from head
office to sales by a CRM update during the week (``Sample.updates``). The
rest are ordinary customers and prospects whose histories make the week's
caps and cool-downs bite now and then, as they would in real data.

Source systems: ``salesforce`` (the OEM's CRM: people, accounts, contracts,
cases, campaigns), ``dms`` (the dealers' management system: customers,
vehicle sales, workshop visits), ``billing`` (invoices) and ``tickets``
(event ticket sales).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

# The demo week: Monday 23 to Friday 27 November 2026 (UTC; the people live in Berlin).
WEEK_START = datetime(2026, 11, 23, tzinfo=UTC)

DEALERS = ("dealer:munich", "dealer:hamburg", "dealer:berlin", "dealer:cologne")
MODELS = ("nw-city", "nw-kombi", "nw-sport", "nw-ev5", "nw-van")
PRICES = {"nw-city": 21900, "nw-kombi": 38900, "nw-sport": 52900, "nw-ev5": 47900,
          "nw-van": 44900}
EVENT = "ev5-launch-night"

_FIRST = ("Anna", "Ben", "Clara", "David", "Emma", "Felix", "Greta", "Hannah", "Jan", "Julia",
          "Karl", "Lena", "Lukas", "Marie", "Nico", "Olga", "Paula", "Rafael", "Sara", "Tim",
          "Ute", "Vera", "Willi", "Yusuf", "Zoe", "Ali", "Birgit", "Deniz", "Elif", "Frank")
_LAST = ("Bauer", "Fischer", "Wolf", "Neumann", "Schwarz", "Zimmermann", "Braun", "Krüger",
         "Hofmann", "Hartmann", "Lange", "Schmitt", "Werner", "Krause", "Meier", "Lehmann",
         "Schmid", "Schulze", "Maier", "Köhler", "Herrmann", "König", "Walter", "Mayer", "Huber",
         "Kaiser", "Fuchs", "Peters", "Lang", "Scholz")


def _iso(value: datetime | date) -> str:
    return value.isoformat()


@dataclass
class Person:
    """One sample person and the references the events use for them."""

    key: str
    name: str
    email: str
    phone: str
    stage: str
    owner: str
    dms_id: str | None = None
    sf_id: str | None = None
    account: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def ref(self) -> dict:
        """How other systems' events point at this person: by the CRM record."""
        return {"system": "salesforce", "id": self.sf_id} if self.sf_id else {"email": self.email}


@dataclass(frozen=True)
class Update:
    """A record that changes during the week, and what the change means, in words."""

    at: datetime
    person: str
    event: dict
    note: str


@dataclass
class Sample:
    """The generated people (by key), the events that describe them, and the week's updates."""

    people: dict[str, Person] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)

    def customers(self) -> list[Person]:
        return [p for p in self.people.values() if p.stage == "customer"]

    def prospects(self) -> list[Person]:
        return [p for p in self.people.values() if p.stage == "prospect"]


class _Builder:
    def __init__(self, seed: int):
        self.random = random.Random(seed)
        self.sample = Sample()
        self.serial = 1000

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial}"

    def add(self, event: dict) -> None:
        self.sample.events.append(event)

    def person(self, key: str, name: str, *, stage: str, owner: str, account: str | None = None,
               in_dms: bool = True, tag: str = "", **extra) -> Person:
        first, last = name.split(" ", 1)
        slug = f"{first}.{last}{tag}".lower().replace("ü", "ue").replace("ö", "oe").replace(" ", "")
        domain = extra.pop("domain", "example.com")
        phone = f"+49151{self.random.randrange(10_000_000, 99_999_999)}"
        person = Person(key, name, f"{slug}@{domain}", phone, stage, owner,
                        sf_id=f"003NW{self.serial:07d}", account=account, extra=extra)
        self.serial += 1
        self.add({
            "type": "person",
            "source": {"system": "salesforce", "type": "Contact", "id": person.sf_id},
            "name": name, "emails": [person.email], "phones": [phone], "stage": stage,
            "owner": owner, "timezone": "Europe/Berlin",
            "crm_ids": {"salesforce": person.sf_id},
            **({"account": {"system": "salesforce", "id": account}} if account else {}),
            **extra,
        })
        if in_dms and stage == "customer":
            # The dealer's system knows the same customer under its own number; the shared
            # email makes them one person in the guard.
            person.dms_id = self.next_id("C-")
            self.add({"type": "person",
                      "source": {"system": "dms", "type": "Customer", "id": person.dms_id},
                      "name": name, "emails": [person.email.upper()], "owner": owner})
        self.sample.people[key] = person
        return person

    def purchase(self, person: Person, product: str, at: datetime, *,
                 category: str = "vehicle") -> None:
        self.add({"type": "purchase", "source": {"system": "dms", "type": "SalesOrder",
                                                 "id": self.next_id("SO-")},
                  "person": person.ref, "product": product, "category": category,
                  "at": _iso(at), "amount": PRICES.get(product, 89), "currency": "EUR"})

    def service(self, person: Person, at: datetime, mileage: int, next_due: date,
                next_due_mileage: int) -> None:
        self.add({"type": "service", "source": {"system": "dms", "type": "WorkOrder",
                                                "id": self.next_id("WO-")},
                  "person": person.ref, "asset": f"VIN-{person.key.upper()}",
                  "at": _iso(at), "mileage": mileage, "next_due": _iso(next_due),
                  "next_due_mileage": next_due_mileage})

    def touch(self, person: Person, at: datetime, *, channel: str, purpose: str, sender: str,
              campaign: str | None = None, template: str | None = None) -> None:
        self.add({"type": "touch", "source": {"system": "salesforce", "type": "Task",
                                              "id": self.next_id("00T")},
                  "person": person.ref, "channel": channel, "purpose": purpose,
                  "sender": sender, "at": _iso(at),
                  **({"campaign": campaign} if campaign else {}),
                  **({"template": template} if template else {})})


def _before(days: float, hour: int = 10) -> datetime:
    return (WEEK_START - timedelta(days=days)).replace(hour=hour)


def _organisation(b: _Builder) -> None:
    """Accounts, the fleet contract and the registered campaigns."""
    b.add({"type": "account", "source": {"system": "salesforce", "type": "Account",
                                      "id": "001NW-NORTHWIND"},
           "name": "Northwind Logistics", "domain": "northwind.example", "owner": "sales"})
    b.add({"type": "contract", "source": {"system": "salesforce", "type": "Contract",
                                       "id": "800NW-FLEET-7"},
           "account": {"system": "salesforce", "id": "001NW-NORTHWIND"}, "status": "active",
           "start": "2025-06-01", "end": "2028-05-31", "owner": "sales",
           "product": "fleet-lease"})
    campaigns = (
        ("black-week", "price_offer", "8% off every nw-kombi and nw-sport in stock"),
        ("finance-q4", "price_offer", "2.9% APR finance on a new car, any dealer"),
        ("ev5-launch", "event_offer", "Two tickets to the nw-ev5 launch night"),
        ("winter-check", "promotion", "Free winter check with tyre change"),
        ("trade-up", "trade_in", "A 3,000 EUR trade-in bonus"),
    )
    for cid, purpose, offer in campaigns:
        b.add({"type": "campaign", "source": {"system": "salesforce", "type": "Campaign",
                                            "id": f"701NW-{cid}"},
               "id": cid, "purpose": purpose, "offer": offer,
               "starts": "2026-11-01T00:00:00Z", "ends": "2026-12-31T23:59:59Z"})


def _stories(b: _Builder) -> None:
    """The people of SPEC §1's stories, each with the history that makes the story."""
    # 1. A head-office finance letter that the couple's dealer knows nothing about.
    becker = b.person("becker", "Jonas Becker", stage="customer", owner="dealer:munich")
    b.purchase(becker, "nw-kombi", _before(3 * 365))
    # 2. Bought a car two days before head office emails a sale on the very same car.
    keller = b.person("keller", "Max Keller", stage="customer", owner="dealer:hamburg")
    b.purchase(keller, "nw-kombi", _before(2, hour=15))
    # 3. A collections letter for an invoice that was never sent.
    wagner = b.person("wagner", "Sofia Wagner", stage="customer", owner="dealer:berlin")
    b.purchase(wagner, "nw-city", _before(400))
    b.add({"type": "invoice",
           "source": {"system": "billing", "type": "Invoice", "id": "INV-2026-0815"},
           "person": wagner.ref, "number": "INV-2026-0815", "due": "2026-10-31",
           "amount": 640.0})
    # 4. The same template from several dealerships; calls at night; the wrong channel.
    schmidt = b.person("schmidt", "Paul Schmidt", stage="customer", owner="dealer:munich",
                       preferred_channel="email", contact_hours="09:00-18:00")
    b.purchase(schmidt, "nw-sport", _before(900))
    # … and a call at half past nine in the evening.
    krause = b.person("krause", "Lena Krause", stage="customer", owner="dealer:berlin")
    b.purchase(krause, "nw-city", _before(500))
    # 5. Keeps cars ten years; the workshop wants him every 2,000 miles.
    mueller = b.person("mueller", "Thomas Müller", stage="customer", owner="dealer:cologne",
                       replacement_cycle_years=10)
    b.purchase(mueller, "nw-van", datetime(2024, 3, 8, 11, tzinfo=UTC))
    b.service(mueller, _before(20), 24_100, date(2027, 11, 2), 44_000)
    # 6. An employee of a company that holds a multi-year fleet contract.
    b.person("richter", "Eva Richter", stage="prospect", owner="oem",
             account="001NW-NORTHWIND", domain="northwind.example", in_dms=False)
    # 7. Already holds tickets for the event the invitation is about.
    hoffmann = b.person("hoffmann", "Mia Hoffmann", stage="customer", owner="dealer:berlin")
    b.purchase(hoffmann, "nw-ev5", _before(200))
    b.add({"type": "purchase", "source": {"system": "tickets", "type": "Ticket", "id": "TKT-55120"},
           "person": {"email": hoffmann.email}, "product": EVENT, "category": "event",
           "at": _iso(_before(9)), "amount": 49.0, "currency": "EUR"})
    # Consent and complaints, which every story also needs respected.
    vogel = b.person("vogel", "Ida Vogel", stage="customer", owner="dealer:hamburg")
    b.purchase(vogel, "nw-city", _before(700))
    b.add({"type": "consent",
           "source": {"system": "salesforce", "type": "Consent", "id": "CONS-vogel"},
           "person": vogel.ref, "channel": "email", "purpose": "marketing",
           "status": "opt_out", "at": _iso(_before(60))})
    roth = b.person("roth", "Georg Roth", stage="customer", owner="dealer:munich")
    b.purchase(roth, "nw-ev5", _before(45))
    b.add({"type": "case", "source": {"system": "salesforce", "type": "Case", "id": "500NW-7781"},
           "person": roth.ref, "status": "open", "owner": "service",
           "subject": "Charging port fault on the new nw-ev5", "at": _iso(_before(6))})
    # 8. Who owns the relationship: head office's lead is handed to sales on Tuesday, when
    # he asks for a test drive; the hand-over is his CRM record changing owner.
    brandt = b.person("brandt", "Lukas Brandt", stage="prospect", owner="oem", in_dms=False)
    contact = next(e for e in b.sample.events if e["source"].get("id") == brandt.sf_id)
    b.sample.updates.append(Update(
        WEEK_START + timedelta(days=1, hours=14), "brandt",
        {**contact, "stage": "opportunity", "owner": "sales"},
        f"Sales opens a deal: salesforce Contact {brandt.sf_id} now says stage opportunity, "
        f"owner sales (was prospect, oem)."))


def _ordinary(b: _Builder, count: int) -> None:
    """Ordinary customers and prospects with plausible, varied histories."""
    r = b.random
    for n in range(count):
        name = f"{r.choice(_FIRST)} {r.choice(_LAST)}"
        stage = r.choices(("customer", "prospect", "opportunity"), weights=(6, 3, 1))[0]
        owner = r.choice(DEALERS) if stage == "customer" else (
            "oem" if stage == "prospect" else "sales")
        extra = {}
        if r.random() < 0.15:
            extra["preferred_channel"] = r.choice(("email", "sms", "mail"))
        if r.random() < 0.1:
            extra["replacement_cycle_years"] = r.choice((6, 8, 10))
        person = b.person(f"p{n:03d}", name, stage=stage, owner=owner, tag=str(n), **extra)
        if stage == "customer":
            bought = _before(r.randrange(20, 6 * 365))
            b.purchase(person, r.choice(MODELS), bought)
            if r.random() < 0.7:
                due = (WEEK_START + timedelta(days=r.randrange(-20, 300))).date()
                b.service(person, _before(r.randrange(30, 360)), r.randrange(5_000, 90_000),
                          due, r.randrange(20_000, 120_000))
            if r.random() < 0.2:
                b.add({"type": "invoice", "source": {"system": "billing", "type": "Invoice",
                                                     "id": b.next_id("INV-")},
                       "person": person.ref, "number": f"INV-{b.serial}",
                       "sent_at": _iso(_before(r.randrange(10, 60))),
                       "due": _iso(_before(r.randrange(-10, 5)).date()),
                       "amount": float(r.randrange(150, 2500))})
            if r.random() < 0.05:
                b.add({"type": "purchase", "source": {"system": "tickets", "type": "Ticket",
                                                      "id": b.next_id("TKT-")},
                       "person": {"email": person.email}, "product": EVENT,
                       "category": "event", "at": _iso(_before(r.randrange(1, 20))),
                       "amount": 49.0, "currency": "EUR"})
        if r.random() < 0.06:
            b.add({"type": "consent", "source": {"system": "salesforce", "type": "Consent",
                                                 "id": b.next_id("CONS-")},
                   "person": person.ref, "channel": r.choice(("email", "*")),
                   "purpose": "marketing", "status": "opt_out",
                   "at": _iso(_before(r.randrange(5, 300)))})
        # Contacts other systems made over the last weeks count toward this week's caps.
        for _ in range(r.choice((0, 0, 1, 2, 3))):
            b.touch(person, _before(r.randrange(1, 25), hour=r.randrange(8, 18)),
                    channel="email", purpose=r.choice(("newsletter", "promotion")),
                    sender=r.choice(("oem", owner if owner.startswith("dealer:") else "oem")))


def generate(seed: int = 7, people: int = 300) -> Sample:
    """Generate the sample: the organisation, the story people and ordinary customers."""
    b = _Builder(seed)
    _organisation(b)
    _stories(b)
    _ordinary(b, people - len(b.sample.people))
    return b.sample
