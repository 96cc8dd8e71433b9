"""What a customer's choice becomes: consent and person events, through the events path.

Everything is recorded as events of source system ``preferences`` by the
normal writer (``guard.ingest.writer``), so the next check obeys it and the
CRM write-back carries it out like any other change.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from guard.ingest import writer
from guard.preferences.tokens import SUBJECT_PERSON, Grant, digest
from guard.store.tables import unsubscribes
from policies.model import Consent

SYSTEM = "preferences"
# The channels and topics the page offers; bills and required messages are always on.
CHANNELS = ("email", "sms", "call", "mail")
TOPICS = ("marketing", "sales", "service")
_EPOCH = datetime.min.replace(tzinfo=UTC)


class Refused(Exception):
    """The events path refused the choice (e.g. the person was erased): nothing was stored."""


def unsubscribe(guard, grant: Grant, token: str, now: datetime) -> bool:
    """Record the one-click opt-out a message's token names; False when it was recorded before."""
    token_hash = digest(token)
    day = now.astimezone(UTC).date().isoformat()
    event = {
        "type": "consent",
        # Reps read the evidence as a flag: it says who sent what, and when it was stopped.
        "source": {"system": SYSTEM, "type": "unsubscribe",
                   "id": f"Unsubscribed from {grant.sender} {grant.category} {grant.channel} "
                         f"on {day} ({token_hash[:12]})"},
        "channel": grant.channel, "purpose": grant.category, "status": "opt_out",
        "at": now.isoformat(),
        **({"person": {"person": grant.value}} if grant.subject == SUBJECT_PERSON
           else {"email": grant.value}),
    }
    try:
        with guard.engine.begin() as conn:
            seen = conn.execute(sa.select(unsubscribes.c.token_hash)
                                .where(unsubscribes.c.token_hash == token_hash)).first()
            if seen is not None:
                return False
            ingest(conn, guard, [event], now)
            conn.execute(sa.insert(unsubscribes).values(token_hash=token_hash,
                                                        recorded_at=now))
    except IntegrityError:
        return False  # the same link was used at the same moment elsewhere: recorded once
    return True


def ingest(conn, guard, events: list[dict], now: datetime) -> None:
    """Store events in ``conn``'s transaction; raise Refused if any is refused (nothing stays)."""
    result = writer.ingest(conn, events, guard.policy, now, guard.erasure_salt())
    if result["rejected"]:
        raise Refused("; ".join(r["detail"] for r in result["rejected"]))


@dataclass(frozen=True)
class Choices:
    """What the page shows, and what a saved form asks for."""

    cells: Mapping[tuple[str, str], bool]  # (channel, topic) -> welcome
    preferred_channel: str | None = None
    contact_hours: str | None = None
    pause_until: date | None = None

    @property
    def channels(self) -> dict[str, bool]:
        return {c: any(self.cells[(c, t)] for t in TOPICS) for c in CHANNELS}

    @property
    def topics(self) -> dict[str, bool]:
        return {t: any(self.cells[(c, t)] for c in CHANNELS) for t in TOPICS}

    @property
    def stopped(self) -> bool:
        return not any(self.cells.values())


def latest(consents: Iterable[Consent], channel: str, topic: str) -> Consent | None:
    """Return the consent that decides a channel and topic, as the consent rule picks it."""
    relevant = [c for c in consents if c.channel in ("*", channel)
                and c.purpose in ("*", topic) and c.status in ("opt_in", "opt_out")]
    # The latest wins; on a tie the restrictive one.
    return max(relevant, key=lambda c: (c.at or _EPOCH, c.status != "opt_in"), default=None)


def welcome(consents: Iterable[Consent], channel: str, topic: str) -> bool:
    """Say whether the latest consent for a channel and topic leaves it open."""
    found = latest(consents, channel, topic)
    return found is None or found.status != "opt_out"


def current(profile) -> Choices:
    """Read a person's current choices from their merged profile."""
    cells = {(c, t): welcome(profile.consents, c, t) for c in CHANNELS for t in TOPICS}
    return Choices(cells, profile.preferred_channel, profile.contact_hours,
                   profile.do_not_market_until)


def save(guard, person_id: str, profile: Mapping, before: Choices, after: Choices,
         stop_changed: bool, now: datetime) -> None:
    """Record what changed between ``before`` and ``after`` as consent and person events."""
    at = now.isoformat()
    source = {"system": SYSTEM, "type": "Preferences"}
    events: list[dict] = []
    who = {"person": person_id}
    if stop_changed:
        # "Everything except what the law requires": every channel, push included.
        status = "opt_out" if after.stopped else "opt_in"
        for topic in TOPICS:
            events.append({"type": "consent", "source": {**source, "id": f"{person_id}:*:{topic}"},
                           "person": who, "channel": "*", "purpose": topic,
                           "status": status, "at": at})
    for (channel, topic), wanted in after.cells.items():
        if before.cells[(channel, topic)] == wanted and not stop_changed:
            continue
        events.append({"type": "consent",
                       "source": {**source, "id": f"{person_id}:{channel}:{topic}"},
                       "person": who, "channel": channel, "purpose": topic,
                       "status": "opt_in" if wanted else "opt_out", "at": at})
    fields = {}
    if after.preferred_channel:
        fields["preferred_channel"] = after.preferred_channel
    if after.contact_hours:
        fields["contact_hours"] = after.contact_hours
    if after.pause_until:
        fields["do_not_market_until"] = after.pause_until.isoformat()
    elif before.pause_until and before.pause_until > now.date():
        # Ending a pause early: a hold that ends today holds nothing, and outranks the old one.
        fields["do_not_market_until"] = now.date().isoformat()
    old = (before.preferred_channel, before.contact_hours, before.pause_until)
    new = (after.preferred_channel, after.contact_hours, after.pause_until)
    if old != new:
        # The person's own identities tie the record to them; they are theirs already.
        events.append({"type": "person", "source": {**source, "id": person_id},
                       "emails": list(profile.get("emails") or ()),
                       "phones": list(profile.get("phones") or ()),
                       "crm_ids": dict(profile.get("crm_ids") or {}), **fields})
    if not events:
        return
    with guard.engine.begin() as conn:
        ingest(conn, guard, events, now)
