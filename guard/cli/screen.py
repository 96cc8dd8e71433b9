"""``guard screen``: a CSV list of recipients written back with a verdict per row."""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click

from guard.cli.common import (
    attempt_from,
    attempt_options,
    progress,
    service_guard,
    store_errors,
)
from guard.errors import GuardError

# `guard screen` spreads a list this long or longer over every core by default.
PARALLEL_FROM = 20_000


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@attempt_options
@click.option("--column", default="to", show_default=True, help="The recipient column.")
@click.option("--commit/--dry-run", default=False, show_default=True,
              help="Record allowed contacts in the ledger.")
@click.option("--workers", type=click.IntRange(1, 64),
              help="Processes screening at once (default: one per core for lists of "
                   f"{PARALLEL_FROM:,} rows or more, else 1).")
@click.option("-o", "--output", type=click.File("w", encoding="utf-8"), default="-",
              help="Where to write the CSV (default: stdout).")
@store_errors
def screen(file: Path, column: str, commit: bool, workers: int | None, output,
           **options: Any) -> None:
    """Screen a CSV list of recipients; write it back with verdict, rules and decision_id."""
    from guard.checks.screening import CHUNK, screen_in_processes, screen_rows
    from guard.collector import collecting_rarely

    attempt = attempt_from(**options)
    if "channel" not in attempt:
        raise click.BadParameter("required", param_hint="--channel")
    with file.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if column not in header:
            raise click.BadParameter(f"{file.name} has no column {column!r} (columns: "
                                     f"{', '.join(header)})", param_hint="--column")
        total = sum(1 for row in reader if row)
    guard = service_guard()
    try:
        guard.template(attempt, None)
    except GuardError as exc:
        raise click.BadParameter(exc.detail, param_hint=f"--{exc.field}") from None
    guard.erasure_salt()  # made once here, not raced by the workers
    if workers is None:
        workers = max(1, os.cpu_count() or 1) if total >= PARALLEL_FROM else 1
    writer = csv.writer(output)
    writer.writerow(spreadsheet_safe([*header, "verdict", "rules", "decision_id", "error"]))
    at, width = header.index(column), len(header)
    counts: dict[str, int] = {}
    # The list is streamed in chunks; only the chunks being screened are in memory. Rows
    # stay lists (as csv.DictReader would read them: blank lines skipped, short rows
    # padded, cells past the header dropped): this one process reads and writes every row
    # the workers decide, so what it spends per row limits how much more workers help.
    with file.open(newline="", encoding="utf-8-sig") as handle, \
            progress(total, f"Screening {file.name}") as bar, collecting_rarely():
        reader = csv.reader(handle)
        next(reader, None)
        chunks = _chunks((_cells(row, width) for row in reader if row), CHUNK)
        if workers == 1:
            screened = ((rows, list(screen_rows(guard, attempt, [r[at] for r in rows],
                                                commit))) for rows in chunks)
        else:
            kept: list[list[list[str]]] = []

            def recipients() -> Iterator[list[str]]:
                for rows in chunks:
                    kept.append(rows)
                    yield [row[at] for row in rows]

            screened = ((kept.pop(0), result) for result in screen_in_processes(
                recipients(), attempt, commit, workers))
        for rows, results in screened:
            for row, (verdict, rules, decision_id, error, _) in zip(rows, results, strict=True):
                row += (verdict, rules, decision_id, error)
                key = verdict or "invalid"
                counts[key] = counts.get(key, 0) + 1
            writer.writerows(map(spreadsheet_safe, rows))
            bar.update(len(rows))
    summary = ", ".join(f"{n} {verdict}" for verdict, n in sorted(counts.items()))
    click.echo(f"{total} recipients: {summary or 'none'}.", err=True)


# OWASP, CSV injection: a spreadsheet runs a cell that starts with one of these as a
# formula (=HYPERLINK(…), +cmd|…!A0, @SUM(…)); a leading ' makes it text.
_FORMULA_START = frozenset("=+-@\t\r")
# A signed number or phone number (+4917012345, +49 (0)170 123-4567, -12.5): nothing but
# digits, spaces and ( ) . / -, so nothing a formula could call. It stays as it is, so a
# screened list still holds recipients that work (and re-screen) as they are.
_PLAIN_NUMBER = re.compile(r"[+-][0-9 ()./-]*[0-9][0-9 ()./-]*")


def spreadsheet_safe(row: list[str]) -> list[str]:
    """Prefix ``'`` to every cell a spreadsheet would run as a formula; signed numbers stay."""
    for cell in row:
        if cell[:1] in _FORMULA_START and not _PLAIN_NUMBER.fullmatch(cell):
            break
    else:
        return row
    return ["'" + cell if cell[:1] in _FORMULA_START and not _PLAIN_NUMBER.fullmatch(cell)
            else cell for cell in row]


def _cells(row: list[str], width: int) -> list[str]:
    """Fit a CSV row to the header's ``width``: pad a short row, drop cells past the header."""
    if len(row) == width:
        return row
    return row[:width] + [""] * (width - len(row))


def _chunks(rows: Iterable[list[str]], size: int) -> Iterator[list[list[str]]]:
    chunk: list[list[str]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
