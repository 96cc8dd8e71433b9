"""``guard outbox list|retry|mark-sent``: inspect and settle the sends the guard holds."""

from __future__ import annotations

import json

import click

from guard.cli.common import service_app


def _outbox():
    from guard.services import services

    return services(service_app()).outbox


@click.group()
def outbox() -> None:
    """Inspect and settle the sends the guard holds."""


@outbox.command("list")
@click.option("--status", help="Only rows with this status (held, sending, unknown, …).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1))
def outbox_list(status: str | None, limit: int) -> None:
    """List outbox rows, newest first, with counts per status."""
    box = _outbox()
    counts = box.counts()
    click.echo(" ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "outbox is empty")
    for row in box.rows(status, limit):
        click.echo(json.dumps({k: row[k] for k in (
            "id", "status", "provider", "resource", "recipients", "not_before", "tries",
            "last_error")}))


@outbox.command("retry")
@click.argument("row_id")
def outbox_retry(row_id: str) -> None:
    """Send an unknown or rejected row again (after checking the provider did not send it)."""
    if not _outbox().retry(row_id):
        raise click.ClickException(f"{row_id}: no unknown or rejected row with this id")
    click.echo(f"{row_id}: held for the next worker cycle")


@outbox.command("mark-sent")
@click.argument("row_id")
def outbox_mark_sent(row_id: str) -> None:
    """Settle an unknown row as sent (you found it at the provider)."""
    if not _outbox().mark_sent(row_id):
        raise click.ClickException(f"{row_id}: no unknown row with this id")
    click.echo(f"{row_id}: marked sent")
