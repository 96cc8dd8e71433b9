"""The guard status and flag lines a sales rep sees on a person's CRM record.

Status is ``Do not contact`` (erased, or opted out of everything), ``Caution``
(any active flag) or ``Clear``. Each flag is one line naming the fact and
its date, e.g. "In purchase cool-down until 2027-04-07".
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from guard.store.tables import people, settings
from policies.model import Profile

# Settings rows of the sweep after a policy change: the version everyone's flags were
# made under, and while a sweep runs, its version and the last person it recomputed.
_FLAGS_POLICY, _FLAGS_CURSOR = "flags_policy", "flags_policy_cursor"

CLEAR, CAUTION, DO_NOT_CONTACT = "Clear", "Caution", "Do not contact"
ERASED = "Erased on request (right to erasure): no contact of any kind."
DEFAULT_COOLDOWN = timedelta(days=30)
DAYS_PER_YEAR = 365


def flags_for(profile: Profile, policy, now: datetime) -> tuple[str, list[str]]:
    """Return the person's status and one line per active flag."""
    if profile.erased:
        return DO_NOT_CONTACT, [ERASED]
    today = now.date()
    lines: list[str] = []
    blocked_everything = False
    for consent in _current_opt_outs(profile):
        if consent.channel == "*" and consent.purpose == "*":
            blocked_everything = True
        since = f" since {consent.at.date().isoformat()}" if consent.at else ""
        lines.append(f"Opted out of {_consent_scope(consent.channel, consent.purpose)}{since}")
    cooldown = _cooldown(policy)
    latest = _latest_own_purchase(profile)
    if latest is not None and latest.at + cooldown > now:
        until = (latest.at + cooldown).date().isoformat()
        lines.append(f"In purchase cool-down until {until}")
    for contract in profile.contracts:
        if contract.status != "active" or (contract.end and contract.end < today):
            continue
        holder = profile.account.name if profile.account and profile.account.name else None
        text = "Existing customer: " + (f"{holder} contract" if holder else "active contract")
        if contract.end:
            text += f" until {contract.end.isoformat()}"
        if contract.owner:
            text += f" (owner {contract.owner})"
        lines.append(text)
    for case in profile.cases:
        if case.status == "open":
            text = f"Open case: {case.subject or 'no subject'}"
            lines.append(text + (f" (owner {case.owner})" if case.owner else ""))
    years = profile.replacement_cycle_years
    if years and latest is not None:
        until = latest.at.date() + timedelta(days=round(years * DAYS_PER_YEAR))
        if until > today:
            lines.append(f"Keeps cars ~{years:g} years: no trade-in offers before "
                         f"{until.isoformat()}")
    if profile.do_not_market_until and profile.do_not_market_until > today:
        lines.append(f"Do not market until {profile.do_not_market_until.isoformat()}")
    if blocked_everything:
        return DO_NOT_CONTACT, lines
    return (CAUTION if lines else CLEAR), lines


def lapses_at(profile: Profile, policy, now: datetime) -> datetime | None:
    """Return when the next of the person's flag lines runs out by the calendar, or None.

    A cool-down, a contract, a replacement cycle and a do-not-market date end
    without any new event; the worker refreshes the flags then, so a rep never
    reads "In purchase cool-down" about a purchase from last year.
    """
    if profile.erased:
        return None
    today = now.date()
    moments: list[datetime] = []
    latest = _latest_own_purchase(profile)
    if latest is not None:
        moments.append(latest.at + _cooldown(policy))
        if profile.replacement_cycle_years:
            until = latest.at.date() + timedelta(
                days=round(profile.replacement_cycle_years * DAYS_PER_YEAR))
            moments.append(_midnight(until))
    # A contract shows through its last day; the date-only lines while still ahead.
    moments.extend(_midnight(c.end + timedelta(days=1)) for c in profile.contracts
                   if c.status == "active" and c.end and c.end >= today)
    if profile.do_not_market_until:
        moments.append(_midnight(profile.do_not_market_until))
    ahead = [m for m in moments if m > now]
    return min(ahead, default=None)


def refresh_lapsed(engine: sa.Engine, policy, now: datetime, limit: int = 1000) -> int:
    """Recompute the flags of people whose flag lines ran out; return how many changed."""
    with engine.connect() as conn:
        due = conn.execute(
            sa.select(people.c.id, people.c.profile, people.c.flags_hash, people.c.updated_at)
            .where(people.c.flags_lapse_at <= now, people.c.erased.is_(False))
            .order_by(people.c.flags_lapse_at).limit(limit)).all()
    return _reflag(engine, due, policy, now)


