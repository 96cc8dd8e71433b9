"""Policy commands: ``guard policy check``, ``guard policy test`` and a pure ``guard check``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from guard.errors import GuardError, InvalidField
from policies import (
    Attempt,
    Campaign,
    Decision,
    LedgerEntry,
    Policy,
    PolicyError,
    Profile,
    decide,
    default_policy_path,
    load_policy,
)
from policies.casebook import load_cases, run_cases
from policies.model import parse_datetime


def policy_path(path: str | Path | None = None) -> Path:
    """Return the policy to use: the one given, else ``GUARD_POLICY``, else the shipped one."""
    from guard.cli.service import configured

    if path:
        return Path(path)
    chosen = configured("POLICY")
    return Path(chosen) if chosen else default_policy_path()


def examples_path(policy: str | Path) -> Path:
    """Return where a policy's example cases live: ``examples/`` next to (or inside) it."""
    policy = Path(policy)
    return (policy if policy.is_dir() else policy.parent) / "examples"


def run_check(
    profile_dict: Mapping[str, Any] | None,
    attempt_dict: Mapping[str, Any],
    policy: Policy,
    now: datetime | None = None,
    ledger: Iterable[Mapping[str, Any] | LedgerEntry] = (),
    campaigns: Iterable[Mapping[str, Any] | Campaign] = (),
) -> Decision:
    """Decide an attempt for a profile given as data; bad input raises InvalidField."""
    now = now or datetime.now(UTC)
    profile = _profile(profile_dict)
    attempt = read_attempt(attempt_dict, policy, now, profile)
    entries = []
    for i, entry in enumerate(ledger):
        try:
            entries.append(
                entry if isinstance(entry, LedgerEntry) else LedgerEntry.from_dict(entry))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidField(f"ledger[{i}]", _explain(exc)) from None
    registered = {}
    for i, campaign in enumerate(campaigns):
        try:
            c = campaign if isinstance(campaign, Campaign) else Campaign.from_dict(campaign)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise InvalidField(f"campaigns[{i}]", _explain(exc)) from None
        registered[c.id] = c
    return decide(attempt, profile, entries, policy, now, registered)


