"""``guard demo``: a marketing week over sample data, offline."""

from __future__ import annotations

import sys

import click

from guard.cli.common import setting


@click.command()
@click.option("--policy", "policy_file", type=click.Path(exists=True),
              help="Policy file or folder (default: GUARD_POLICY or the shipped one).")
@click.option("--people", default=300, show_default=True, type=click.IntRange(20, 5000),
              help="How many sample people.")
@click.option("--seed", default=7, show_default=True, type=int)
def demo(policy_file: str | None, people: int, seed: int) -> None:
    """Run a marketing week over sample data in a temporary store and show the decisions.

    Needs no credentials and no network. Exits 1 if a story of the product
    specification slips through.
    """
    from guard.config import ConfigurationError
    from guard.demo import main as run_demo

    try:
        ok = run_demo(click.echo, policy_path=policy_file or setting("POLICY"),
                      seed=seed, people=people)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    if not ok:
        sys.exit(1)
