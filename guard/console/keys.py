"""API keys: the list with when each was last used, create (the secret shown once), revoke."""

from __future__ import annotations

from flask import request

from guard.console import audit, usage
from guard.console.pages import PageError, bp, engine, page, require_change
from guard.errors import GuardError
from guard.http import keys as api_keys
from guard.services import services


def _listing(**context):
    rows = api_keys.list_keys(engine())
    used = usage.last_used(engine())
    for row in rows:
        row["last_used_at"] = used.get(row["id"])
    return page("console/keys.html", title="Keys", keys=rows, scopes=api_keys.SCOPES,
                bootstrap=api_keys.BOOTSTRAP_ID, **context)


@bp.get("/keys")
def keys():
    """List every key: name, scopes, created, last used, revoked."""
    return _listing()


@bp.post("/keys")
def create_key():
    """Create a key; its secret is on this page only."""
    who = require_change()
    scopes = request.form.getlist("scopes")
    try:
        key, token = api_keys.create_key(
            engine(), request.form.get("name") or "", scopes,
            sender=request.form.get("sender") or None,
            purpose=request.form.get("purpose") or None,
            policy=services().guard.policy)
    except GuardError as exc:
        return _listing(status=400, problem=exc.detail)
    with engine().begin() as conn:
        audit.record(conn, who, "key.create", key.id,
                     f"{key.name} ({', '.join(sorted(key.scopes))})")
    return _listing(created={"id": key.id, "name": key.name, "token": token})


@bp.post("/keys/<key_id>/revoke")
def revoke_key(key_id: str):
    """Revoke a key at once; its sessions and queued sends end with it."""
    who = require_change()
    if key_id == api_keys.BOOTSTRAP_ID:
        raise PageError(f"{key_id} is the GUARD_ADMIN_KEY key: set a new GUARD_ADMIN_KEY and "
                        "restart to replace it.", 409)
    if key_id == who.key_id:
        raise PageError("This is the key you are signed in with; sign in with another admin "
                        "key to revoke it.", 409)
    try:
        revoked = api_keys.revoke_key(engine(), key_id)
    except GuardError as exc:
        raise PageError(exc.detail, exc.status) from None
    with engine().begin() as conn:
        audit.record(conn, who, "key.revoke", key_id, revoked["name"])
    return _listing(notice=f"Revoked {revoked['name']} ({key_id}).")