def read_attempt(data: Any, policy: Policy, now: datetime, profile: Profile | None = None
                 ) -> Attempt:
    """Build an attempt from request data, naming the first field the policy cannot use."""
    if not isinstance(data, Mapping):
        raise InvalidField("attempt", "expected a JSON object")
    for key in ("channel", "purpose", "sender"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise InvalidField(key, "required")
    if data["channel"] not in policy.channels:
        raise InvalidField("channel", f"unknown channel {data['channel']!r} "
                                      f"(expected one of {', '.join(policy.channels)})")
    if policy.category(data["purpose"]) is None:
        raise InvalidField("purpose", f"unknown purpose {data['purpose']!r}")
    if not policy.knows_sender(data["sender"]):
        raise InvalidField("sender", f"unknown sender {data['sender']!r}")
    for key in ("to", "campaign", "template", "product"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise InvalidField(key, "expected text")
    try:
        at = parse_datetime(data.get("at")) or now
    except (TypeError, ValueError):
        raise InvalidField("at", f"not a time: {data.get('at')!r}") from None
    to = data.get("to")
    if not to and profile is not None:
        to = next(iter(profile.emails + profile.phones), None)
    if not to:
        raise InvalidField("to", "required")
    return Attempt(channel=data["channel"], to=to, purpose=data["purpose"],
                   sender=data["sender"], at=at, campaign=data.get("campaign"),
                   template=data.get("template"), product=data.get("product"))


def _profile(data: Mapping[str, Any] | None) -> Profile:
    if data is None:
        return Profile(id=None)
    if not isinstance(data, Mapping):
        raise InvalidField("profile", "expected a JSON object")
    try:
        return Profile.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidField("profile", _explain(exc)) from None


def _explain(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"{exc.args[0]} is required"
    return str(exc) or type(exc).__name__


def _load(path: Path) -> Policy:
    try:
        return load_policy(path)
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(1) from None


def _read_json(path: str, what: str) -> Any:
    """Read a JSON document, or JSON lines, from a file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise click.BadParameter(f"cannot read {path}: {exc.strerror}", param_hint=what) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as whole:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError:
            raise click.BadParameter(
                f"{path}:{whole.lineno}: not JSON: {whole.msg}", param_hint=what) from None


@click.command("check")
@click.argument("paths", nargs=-1, type=click.Path())
def check_policy(paths: tuple[str, ...]) -> None:
    """Validate policy files and print every problem as file:line: message."""
    targets = [Path(p) for p in paths] or [policy_path()]
    failed = False
    for target in targets:
        try:
            policy = load_policy(target)
        except PolicyError as exc:
            failed = True
            for problem in exc.problems:
                click.echo(str(problem))
            continue
        prefix = f"{target}: " if len(targets) > 1 else ""
        click.echo(f"{prefix}OK: {len(policy.rules)} rules, version {policy.version}")
    if failed:
        raise SystemExit(1)


@click.command("test")
@click.argument("path", required=False, type=click.Path())
@click.option("--examples", "examples", type=click.Path(),
              help="Folder (or file) of example cases; default: examples/ next to the policy.")
def test_policy(path: str | None, examples: str | None) -> None:
    """Run the example cases written next to a policy; exit 1 if any fails."""
    target = policy_path(path)
    policy = _load(target)
    folder = Path(examples) if examples else examples_path(target)
    try:
        cases = load_cases(folder, policy)
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        raise SystemExit(1) from None
    failures = 0
    for outcome in run_cases(policy, cases):
        case, decision = outcome.case, outcome.decision
        if outcome.passed:
            rules = ", ".join(decision.rules) or "no rule"
            click.echo(f"PASS {case.name} ({decision.verdict}: {rules})")
            continue
        failures += 1
        click.echo(f"FAIL {case.name} ({case.where})")
        for failure in outcome.failures:
            click.echo(f"     {failure}")
        for reason in decision.reasons:
            click.echo(f"     - {reason.rule} ({reason.effect}): {reason.message}")
    passed = len(cases) - failures
    click.echo(f"{passed} passed, {failures} failed")
    if failures or not cases:
        raise SystemExit(1)


@click.command("check")
@click.option("--profile", "profile_file", required=True, type=click.Path(),
              help="A person's profile as JSON (the shape of GET /v1/people/<id>'s profile).")
@click.option("--attempt", "attempt_json", required=True,
              help='The attempt as JSON: {"channel", "purpose", "sender", "to", "product", …}.')
@click.option("--policy", "policy_file", type=click.Path(),
              help="Policy file or folder; default: GUARD_POLICY, else the shipped default.")
@click.option("--now", "now_text", help="Decide as of this ISO 8601 time; default: now.")
@click.option("--ledger", "ledger_file", type=click.Path(),
              help="Earlier contacts: a JSON list or JSON lines of ledger entries.")
@click.option("--campaigns", "campaigns_file", type=click.Path(),
              help="Registered campaigns: a JSON list or JSON lines.")
def check_profile(profile_file, attempt_json, policy_file, now_text, ledger_file,
                  campaigns_file) -> None:
    """Decide one attempt for a profile file, without a store, and print the decision as JSON."""
    policy = _load(policy_path(policy_file))
    try:
        attempt = json.loads(attempt_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc.msg}", param_hint="--attempt") from None
    try:
        now = parse_datetime(now_text) if now_text else None
    except ValueError:
        raise click.BadParameter(f"not a time: {now_text!r}", param_hint="--now") from None
    profile = _read_json(profile_file, "--profile")
    ledger = _read_json(ledger_file, "--ledger") if ledger_file else []
    campaigns = _read_json(campaigns_file, "--campaigns") if campaigns_file else []
    for value, hint in ((ledger, "--ledger"), (campaigns, "--campaigns")):
        if not isinstance(value, list):
            raise click.BadParameter("expected a JSON list or JSON lines", param_hint=hint)
    try:
        decision = run_check(profile, attempt, policy, now, ledger, campaigns)
    except GuardError as exc:
        raise click.UsageError(exc.detail) from None
    click.echo(json.dumps(decision.to_dict(), indent=2))


def register(group: click.Group) -> None:
    """Add ``guard policy check|test`` and, unless the service has one, ``guard check``."""
    policy_group = group.commands.get("policy")
    if policy_group is None:
        policy_group = click.Group("policy", help="Validate and test policy files.")
        group.add_command(policy_group)
    policy_group.add_command(check_policy)
    policy_group.add_command(test_policy)
    # The service registers a store-backed ``guard check`` that hands
    # ``--profile`` to run_check; this one is the seam until it exists.
    if "check" not in group.commands:
        group.add_command(check_profile)
