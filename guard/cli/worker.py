"""``guard worker``: release due outbox sends and run the scheduled jobs."""

from __future__ import annotations

import click

from guard.cli.common import service_app


@click.command()
@click.option("--once", is_flag=True, help="Release what is due, run the jobs once, and exit.")
@click.option("--interval", default=5.0, show_default=True, type=click.FloatRange(min=0.01),
              help="Seconds between cycles.")
def worker(once: bool, interval: float) -> None:
    """Release due outbox sends and run scheduled jobs until stopped."""
    import threading

    from guard import worker as background

    app = service_app(WARN_MISSING_PROVIDERS=True)
    stop = threading.Event()
    background.stop_on_signals(stop)

    def report(counts) -> None:
        click.echo(" ".join(f"{status}={n}" for status, n in sorted(counts.items())))

    background.run(app, once=once, interval=interval, stop=stop, report=report)
