"""Example cases next to a policy: given facts and an attempt, expect a verdict and rules.

A case file is YAML::

    cases:
      - name: Bought an A4 two days ago; head office offers the same car
        now: 2026-11-23T10:00:00Z
        given:
          profile: {id: per_anna, purchases: [{product: audi-a4, at: 2026-11-21}]}
          ledger: [{at: 2026-11-20T09:00:00Z, channel: email, purpose: newsletter,
                    sender: oem}]
          campaigns: [{id: q4-upgrade, purpose: price_offer, eligible_when: "true"}]
        attempt: {channel: email, purpose: price_offer, sender: oem, product: audi-a4}
        expect: {verdict: block, rules: [purchase-cooldown]}

``profile`` has the shape of ``Profile.to_dict`` and may leave out anything
empty; without an ``id`` the person is known (``per_`` and the case number),
with ``id: null`` they are an unknown recipient, and without a profile at all
too. The attempt's ``to`` defaults to the person's first address and ``at`` to
``now``. ``expect`` may also name ``reroute``, ``not_before``, ``notify``
(owners) and ``monitored`` (rule ids).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from policies.engine import decide
from policies.model import (
    FACT_RECORDS,
    VERDICTS,
    Account,
    Attempt,
    Campaign,
    Decision,
    LedgerEntry,
    Profile,
    parse_datetime,
)
from policies.policy import LineDict, LineList, Policy, PolicyError, Problem, plain, read_yaml

CASE_KEYS = ("name", "now", "given", "attempt", "expect")
GIVEN_KEYS = ("profile", "ledger", "campaigns")
ATTEMPT_KEYS = tuple(f.name for f in fields(Attempt))
EXPECT_KEYS = ("verdict", "rules", "reroute", "not_before", "notify", "monitored")
PROFILE_KEYS = tuple(f.name for f in fields(Profile))


@dataclass(frozen=True)
class Case:
    """One example: the facts, the attempt and what the policy should decide."""

    name: str
    file: str
    line: int
    now: Any
    profile: Profile
    ledger: tuple[LedgerEntry, ...]
    campaigns: Mapping[str, Campaign]
    attempt: Attempt
    expect: Mapping[str, Any]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class Outcome:
    """A case, the decision the policy made, and how it differs from the expectation."""

    case: Case
    decision: Decision
    failures: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.failures


def case_files(path: str | Path) -> list[Path]:
    """List the case files in a folder (or the one file given)."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


def examples_path(policy_file: str | Path) -> Path:
    """Return where a policy's example cases live: ``examples/`` next to (or inside) it."""
    policy_file = Path(policy_file)
    return (policy_file if policy_file.is_dir() else policy_file.parent) / "examples"


def load_cases(path: str | Path, policy: Policy) -> list[Case]:
    """Read every case in a file or folder, checked against the policy's vocabulary."""
    problems: list[Problem] = []
    cases: list[Case] = []
    files = case_files(path)
    if not files:
        raise PolicyError([Problem(str(path), 1, "no *.yaml example case files here")])
    for file in files:
        try:
            data = file.read_bytes()
        except OSError as exc:
            problems.append(Problem(str(file), 1, f"cannot read: {exc.strerror}"))
            continue
        cases.extend(parse_cases(str(file), data, policy, problems))
    if problems:
        raise PolicyError(problems)
    return cases


def parse_cases(name: str, data: bytes, policy: Policy, problems: list[Problem]) -> list[Case]:
    """Parse one case file; add each mistake to ``problems``."""
    doc = read_yaml(name, data, problems)
    if doc is None:
        return []
    raw_cases = doc.get("cases") if isinstance(doc, LineDict) else None
    if not isinstance(raw_cases, LineList):
        problems.append(Problem(name, getattr(doc, "line", 1),
                                "a case file is a mapping with a list of cases"))
        return []
    cases = []
    for i, raw in enumerate(raw_cases):
        reader = _CaseReader(name, raw_cases.line_of(i), policy, problems)
        case = reader.read(raw, i + 1)
        if case is not None:
            cases.append(case)
    return cases


def run_cases(policy: Policy, cases: Iterable[Case]) -> list[Outcome]:
    """Decide every case and compare with what it expects."""
    outcomes = []
    for case in cases:
        decision = decide(case.attempt, case.profile, case.ledger, policy, case.now,
                          case.campaigns)
        outcomes.append(Outcome(case, decision, tuple(_differences(case.expect, decision))))
    return outcomes


