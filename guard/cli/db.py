"""``guard db upgrade`` migrates the store; ``guard db stats`` says how big it is and grows."""

from __future__ import annotations

import click

from guard.cli.common import setting, store_errors


@click.group()
def db() -> None:
    """Manage the store."""


@db.command("upgrade")
@click.option("--url", help="Database URL (default: GUARD_DATABASE_URL, from the environment "
                             "or the GUARD_CONFIG file, else sqlite:///guard.db).")
@store_errors
def db_upgrade(url: str | None) -> None:
    """Migrate the store to the newest schema (the release phase runs this)."""
    from guard.store.engine import make_engine
    from guard.store.migrate import current_revision, upgrade

    url = url or setting("DATABASE_URL")

    engine = make_engine(url)
    try:
        upgrade(engine)
        click.echo(f"Store at revision {current_revision(engine)} ({engine.dialect.name}).")
    finally:
        engine.dispose()


@db.command("stats")
@click.option("--url", help="Database URL (default: GUARD_DATABASE_URL).")
@click.option("--days", default=30, show_default=True, type=click.IntRange(min=1),
              help="Days of recent growth the yearly projection is taken from.")
@store_errors
def db_stats(url: str | None, days: int) -> None:
    """Print rows and bytes per table, and the size a year adds at the recent rate."""
    from guard.store.engine import make_engine
    from guard.store.retention import store_sizes
    from guard.store.util import utc_now

    engine = make_engine(url or setting("DATABASE_URL"))
    try:
        sizes = store_sizes(engine, utc_now(), days=days)
        click.echo(f"{'table':<20} {'rows':>12} {'size':>10} {'added/day':>10} {'per year':>10}")
        for t in sizes:
            rate = "-" if t.added_per_day is None else f"{t.added_per_day:,.2f}"
            year = "-" if t.per_year is None else _size(t.per_year)
            click.echo(f"{t.name:<20} {t.rows:>12,} {_size(t.bytes):>10} {rate:>10} {year:>10}")
        total = sum(t.bytes for t in sizes)
        growth = sum(t.per_year or 0 for t in sizes)
        click.echo(f"{'total':<20} {sum(t.rows for t in sizes):>12,} {_size(total):>10} "
                   f"{'':>10} {_size(growth):>10}")
        click.echo(f"({engine.dialect.name}; per year: rows added over the last {days} days, "
                   "at each table's bytes per row, before retention purges them)")
    finally:
        engine.dispose()


def _size(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
