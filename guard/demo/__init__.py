"""``guard demo``: load the sample into a temporary store, run a marketing week, show the decisions.

The week's sends are what the OEM, the dealers, sales, service and billing
would fire in one week of November, each checked through ``Guard.check`` at
its own time; records that change during the week (a lead handed to sales)
are ingested when they change. The stories of SPEC §1 are sends within that
week; they are printed first with the guard's reasons, then the counts for
the whole week.
"""

from __future__ import annotations

import tempfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from textwrap import wrap

from guard.demo.sample import EVENT, WEEK_START, Person, Sample, Update, generate


@dataclass(frozen=True)
class Send:
    """One batch of the week: who sends what, how, to whom, when."""

    label: str
    sender: str | Callable[[Person], str]
    channel: str
    purpose: str
    day: int
    hour: int
    recipients: Callable[[Sample], list[Person]]
    campaign: str | None = None
    template: str | None = None
    product: str | None = None
    minute: int = 0


@dataclass(frozen=True)
class Story:
    """A story of SPEC §1: one send to one person, and how the guard must catch it."""

    title: str
    label: str
    person: str
    kinds: tuple[str, ...] = ()      # caught when a reason has one of these kinds …
    notify: str | None = None        # … or the decision tells this owner
    earlier: str | None = None       # an earlier send to the same person, for contrast


def _customers_of(*dealers: str) -> Callable[[Sample], list[Person]]:
    return lambda s: [p for p in s.customers() if p.owner in dealers]


def _every(n: int) -> Callable[[Sample], list[Person]]:
    """A stable one-in-n slice of the customers (crc32: the same on every run)."""
    return lambda s: [p for p in s.customers() if zlib.crc32(p.key.encode()) % n == 0]


def _by_keys(*keys: str) -> Callable[[Sample], list[Person]]:
    return lambda s: [s.people[k] for k in keys]


# Times are UTC; the people live in Berlin (UTC+1 in November).
WEEK = (
    Send("Monthly newsletter", "oem", "email", "newsletter", 0, 8,
         lambda s: list(s.people.values()), template="newsletter-2026-11"),
    Send("Black week offer", "oem", "email", "price_offer", 0, 9,
         lambda s: s.customers() + s.prospects(), campaign="black-week", product="nw-kombi"),
    Send("Finance letter", "oem", "mail", "price_offer", 0, 10,
         lambda s: s.customers(), campaign="finance-q4"),
    Send("Munich winter check", "dealer:munich", "email", "promotion", 1, 8,
         _customers_of("dealer:munich"), campaign="winter-check", template="winter-tyres-2026"),
    Send("Hamburg winter check", "dealer:hamburg", "email", "promotion", 1, 9,
         lambda s: _customers_of("dealer:hamburg")(s) + [s.people["schmidt"]],
         campaign="winter-check", template="winter-tyres-2026"),
    Send("Munich SMS reminder", "dealer:munich", "sms", "promotion", 0, 11,
         _by_keys("schmidt"), campaign="winter-check"),
    Send("Evening survey call", "dealer:berlin", "call", "survey", 1, 20, minute=30,
         recipients=_by_keys("krause")),
    Send("Prospecting calls", "oem", "call", "prospecting", 2, 9,
         lambda s: s.prospects()),
    Send("Service reminders", lambda p: p.owner, "email", "service_reminder", 2, 7,
         lambda s: s.customers()),
    Send("Payment reminders", "billing", "email", "payment_reminder", 3, 8,
         _every(5)),
    Send("Collections letter", "billing", "mail", "collections", 3, 9, _by_keys("wagner")),
    Send("Launch night invitation", "oem", "email", "event_offer", 3, 10,
         lambda s: s.customers(), campaign="ev5-launch", product=EVENT),
    Send("Trade-in push", lambda p: p.owner, "email", "trade_in", 4, 9,
         lambda s: s.customers(), campaign="trade-up"),
)