def _differences(expect: Mapping[str, Any], decision: Decision) -> Iterable[str]:
    if decision.verdict != expect["verdict"]:
        yield f"expected verdict {expect['verdict']}, got {decision.verdict}"
    if sorted(decision.rules) != sorted(expect["rules"]):
        yield (f"expected rules [{', '.join(expect['rules'])}], "
               f"got [{', '.join(decision.rules)}]")
    if "reroute" in expect and dict(decision.reroute or {}) != dict(expect["reroute"] or {}):
        yield f"expected reroute {expect['reroute']}, got {decision.to_dict()['reroute']}"
    if "not_before" in expect and decision.not_before != expect["not_before"]:
        got = decision.not_before.isoformat() if decision.not_before else None
        want = expect["not_before"].isoformat() if expect["not_before"] else None
        yield f"expected not_before {want}, got {got}"
    if "notify" in expect and sorted(n.owner for n in decision.notify) != sorted(expect["notify"]):
        yield (f"expected notify [{', '.join(expect['notify'])}], "
               f"got [{', '.join(n.owner for n in decision.notify)}]")
    if "monitored" in expect and sorted(m.rule for m in decision.monitored) != sorted(
            expect["monitored"]):
        yield (f"expected monitored [{', '.join(expect['monitored'])}], "
               f"got [{', '.join(m.rule for m in decision.monitored)}]")


