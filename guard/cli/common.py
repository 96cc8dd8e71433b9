"""What the commands share: the app and Guard from settings, errors as one line, options."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Any

import click

from guard.errors import GuardError


def service_app(**config: Any):
    """Build the app from the environment, turning start-up problems into a clean exit."""
    from guard import create_app
    from guard.config import ConfigurationError

    # Only the long-running commands say that provider credentials are missing; a
    # one-off `guard keys create` has nothing to forward.
    config.setdefault("WARN_MISSING_PROVIDERS", False)
    try:
        return create_app(config)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def service_guard(**config: Any):
    """Return the Guard of an app built from the environment, closed with the command."""
    from guard.services import services

    guard = services(service_app(**config)).guard
    click.get_current_context().call_on_close(guard.engine.dispose)
    return guard


def setting(name: str) -> Any:
    """Return one setting as the service would see it (environment or GUARD_CONFIG file)."""
    from guard.config import ConfigurationError, settings

    try:
        return settings()[name]
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


def policy_path(path: str | Path | None = None) -> Path:
    """Return the policy to use: the one given, else ``GUARD_POLICY``, else the shipped one."""
    from policies import default_policy_path

    if path:
        return Path(path)
    chosen = setting("POLICY")
    return Path(chosen) if chosen else default_policy_path()


def read_policy(path: Path):
    """Load a policy file or folder; print each of its problems and exit 1 if it has any."""
    from policies import PolicyError, load_policy

    try:
        return load_policy(path)
    except PolicyError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        raise SystemExit(1) from None


def store_errors(func):
    """Report store and input errors as one clear line instead of a traceback."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from sqlalchemy.exc import SQLAlchemyError

        try:
            return func(*args, **kwargs)
        except GuardError as exc:
            raise click.ClickException(exc.detail) from None
        except SQLAlchemyError as exc:
            raise click.ClickException(
                f"store: {exc.__class__.__name__}: {str(exc).splitlines()[0]} "
                "(is the database reachable and migrated? run `guard db upgrade`)"
            ) from None

    return wrapper


def progress(length: int, label: str):
    """Return a progress bar on stderr, so that CSV or JSON on stdout stays clean."""
    return click.progressbar(length=length, label=label, file=sys.stderr)


def attempt_options(func):
    """Add the options that describe an attempt (all but its recipient) to a command."""
    for option in reversed((
        click.option("--channel", help="email, sms, call, mail or push."),
        click.option("--purpose", help="Why (e.g. price_offer)."),
        click.option("--sender", help="Who sends (e.g. oem, dealer:munich)."),
        click.option("--campaign"),
        click.option("--template"),
        click.option("--product"),
        click.option("--at", help="When (ISO 8601; default now)."),
    )):
        func = option(func)
    return func


def attempt_from(**options: Any) -> dict:
    """Return the attempt fields among the options given."""
    return {k: v for k, v in options.items() if v is not None}
