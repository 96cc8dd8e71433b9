"""The ``guard`` command: one click group, one module per area of commands."""

from __future__ import annotations

import importlib

import click

# Each module adds its commands in ``register(group)``; the order is the help order.
_MODULES = ("service", "keys", "policy", "proxy", "crm")


@click.group()
@click.version_option(package_name="contact-guard")
def main() -> None:
    """Contact Guard: check every outbound contact against what the CRM knows."""


for _name in _MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(main)