class _CaseReader:
    """Turns one raw case into a Case, reporting each mistake with its line."""

    def __init__(self, file: str, line: int, policy: Policy, problems: list[Problem]):
        self.file = file
        self.line = line
        self.policy = policy
        self.problems = problems
        self.label = "case"
        self.ok = True

    def bad(self, line: int, message: str) -> None:
        self.ok = False
        self.problems.append(Problem(self.file, line, f"{self.label}: {message}"))

    def mapping(self, raw: Any, key: str, line: int) -> LineDict | None:
        if not isinstance(raw, LineDict):
            self.bad(line, f"{key}: expected a mapping")
            return None
        return raw

    def unknown_keys(self, raw: LineDict, allowed: Iterable[str], where: str) -> None:
        allowed = tuple(allowed)
        for key in raw:
            if key not in allowed:
                self.bad(raw.line_of(key), f"{where}unknown key {key!r} "
                                           f"(expected one of {', '.join(allowed)})")

    def read(self, raw: Any, number: int) -> Case | None:
        if not isinstance(raw, LineDict):
            self.bad(self.line, "each case is a mapping with name, given, attempt and expect")
            return None
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            self.bad(raw.line_of("name"), "every case needs a name")
            name = f"case {number}"
        self.label = f"case {name!r}"
        self.unknown_keys(raw, CASE_KEYS, "")
        now = self.time(raw, "now", required=True)
        given = raw.get("given", LineDict())
        given = self.mapping(given, "given", raw.line_of("given")) or LineDict()
        self.unknown_keys(given, GIVEN_KEYS, "given: ")
        profile = self.profile(given, number)
        ledger = self.ledger(given)
        campaigns = self.campaigns(given)
        attempt = self.attempt(raw, profile, now)
        expect = self.expect(raw)
        if not self.ok:
            return None
        return Case(name=name, file=self.file, line=self.line, now=now, profile=profile,
                    ledger=ledger, campaigns=campaigns, attempt=attempt, expect=expect)

    def time(self, raw: LineDict, key: str, *, required: bool = False, prefix: str = ""):
        value = raw.get(key)
        if value is None:
            if required:
                self.bad(raw.line, f"{prefix}{key} is required")
            return None
        try:
            return parse_datetime(value)
        except (ValueError, TypeError):
            self.bad(raw.line_of(key), f"{prefix}{key}: not a time: {value!r}")
            return None

    def profile(self, given: LineDict, number: int) -> Profile:
        if "profile" not in given:
            return Profile(id=None)
        raw = self.mapping(given["profile"], "given.profile", given.line_of("profile"))
        if raw is None:
            return Profile(id=None)
        self.unknown_keys(raw, PROFILE_KEYS, "given.profile: ")
        for key, record in (*FACT_RECORDS.items(), ("account", Account)):
            items = raw.get(key)
            if items is None:
                continue
            if key == "account":
                items = [items]
            elif not isinstance(items, list):
                self.bad(raw.line_of(key), f"given.profile.{key}: expected a list")
                continue
            names = tuple(f.name for f in fields(record))
            for item in items:
                if isinstance(item, LineDict):
                    self.unknown_keys(item, names, f"given.profile.{key}: ")
        data = plain(raw)
        data.setdefault("id", f"per_case{number}")
        try:
            return Profile.from_dict(data)
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            self.bad(raw.line, f"given.profile: {_explain(exc)}")
            return Profile(id=None)

    def records(self, given: LineDict, key: str, build, required: Iterable[str]) -> list:
        items = given.get(key)
        if items is None:
            return []
        if not isinstance(items, LineList):
            self.bad(given.line_of(key), f"given.{key}: expected a list")
            return []
        out = []
        for i, item in enumerate(items):
            line = items.line_of(i)
            if not isinstance(item, LineDict):
                self.bad(line, f"given.{key}: each entry is a mapping")
                continue
            missing = [k for k in required if item.get(k) is None]
            if missing:
                self.bad(line, f"given.{key}: {', '.join(missing)} required")
                continue
            try:
                out.append(build(plain(item)))
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                self.bad(line, f"given.{key}: {_explain(exc)}")
        return out

    def ledger(self, given: LineDict) -> tuple[LedgerEntry, ...]:
        return tuple(self.records(given, "ledger", LedgerEntry.from_dict,
                                  ("at", "channel", "purpose", "sender")))

    def campaigns(self, given: LineDict) -> dict[str, Campaign]:
        found = {}
        for campaign in self.records(given, "campaigns", Campaign.from_dict, ("id",)):
            if isinstance(campaign.id, str):
                found[campaign.id] = campaign
            else:
                self.bad(given.line_of("campaigns"),
                         f"given.campaigns: id must be text, got {campaign.id!r}")
        return found

    def attempt(self, raw: LineDict, profile: Profile, now) -> Attempt | None:
        attempt = self.mapping(raw.get("attempt"), "attempt", raw.line_of("attempt"))
        if attempt is None:
            return None
        self.unknown_keys(attempt, ATTEMPT_KEYS, "attempt: ")
        for key in ("channel", "purpose", "sender"):
            if not isinstance(attempt.get(key), str):
                self.bad(attempt.line_of(key), f"attempt.{key} is required")
        channel, purpose, sender = (attempt.get(k) for k in ("channel", "purpose", "sender"))
        if isinstance(channel, str) and channel not in self.policy.channels:
            self.bad(attempt.line_of("channel"), f"attempt.channel: unknown channel {channel!r}")
        if isinstance(purpose, str) and self.policy.category(purpose) is None:
            self.bad(attempt.line_of("purpose"), f"attempt.purpose: unknown purpose {purpose!r}")
        if isinstance(sender, str) and not self.policy.knows_sender(sender):
            self.bad(attempt.line_of("sender"), f"attempt.sender: unknown sender {sender!r}")
        at = self.time(attempt, "at", prefix="attempt.") or now
        to = attempt.get("to") or next(iter(profile.emails + profile.phones), "someone@example.com")
        if not self.ok or at is None:
            return None
        for key in ("campaign", "template", "product"):
            if attempt.get(key) is not None and not isinstance(attempt[key], str):
                self.bad(attempt.line_of(key), f"attempt.{key}: expected text")
        return Attempt(channel=channel, to=str(to), purpose=purpose, sender=sender, at=at,
                       campaign=attempt.get("campaign"), template=attempt.get("template"),
                       product=attempt.get("product"))

    def expect(self, raw: LineDict) -> dict[str, Any]:
        expect = self.mapping(raw.get("expect"), "expect", raw.line_of("expect"))
        if expect is None:
            return {}
        self.unknown_keys(expect, EXPECT_KEYS, "expect: ")
        out: dict[str, Any] = {}
        verdict = expect.get("verdict")
        if verdict not in VERDICTS:
            self.bad(expect.line_of("verdict"),
                     f"expect.verdict: expected one of {', '.join(VERDICTS)}, got {verdict!r}")
        out["verdict"] = verdict
        for key in ("rules", "notify", "monitored"):
            if key not in expect and key != "rules":
                continue
            value = expect.get(key)
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                self.bad(expect.line_of(key), f"expect.{key}: expected a list of names")
                value = []
            out[key] = list(value)
        if "reroute" in expect:
            reroute = expect["reroute"]
            if reroute is not None and (not isinstance(reroute, dict)
                                        or set(reroute) - {"owner", "channel"}):
                self.bad(expect.line_of("reroute"),
                         "expect.reroute: expected {owner: …} and/or {channel: …}")
            out["reroute"] = plain(reroute)
        if "not_before" in expect:
            out["not_before"] = self.time(expect, "not_before", prefix="expect.")
        return out


def _explain(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"{exc.args[0]} is required"
    return str(exc) or type(exc).__name__
