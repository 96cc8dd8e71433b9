"""CRM commands: ``guard sync``, ``guard install``, ``guard push``."""

from __future__ import annotations

import functools
import os
import sys

import click

from guard.cli.common import service_guard, setting, store_errors

CRMS = click.Choice(["salesforce", "hubspot"])
# Exit status of a sync that stopped early (API quota, an outage): the next run resumes.
EXIT_STOPPED = 3


def _crm_errors(func):
    """Report what the CRM refused (credentials, mapping, quota, outage) as one line."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from guard.crm.sync import connector_errors

        system = kwargs.get("system", "crm")
        try:
            return func(*args, **kwargs)
        except connector_errors() as exc:
            text = " ".join(str(exc).split()) or exc.__class__.__name__
            raise click.ClickException(f"{system}: {text}") from None

    return wrapper


def _connector(system: str):
    from guard.crm.sync import connector_from_env

    return connector_from_env(system, os.environ)


@click.command()
@click.argument("system", type=CRMS)
@store_errors
@_crm_errors
def sync(system: str) -> None:
    """Sync SYSTEM's records into the store (incremental from the last bookmark)."""
    from guard.crm.sync import run_sync

    guard = service_guard()
    connector = _connector(system)
    seen = {"events": 0}

    def progress(batch, result) -> None:
        seen["events"] += len(batch.events)
        click.echo(f"\r{batch.stream:<28} {seen['events']:>9} events", nl=False, err=True)

    summary, rejected = run_sync(guard, connector, progress)
    click.echo("", err=True)
    click.echo(f"{'stream':<28} {'records':>9} {'deleted':>9}")
    for stream in sorted(set(summary.counts) | set(summary.deleted)):
        click.echo(f"{stream:<28} {summary.counts.get(stream, 0):>9} "
                   f"{summary.deleted.get(stream, 0):>9}")
    click.echo(f"{seen['events']} events stored, {len(rejected)} rejected")
    for problem in rejected[:20]:
        click.echo(f"rejected {problem['stream']}: {problem['detail']}", err=True)
    if len(rejected) > 20:
        click.echo(f"… and {len(rejected) - 20} more rejected", err=True)
    if summary.stopped:
        click.echo(f"{system}: stopped early: {summary.stopped} "
                   "(bookmarks kept; the next run resumes)", err=True)
        sys.exit(EXIT_STOPPED)


@click.command()
@click.argument("system", type=CRMS)
@_crm_errors
def install(system: str) -> None:
    """Create the plugin's fields/properties in SYSTEM (safe to run again)."""
    connector = _connector(system)
    if system == "salesforce":
        done = _salesforce_install(connector)
    else:
        done = connector.install() + _hubspot_workflow_action()
    for line in done:
        click.echo(line)
    if not done:
        click.echo(f"{system}: everything is installed; nothing changed")


def _salesforce_install(connector) -> list[str]:
    """Install the fields and, when the guard's public URL is known, the Flow action."""
    import json

    from connectors.salesforce.external_service import FlowAction
    from connectors.salesforce.install import install as install_salesforce
    from guard.automation import external_service

    public = (setting("PUBLIC_URL") or "").rstrip("/")
    if not public.startswith("https://"):
        click.echo("salesforce: Flow action not deployed: it needs an https GUARD_PUBLIC_URL",
                   err=True)
        return connector.install()
    schema = json.dumps(external_service.document(), separators=(",", ":"))
    return install_salesforce(connector.sf, connector.api, FlowAction(public, schema))


def _hubspot_workflow_action() -> list[str]:
    """Register the "Contact Guard check" workflow action when the app's keys are set."""
    from hubspot import HubSpot

    from connectors.hubspot.client import default_retry
    from connectors.hubspot.install import install_action
    from connectors.hubspot.workflow_action import ACTION_PATH

    app_id = os.environ.get("GUARD_HUBSPOT_APP_ID")
    developer_key = os.environ.get("GUARD_HUBSPOT_DEVELOPER_API_KEY")
    public = (setting("PUBLIC_URL") or "").rstrip("/")
    if not (app_id and developer_key and public.startswith("https://")):
        click.echo("hubspot: workflow action not registered: it needs GUARD_HUBSPOT_APP_ID, "
                   "GUARD_HUBSPOT_DEVELOPER_API_KEY and an https GUARD_PUBLIC_URL", err=True)
        return []
    kwargs = {"api_key": developer_key, "retry": default_retry()}
    if os.environ.get("GUARD_HUBSPOT_URL"):
        kwargs["host"] = os.environ["GUARD_HUBSPOT_URL"].rstrip("/")
    return install_action(HubSpot(**kwargs), app_id, public + ACTION_PATH)


@click.command()
@click.argument("system", type=CRMS)
@store_errors
@_crm_errors
def push(system: str) -> None:
    """Write changed guard flags and open owner tasks to SYSTEM now."""
    from guard.crm.writeback import push_tasks, write_flags

    guard = service_guard()
    connector = _connector(system)
    flags = write_flags(guard, connector)
    tasks = push_tasks(guard, connector)
    click.echo(f"{system}: flags written to {flags} records, {tasks} tasks created")
