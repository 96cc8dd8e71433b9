"""``guard serve``: the HTTP API and provider proxy in one process."""

from __future__ import annotations

import click

from guard.cli.common import service_app


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--threads", default=8, show_default=True, type=int)
def serve(host: str, port: int, threads: int) -> None:
    """Serve the HTTP API and provider proxy (waitress; production uses gunicorn)."""
    import waitress

    app = service_app(WARN_MISSING_PROVIDERS=True)
    click.echo(f"Contact Guard listening on http://{host}:{port}", err=True)
    waitress.serve(app, host=host, port=port, threads=threads)