STORIES = (
    Story("A head-office finance letter the dealer knows nothing about",
          "Finance letter", "becker", notify="dealer:munich"),
    Story("A sale on the very car he bought two days ago",
          "Black week offer", "keller", kinds=("purchase_cooldown", "already_owned")),
    Story("A collections letter for an invoice never sent",
          "Collections letter", "wagner", kinds=("prerequisite",)),
    Story("The same template from a second dealership",
          "Hamburg winter check", "schmidt", kinds=("duplicate_content",)),
    Story("A phone call at half past nine in the evening",
          "Evening survey call", "krause", kinds=("contact_window",)),
    Story("A text message to someone who asked for email",
          "Munich SMS reminder", "schmidt", kinds=("preferred_channel",)),
    Story("A trade-in pitch to a driver who keeps cars ten years",
          "Trade-in push", "mueller", kinds=("replacement_cycle",)),
    Story("A service reminder a year before the service is due",
          "Service reminders", "mueller", kinds=("service_due",)),
    Story("A cold call to an employee of a fleet-contract customer",
          "Prospecting calls", "richter", kinds=("existing_customer",)),
    Story("Launch-night tickets offered to a ticket holder",
          "Launch night invitation", "hoffmann", kinds=("already_owned",)),
    Story("A newsletter to someone who opted out of email marketing",
          "Monthly newsletter", "vogel", kinds=("consent",)),
    Story("An offer while a complaint is open",
          "Black week offer", "roth", kinds=("open_case",)),
    Story("Head office calls a lead it handed to sales the day before",
          "Prospecting calls", "brandt", kinds=("relationship_owner",),
          earlier="Black week offer"),
)


@dataclass
class Outcome:
    """What the guard decided for one send to one person."""

    send: Send
    person: Person
    at: datetime
    decision: object


def caught(story: Story, outcome: Outcome) -> bool:
    """Say whether the guard handled the story the way it should."""
    decision = outcome.decision
    if story.kinds and any(r.kind in story.kinds for r in decision.reasons):
        return True
    return bool(story.notify) and any(n.owner == story.notify for n in decision.notify)


def run_week(guard, sample: Sample, clock: list[datetime],
             rejected: list[dict]) -> Iterator[Outcome]:
    """Check every send of the week in time order, committing what the guard allows.

    The week's record updates are ingested at their own time, before the sends
    that follow them; their rejections are added to ``rejected``.
    """
    updates = sorted(sample.updates, key=lambda u: u.at)
    for send in sorted(WEEK, key=lambda s: (s.day, s.hour, s.minute)):
        at = WEEK_START + timedelta(days=send.day, hours=send.hour, minutes=send.minute)
        while updates and updates[0].at <= at:
            update = updates.pop(0)
            clock[0] = update.at
            rejected.extend(guard.ingest([update.event])["rejected"])
        for person in send.recipients(sample):
            clock[0] = at
            sender = send.sender(person) if callable(send.sender) else send.sender
            body = {"channel": send.channel, "purpose": send.purpose, "sender": sender,
                    "at": at.isoformat(),
                    "to": person.phone if send.channel in ("sms", "call") else person.email}
            for name in ("campaign", "template", "product"):
                if getattr(send, name):
                    body[name] = getattr(send, name)
            yield Outcome(send, person, at, guard.check(body, commit=True))


def main(echo: Callable[[str], None], *, policy_path: str | None = None, seed: int = 7,
         people: int = 300) -> bool:
    """Run the demo, printing as it goes; return whether every story was caught."""
    from guard.checks.service import Guard
    from guard.services import load_configured_policy
    from guard.store.engine import make_engine
    from guard.store.migrate import upgrade

    policy = load_configured_policy(policy_path)
    sample = generate(seed, people)
    clock = [WEEK_START]
    with tempfile.TemporaryDirectory(prefix="guard-demo-") as folder:
        engine = make_engine(f"sqlite:///{Path(folder) / 'demo.db'}")
        try:
            upgrade(engine)
            guard = Guard(engine, policy, clock=lambda: clock[0])
            result = guard.ingest(sample.events)
            systems = sorted({e["source"]["system"] for e in sample.events})
            echo(f"Sample: {len(sample.people)} people, {len(sample.events)} events from "
                 f"{', '.join(systems)}; {result['accepted']} accepted, "
                 f"{len(result['rejected'])} rejected; {len(sample.updates)} more during "
                 f"the week.")
            for rejection in result["rejected"][:5]:
                echo(f"  rejected event {rejection['index']}: {rejection['detail']}")
            late: list[dict] = []
            outcomes = list(run_week(guard, sample, clock, late))
            for rejection in late[:5]:
                echo(f"  rejected update: {rejection['detail']}")
        finally:
            engine.dispose()
    echo(f"Marketing week {WEEK_START:%Y-%m-%d} to "
         f"{WEEK_START + timedelta(days=4):%Y-%m-%d}: {len(outcomes)} sends checked "
         f"(policy {policy.version[:19]}…).\n")
    ok = _print_stories(echo, outcomes, sample.updates)
    _print_week(echo, outcomes)
    return ok


