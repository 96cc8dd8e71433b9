"""Generate a realistic, seeded population of SPEC §6 events at any size.

An OEM and its dealers, accounts with contracts, purchases, consents, cases,
services, invoices, registered campaigns and a two-year ledger of touches.
The same seed and size always give the same events, so every run measures
the same data.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

EPOCH = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
DEALERS = ("dealer:munich", "dealer:berlin", "dealer:hamburg", "dealer:cologne")
SENDERS = ("oem", "sales", "service", *DEALERS)
MODELS = ("audi-a4", "audi-a6", "vw-golf-8", "vw-id4", "skoda-octavia", "seat-leon")
PURPOSES = ("promotion", "price_offer", "newsletter", "service_reminder", "trade_in",
            "prospecting", "invoice", "transactional")
CHANNELS = ("email", "email", "email", "sms", "call")
CAMPAIGNS = ("q4-finance", "spring-service", "ev-launch", "winter-tyres")


def email_of(i: int) -> str:
    """Return person i's email address."""
    return f"person{i}@example.com"


def phone_of(i: int) -> str:
    """Return person i's German mobile number in E.164."""
    return f"+4915{i:09d}"


def campaign_events() -> list[dict]:
    """Return the registered campaigns the attempts name."""
    return [
        {"type": "campaign", "source": {"system": "mkt", "id": "CMP-q4-finance"},
         "id": "q4-finance", "purpose": "price_offer", "offer": "0.9% APR finance",
         "eligible_when": "person.stage == 'customer'",
         "starts": "2026-10-01T00:00:00Z", "ends": "2027-01-31T00:00:00Z",
         "notify_owner": True},
        {"type": "campaign", "source": {"system": "mkt", "id": "CMP-spring-service"},
         "id": "spring-service", "purpose": "promotion", "offer": "free safety check",
         "starts": "2026-01-01T00:00:00Z", "ends": "2027-12-31T00:00:00Z"},
        {"type": "campaign", "source": {"system": "mkt", "id": "CMP-ev-launch"},
         "id": "ev-launch", "purpose": "promotion", "offer": "test drive weekend",
         "starts": "2026-06-01T00:00:00Z", "ends": "2027-06-30T00:00:00Z"},
        {"type": "campaign", "source": {"system": "mkt", "id": "CMP-winter-tyres"},
         "id": "winter-tyres", "purpose": "price_offer", "offer": "20% off winter tyres",
         "starts": "2026-09-01T00:00:00Z", "ends": "2027-02-28T00:00:00Z"},
    ]


def people_events(n: int, seed: int = 7) -> Iterator[dict]:
    """Yield the events for n people: accounts and campaigns first, then person by person."""
    rnd = random.Random(seed)
    yield from campaign_events()
    accounts = max(1, n // 20)
    for a in range(accounts):
        yield {"type": "account", "source": {"system": "crm", "id": f"A-{a}"},
               "name": f"Company {a}", "domain": f"company{a}.example",
               "owner": DEALERS[a % len(DEALERS)]}
        if a % 3 == 0:
            yield {"type": "contract", "source": {"system": "crm", "id": f"K-{a}"},
                   "account": {"system": "crm", "id": f"A-{a}"}, "status": "active",
                   "start": "2025-01-01", "end": "2028-12-31", "owner": "sales",
                   "product": "fleet-lease"}
    for i in range(n):
        yield from _person(i, accounts, rnd)


def _person(i: int, accounts: int, rnd: random.Random) -> Iterator[dict]:
    ref = {"system": "dms", "id": f"C-{i}"}
    stage = rnd.choice(("prospect", "opportunity", "customer", "customer"))
    person = {"type": "person", "source": ref, "emails": [email_of(i)],
              "phones": [phone_of(i)], "name": f"Person {i}", "stage": stage,
              "owner": DEALERS[i % len(DEALERS)], "timezone": "Europe/Berlin"}
    if i % 4 == 0:
        person["account"] = {"system": "crm", "id": f"A-{i % accounts}"}
    if i % 10 == 0:
        person["replacement_cycle_years"] = 10
    if i % 13 == 0:
        person["preferred_channel"] = "email"
    if i % 29 == 0:
        person["contact_hours"] = "09:00-18:00"
    yield person
    if stage == "customer":
        bought = EPOCH - timedelta(days=rnd.randint(1, 1500))
        yield {"type": "purchase", "source": {"system": "dms", "id": f"P-{i}"},
               "person": ref, "product": rnd.choice(MODELS), "category": "vehicle",
               "at": bought.isoformat(), "amount": rnd.randint(20, 80) * 1000,
               "currency": "EUR"}
        yield {"type": "service", "source": {"system": "dms", "id": f"S-{i}"},
               "person": ref, "asset": f"VIN{i:08d}",
               "at": (EPOCH - timedelta(days=rnd.randint(30, 300))).isoformat(),
               "mileage": rnd.randint(5000, 90000),
               "next_due": (EPOCH + timedelta(days=rnd.randint(-30, 300))).date().isoformat()}
        if i % 7 == 0:
            sent = EPOCH - timedelta(days=rnd.randint(10, 200))
            invoice = {"type": "invoice", "source": {"system": "billing", "id": f"I-{i}"},
                       "person": ref, "number": f"INV-{i}", "sent_at": sent.isoformat(),
                       "due": (sent + timedelta(days=30)).date().isoformat(),
                       "amount": rnd.randint(100, 3000)}
            if rnd.random() < 0.7:
                invoice["paid_at"] = (sent + timedelta(days=rnd.randint(1, 40))).isoformat()
            yield invoice
    if i % 17 == 0:
        yield {"type": "consent", "source": {"system": "crm", "id": f"O-{i}"},
               "person": ref, "channel": "email", "purpose": "marketing",
               "status": "opt_out", "at": (EPOCH - timedelta(days=90)).isoformat()}
    if i % 41 == 0:
        yield {"type": "case", "source": {"system": "ticketing", "id": f"T-{i}"},
               "person": ref, "status": "open", "owner": "service",
               "subject": "Paint damage complaint",
               "at": (EPOCH - timedelta(days=5)).isoformat()}
    for t in range(rnd.randint(0, 6)):
        yield {"type": "touch", "source": {"system": "mkt", "id": f"M-{i}-{t}"},
               "person": ref, "channel": rnd.choice(CHANNELS),
               "purpose": rnd.choice(PURPOSES[:5]), "sender": rnd.choice(("oem",) + DEALERS),
               "at": (EPOCH - timedelta(days=rnd.randint(0, 730))).isoformat(),
               "template": f"tmpl-{rnd.randint(1, 40)}"}


def attempts(n: int, people: int, seed: int = 11) -> Iterator[dict]:
    """Yield n check request bodies spread over the population (a few to strangers)."""
    rnd = random.Random(seed)
    for _ in range(n):
        # One in fifty addresses matches nobody, as on a bought list.
        i = rnd.randrange(people) if rnd.random() >= 0.02 else people + rnd.randrange(10**6)
        channel = rnd.choice(CHANNELS)
        purpose = rnd.choice(PURPOSES)
        body = {
            "channel": channel,
            "to": email_of(i) if channel == "email" else phone_of(i),
            "purpose": purpose,
            "sender": rnd.choice(SENDERS),
            "template": f"tmpl-{rnd.randint(1, 40)}",
            "product": rnd.choice(MODELS),
            "at": (EPOCH + timedelta(hours=rnd.randint(0, 48))).isoformat(),
        }
        if purpose in ("promotion", "price_offer") and rnd.random() < 0.8:
            body["campaign"] = rnd.choice(CAMPAIGNS)
        yield body
