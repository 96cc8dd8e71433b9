"""The ``guard`` command: one click group, one module per command or group of commands."""

from __future__ import annotations

import click

from guard.cli import check, crm, db, demo, ingest, keys, outbox, policy, screen, serve, worker


@click.group()
@click.version_option(package_name="contact-guard")
def main() -> None:
    """Contact Guard: check every outbound contact against what the CRM knows."""


main.add_command(serve.serve)
main.add_command(worker.worker)
main.add_command(db.db)
main.add_command(ingest.import_events)
main.add_command(check.check)
main.add_command(screen.screen)
main.add_command(policy.policy)
main.add_command(keys.keys)
main.add_command(outbox.outbox)
main.add_command(crm.sync)
main.add_command(crm.install)
main.add_command(crm.push)
main.add_command(demo.demo)
