"""``guard import``: events from a JSON lines or CSV file into the store."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from guard.cli.common import progress, service_guard, store_errors
from guard.ingest.files import EVENT_TYPES, read_events


@click.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--type", "event_type", type=click.Choice(EVENT_TYPES),
              help="Event type of a CSV file (default: from the file name).")
@click.option("--batch-size", default=500, show_default=True, type=click.IntRange(1, 10_000))
@click.option("--show", default=20, show_default=True, type=click.IntRange(0),
              help="How many rejections to list.")
@store_errors
def import_events(file: Path, event_type: str | None, batch_size: int, show: int) -> None:
    """Import events from JSON lines or CSV (one event type per file; dotted columns nest).

    Exits 1 when any record was rejected (the valid ones are stored).
    """
    guard = service_guard()
    accepted = 0
    rejected: list[tuple[int, str]] = []
    batch: list[tuple[int, dict]] = []

    def flush() -> None:
        nonlocal accepted
        if not batch:
            return
        result = guard.ingest([event for _, event in batch])
        accepted += result["accepted"]
        rejected.extend((batch[r["index"]][0], r["detail"]) for r in result["rejected"])
        batch.clear()

    with progress(_count_lines(file), f"Importing {file.name}") as bar:
        try:
            records = read_events(file, event_type)
        except ValueError as exc:
            raise click.BadParameter(f"{exc}; pass --type", param_hint="--type") from None
        done = 0
        for line, record in records:
            if isinstance(record, str):
                rejected.append((line, record))
            else:
                batch.append((line, record))
                if len(batch) >= batch_size:
                    flush()
            bar.update(line - done)
            done = line
        flush()
    rejected.sort()
    click.echo(f"{file}: {accepted} accepted, {len(rejected)} rejected.")
    for line, detail in rejected[:show]:
        click.echo(f"{file}:{line}: {detail}")
    if len(rejected) > show:
        click.echo(f"… and {len(rejected) - show} more.")
    if rejected:
        sys.exit(1)


def _count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