def _print_stories(echo: Callable[[str], None], outcomes: list[Outcome],
                   updates: list[Update]) -> bool:
    index = {(o.send.label, o.person.key): o for o in outcomes}
    echo("THE STORIES")
    all_caught = True
    for number, story in enumerate(STORIES, start=1):
        outcome = index[(story.label, story.person)]
        decision = outcome.decision
        ok = caught(story, outcome)
        all_caught &= ok
        echo(f"{number:>2}. {story.title}  [{'caught' if ok else 'MISSED'}]")
        if story.earlier:
            before = index[(story.earlier, story.person)]
            echo(f"    {_headline(before)}: {before.decision.verdict.upper()}")
        for update in updates:
            if update.person == story.person and update.at <= outcome.at:
                _para(echo, f"{update.at:%a %H:%M} UTC  {update.note}", "    ")
        echo(f"    {_headline(outcome)}")
        extra = ""
        if decision.reroute:
            extra = " to " + ", ".join(f"{k} {v}" for k, v in decision.reroute.items())
        if decision.not_before:
            extra = f" until {decision.not_before:%a %Y-%m-%d %H:%M %Z}"
        echo(f"    {decision.verdict.upper()}{extra}")
        for reason in decision.reasons:
            _para(echo, f"{reason.rule}: {reason.message}", "      - ")
            for item in reason.evidence:
                echo("        evidence: " + " ".join(filter(None, (item.system, item.type,
                                                                    item.id))))
        for notice in decision.notify:
            _para(echo, f"task for {notice.owner}: {notice.message}", "      > ")
        echo("")
    return all_caught


def _print_week(echo: Callable[[str], None], outcomes: list[Outcome]) -> None:
    verdicts = Counter(o.decision.verdict for o in outcomes)
    echo("THE WHOLE WEEK")
    echo("  " + "   ".join(f"{v}: {verdicts.get(v, 0)}"
                           for v in ("allow", "defer", "reroute", "block")))
    rules: Counter[tuple[str, str]] = Counter()
    for o in outcomes:
        for reason in o.decision.reasons:
            # An allowing reason only tells someone (the owner must honour an offer).
            rules[(reason.rule, "notify" if reason.effect == "allow" else reason.effect)] += 1
    echo("")
    echo(f"  {'rule':<28} {'effect':<8} {'sends':>6}")
    for (rule, effect), count in sorted(rules.items(), key=lambda kv: (-kv[1], kv[0])):
        echo(f"  {rule:<28} {effect:<8} {count:>6}")
    echo("")
    echo(f"  {'send':<26} " + " ".join(f"{v:>7}" for v in ("allow", "defer", "reroute",
                                                          "block")))
    by_send: dict[str, Counter] = {}
    for o in outcomes:
        by_send.setdefault(o.send.label, Counter())[o.decision.verdict] += 1
    for label, counts in by_send.items():
        echo(f"  {label:<26} " + " ".join(f"{counts.get(v, 0):>7}"
                                          for v in ("allow", "defer", "reroute", "block")))


def _headline(outcome: Outcome) -> str:
    return (f"{outcome.at:%a %H:%M} UTC  {outcome.send.label}: {_sender_of(outcome)} -> "
            f"{outcome.person.name}, {outcome.send.channel} {outcome.send.purpose}")


def _sender_of(outcome: Outcome) -> str:
    sender = outcome.send.sender
    return sender(outcome.person) if callable(sender) else sender


def _para(echo: Callable[[str], None], text: str, indent: str) -> None:
    lines = wrap(text, width=96 - len(indent)) or [""]
    echo(indent + lines[0])
    for line in lines[1:]:
        echo(" " * len(indent) + line)
