"""API key commands: ``guard keys create``, ``guard keys list``, ``guard keys revoke``."""

from __future__ import annotations

import click

from guard.cli.common import service_guard, store_errors
from guard.errors import InvalidField
from guard.http.keys import SCOPES, create_key, list_keys, revoke_key

# The option that sets each field ``create_key`` may name in an error.
_OPTIONS = {"name": "--name", "scopes": "--scope", "sender": "--sender",
            "purpose": "--purpose", "senders": "--allow-sender", "purposes": "--allow-purpose"}


@click.group()
def keys() -> None:
    """Manage API keys."""


@keys.command("create")
@click.option("--name", required=True, help="Who uses the key (e.g. 'HubSpot workflows').")
@click.option("--scope", "scopes", multiple=True, required=True, type=click.Choice(SCOPES),
              help="A scope the key has; repeat for several.")
@click.option("--sender", help="Default sender for requests that name none.")
@click.option("--purpose", help="Default purpose for requests that name none.")
@click.option("--allow-sender", "senders", multiple=True, metavar="NAME",
              help="Limit the key to this sender or pattern (e.g. 'dealer:munich', "
                   "'dealer:*'); repeat for several. Default: any sender.")
@click.option("--allow-purpose", "purposes", multiple=True, metavar="NAME",
              help="Limit the key to this purpose or pattern; repeat for several. "
                   "Default: any purpose.")
@store_errors
def keys_create(name: str, scopes: tuple[str, ...], sender: str | None, purpose: str | None,
                senders: tuple[str, ...], purposes: tuple[str, ...]) -> None:
    """Create an API key and print it once (only its hash is stored)."""
    guard = service_guard()
    try:
        key, token = create_key(guard.engine, name, scopes, sender=sender, purpose=purpose,
                                senders=senders or None, purposes=purposes or None,
                                policy=guard.policy)
    except InvalidField as exc:
        field = (exc.field or "").split(".")[0]
        message = exc.detail.partition(": ")[2] or exc.detail
        raise click.BadParameter(message, param_hint=_OPTIONS.get(field, field)) from None
    limits = "".join(f"; {what}: {', '.join(values)}"
                     for what, values in (("senders", key.senders), ("purposes", key.purposes))
                     if values)
    click.echo(f"Created {key.id} ({key.name}; scopes: {', '.join(sorted(key.scopes))}"
               f"{limits}).", err=True)
    click.echo("The key is shown this once; store it now:", err=True)
    click.echo(token)


@keys.command("list")
@store_errors
def keys_list() -> None:
    """List every key: id, name, scopes, defaults, limits, and when it was revoked."""
    found = list_keys(service_guard().engine)
    if not found:
        click.echo("No API keys.", err=True)
        return
    for key in found:
        parts = [key["id"], key["name"], "scopes " + ",".join(key["scopes"])]
        parts += [f"{name} {key[name]}" for name in ("sender", "purpose") if key[name]]
        parts += [f"{name} {','.join(key[name])}" for name in ("senders", "purposes")
                  if key[name]]
        parts.append(f"created {key['created_at']}")
        parts.append(f"REVOKED {key['revoked_at']}" if key["revoked_at"] else "active")
        click.echo("  ".join(parts))


@keys.command("revoke")
@click.argument("key_id")
@store_errors
def keys_revoke(key_id: str) -> None:
    """Revoke the key KEY_ID: it stops working and what it queued is not sent.

    Other processes stop accepting it within 5 seconds. Revoking key_admin
    (GUARD_ADMIN_KEY) keeps that value revoked: set a new one before the next start.
    """
    revoked = revoke_key(service_guard().engine, key_id)
    click.echo(f"Revoked {revoked['id']} ({revoked['name']}) at {revoked['revoked_at']}.")