def refresh_for_policy(engine: sa.Engine, policy, now: datetime, limit: int = 1000) -> int:
    """Recompute flags made under another policy, ``limit`` people a call; return how many changed.

    Flags say what the policy will do (a cool-down's length is the policy's), and a
    person's flags are only rebuilt when their data changes or a line runs out: after a
    policy change, everyone else's would keep the old policy's lines. The sweep goes
    through people in id order and keeps its place in the store, so it resumes where a
    stopped worker left it; the policy's version is recorded once everyone is done.
    """
    with engine.connect() as conn:
        state = dict(conn.execute(sa.select(settings.c.name, settings.c.value).where(
            settings.c.name.in_((_FLAGS_POLICY, _FLAGS_CURSOR)))).all())
        if state.get(_FLAGS_POLICY) == policy.version:
            return 0
        version, _, after = state.get(_FLAGS_CURSOR, "").partition(" ")
        if version != policy.version:
            after = ""  # a sweep for another version (changed again meanwhile) starts over
        rows = conn.execute(
            sa.select(people.c.id, people.c.profile, people.c.flags_hash, people.c.updated_at)
            .where(people.c.id > after, people.c.erased.is_(False))
            .order_by(people.c.id).limit(limit)).all()
    changed = _reflag(engine, rows, policy, now)
    finished = len(rows) < limit
    try:
        with engine.begin() as conn:
            conn.execute(sa.delete(settings).where(
                settings.c.name.in_((_FLAGS_POLICY, _FLAGS_CURSOR))))
            if finished:
                conn.execute(sa.insert(settings).values(name=_FLAGS_POLICY, value=policy.version))
            else:
                conn.execute(sa.insert(settings).values(
                    name=_FLAGS_CURSOR, value=f"{policy.version} {rows[-1].id}"))
    except IntegrityError:
        pass  # another worker moved the sweep on at the same time; the next call goes on
    return changed


def _reflag(engine: sa.Engine, rows, policy, now: datetime) -> int:
    """Recompute the flags of ``rows`` (id, profile, flags_hash, updated_at); count changes."""
    changed = 0
    for person_id, stored, old_hash, updated_at in rows:
        profile = Profile.from_dict(stored)
        status, lines = flags_for(profile, policy, now)
        flags = {"status": status, "flags": lines}
        flags_hash = hash_flags(flags)
        values: dict = {"flags_lapse_at": lapses_at(profile, policy, now)}
        if flags_hash != old_hash:
            values.update(flags={**flags, "updated": now.isoformat()}, flags_hash=flags_hash,
                          updated_at=now)
        with engine.begin() as conn:
            # Only if no ingest rebuilt the person meanwhile (it computed fresher flags).
            done = conn.execute(sa.update(people).where(
                people.c.id == person_id, people.c.updated_at == updated_at).values(**values))
        changed += bool(done.rowcount and flags_hash != old_hash)
    return changed


def hash_flags(flags: Mapping) -> str:
    """Hash a person's status and flag lines, so write-back can tell what changed."""
    text = json.dumps({"status": flags["status"], "flags": list(flags["flags"])},
                      sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _latest_own_purchase(profile: Profile):
    # The cool-down rule pauses offers after the person's own purchase, not a colleague's
    # fleet order; the flag says what the rule will do.
    return max((p for p in profile.purchases if p.at and not p.via_account),
               key=lambda p: p.at, default=None)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0, 0), tzinfo=UTC)


def _current_opt_outs(profile: Profile) -> list:
    """The latest consent per channel and purpose, where it is an opt-out."""
    latest: dict[tuple[str, str], object] = {}
    for consent in sorted(profile.consents, key=lambda c: c.at.isoformat() if c.at else ""):
        latest[(consent.channel, consent.purpose)] = consent
    return [c for c in latest.values() if c.status == "opt_out"]


def _consent_scope(channel: str, purpose: str) -> str:
    channel_text = "all channels" if channel == "*" else channel
    if purpose == "*":
        return "all contact" if channel == "*" else channel_text
    return f"{purpose.replace('_', ' ')} by {channel_text}" if channel == "*" \
        else f"{channel_text} {purpose.replace('_', ' ')}"


def _cooldown(policy) -> timedelta:
    days = [getattr(rule, "days", None) for rule in getattr(policy, "rules", ())
            if rule.kind == "purchase_cooldown"]
    days = [d if isinstance(d, timedelta) else timedelta(days=d) for d in days if d]
    return max(days, default=DEFAULT_COOLDOWN)
