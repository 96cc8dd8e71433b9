"""``guard policy check|test|simulate``: validate, test and replay policy files."""

from __future__ import annotations

from pathlib import Path

import click

from guard.cli.common import policy_path, read_policy, service_guard, setting, store_errors


@click.group()
def policy() -> None:
    """Validate, test and simulate policy files."""


@policy.command("check")
@click.argument("paths", nargs=-1, type=click.Path())
def check_policy(paths: tuple[str, ...]) -> None:
    """Validate policy files and print every problem as file:line: message."""
    from policies import PolicyError, load_policy

    targets = [Path(p) for p in paths] or [policy_path()]
    failed = False
    for target in targets:
        try:
            loaded = load_policy(target)
        except PolicyError as exc:
            failed = True
            for problem in exc.problems:
                click.echo(str(problem))
            continue
        prefix = f"{target}: " if len(targets) > 1 else ""
        click.echo(f"{prefix}OK: {len(loaded.rules)} rules, version {loaded.version}")
    if failed:
        raise SystemExit(1)


@policy.command("test")
@click.argument("path", required=False, type=click.Path())
@click.option("--examples", "examples", type=click.Path(),
              help="Folder (or file) of example cases; default: examples/ next to the policy.")
def test_policy(path: str | None, examples: str | None) -> None:
    """Run the example cases written next to a policy; exit 1 if any fails."""
    from policies import PolicyError
    from policies.casebook import examples_path, load_cases, run_cases

    target = policy_path(path)
    loaded = read_policy(target)
    folder = Path(examples) if examples else examples_path(target)
    try:
        cases = load_cases(folder, loaded)
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(str(problem))
        raise SystemExit(1) from None
    failures = 0
    for outcome in run_cases(loaded, cases):
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


@policy.command()
@click.option("--since", default="30d", show_default=True,
              help="How far back to replay: 30d, 12h, 2w …")
@click.option("--policy", "policy_file", type=click.Path(exists=True),
              help="The changed policy file or folder (default: GUARD_POLICY or the shipped one).")
@click.option("--show", default=50, show_default=True, type=click.IntRange(0),
              help="How many changed decisions to list.")
@store_errors
def simulate(since: str, policy_file: str | None, show: int) -> None:
    """Replay recorded decisions under a policy and list those that would change."""
    from datetime import UTC, datetime

    from guard.checks.simulation import replay
    from guard.config import ConfigurationError
    from guard.services import load_configured_policy
    from policies.rules.base import Duration

    try:
        window = Duration.parse(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    try:
        changed_policy = load_configured_policy(policy_file or setting("POLICY"))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    engine = service_guard().engine
    replays = sorted(replay(engine, changed_policy, datetime.now(UTC) - window),
                     key=lambda r: r.at)
    changed = [r for r in replays if r.changed]
    click.echo(f"Replayed {len(replays)} decisions of the last {window.text} under "
               f"{changed_policy.version[:19]}…: {len(changed)} would change.")
    for r in changed[:show]:
        before = f"{r.before} ({', '.join(r.before_rules) or 'no rule'})"
        after = f"{r.after.verdict} ({', '.join(r.after.rules) or 'no rule'})"
        click.echo(f"  {r.at:%Y-%m-%d %H:%M} {r.decision_id} {r.attempt.channel} "
                   f"{r.attempt.purpose} from {r.attempt.sender} to {r.attempt.to}: "
                   f"{before} -> {after}")
    if len(changed) > show:
        click.echo(f"  … and {len(changed) - show} more.")
    if changed:
        click.echo("Profiles are today's: facts learnt after a decision count as known then.")
