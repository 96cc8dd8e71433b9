"""``guard check``: decide one attempt against the store, or against a profile file."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from guard.cli.common import (
    attempt_from,
    attempt_options,
    policy_path,
    read_policy,
    service_guard,
    store_errors,
)
from guard.errors import GuardError, InvalidField

if TYPE_CHECKING:
    from policies import Attempt, Campaign, Decision, LedgerEntry, Policy, Profile


@click.command()
@click.option("--to", help="Recipient: email, phone, or salesforce:003… / hubspot:501 / per_….")
@attempt_options
@click.option("--attempt", "attempt_json", help="The whole attempt as JSON (SPEC §5 check body).")
@click.option("--commit/--dry-run", default=False, show_default=True,
              help="Record the decision in the ledger (store checks only).")
@click.option("--profile", "profile_file", type=click.Path(),
              help="Check against this profile JSON instead of the store.")
@click.option("--ledger", "ledger_file", type=click.Path(),
              help="With --profile: earlier contacts, a JSON list or JSON lines.")
@click.option("--campaigns", "campaigns_file", type=click.Path(),
              help="With --profile: registered campaigns, a JSON list or JSON lines.")
@click.option("--now", "now_text", help="With --profile: decide as of this ISO 8601 time.")
@click.option("--policy", "policy_file", type=click.Path(exists=True, path_type=Path),
              help="Policy file or folder (default: GUARD_POLICY or the shipped one).")
@store_errors
def check(to: str | None, attempt_json: str | None, commit: bool, profile_file: str | None,
          ledger_file: str | None, campaigns_file: str | None, now_text: str | None,
          policy_file: Path | None, **options: Any) -> None:
    """Decide one attempt against the store, or against a profile file with --profile."""
    attempt: dict[str, Any] = {}
    if attempt_json:
        try:
            attempt = json.loads(attempt_json)
        except ValueError as exc:
            raise click.BadParameter(f"not valid JSON: {exc}", param_hint="--attempt") from None
        if not isinstance(attempt, dict):
            raise click.BadParameter("expected a JSON object", param_hint="--attempt")
    attempt.update(attempt_from(to=recipient(to), **options))
    if profile_file is not None:
        decision = _decide_from_files(attempt, profile_file, policy_file, now_text,
                                      ledger_file, campaigns_file)
    elif "to" not in attempt:
        raise click.BadParameter("required (or check a profile file with --profile)",
                                 param_hint="--to")
    else:
        config = {"POLICY": str(policy_file)} if policy_file else {}
        decision = service_guard(**config).check(attempt, commit=commit)
    click.echo(json.dumps(decision.to_dict(), indent=2))


def recipient(text: str | None) -> Any:
    """Read ``--to``: an address, ``salesforce:003…``, ``hubspot:501`` or ``per_…``."""
    if text is None:
        return None
    system, _, record = text.partition(":")
    if record and system in ("salesforce", "hubspot"):
        return {system: record}
    if text.startswith("per_"):
        return {"person": text}
    return text


def _decide_from_files(attempt: Mapping[str, Any], profile_file: str, policy_file: Path | None,
                       now_text: str | None, ledger_file: str | None,
                       campaigns_file: str | None) -> Decision:
    """Decide an attempt for a profile file with the given files' ledger and campaigns."""
    from policies.model import parse_datetime

    policy = read_policy(policy_path(policy_file))
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
        return run_check(profile, attempt, policy, now, ledger, campaigns)
    except GuardError as exc:
        raise click.UsageError(exc.detail) from None


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


def run_check(
    profile_dict: Mapping[str, Any] | None,
    attempt_dict: Mapping[str, Any],
    policy: Policy,
    now: datetime | None = None,
    ledger: Iterable[Mapping[str, Any] | LedgerEntry] = (),
    campaigns: Iterable[Mapping[str, Any] | Campaign] = (),
) -> Decision:
    """Decide an attempt for a profile given as data; bad input raises InvalidField."""
    from policies import Campaign, LedgerEntry, decide

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
    from policies import Attempt
    from policies.model import parse_datetime

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
    from policies import Profile

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
