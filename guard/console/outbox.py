"""The outbox: held and deferred sends with when they go; unknown ones settled by hand.

Retry and Mark sent are the operations of ``guard outbox retry`` / ``mark-sent``.
"""

from __future__ import annotations

from flask import redirect, request, url_for

from guard.console import audit
from guard.console.pages import PageError, bp, engine, page, require_change
from guard.services import services
from guard.store.tables import HELD, UNKNOWN

PAGE = 50
# The states a reader may list; the counts show every state.
_LISTED = (HELD, UNKNOWN, "rejected", "sending", "claimed", "sent", "dropped")
# What a settled row's page says; a link carries the code, never the text.
_DONE = {"retry": "{row_id}: held for the next worker cycle.",
         "mark_sent": "{row_id}: marked sent."}


@bp.get("/outbox")
def outbox():
    """Show counts per state, the held rows (when each goes) and the unknown ones."""
    box = services().outbox
    status = request.args.get("status") or ""
    problem = None
    if status and status not in _LISTED:
        problem = f"status: {status!r} is not an outbox state (choose {', '.join(_LISTED)})"
        status = ""
    lists = ([(status, box.rows(status, PAGE))] if status
             else [(UNKNOWN, box.rows(UNKNOWN, PAGE)), (HELD, box.rows(HELD, PAGE))])
    return page("console/outbox.html", status=400 if problem else 200, title="Outbox",
                problem=problem, counts=box.counts(), lists=lists, states=_LISTED,
                chosen=status, notice=_DONE.get(request.args.get("done") or "", "").format(
                    row_id=request.args.get("row") or ""))


def _settle(row_id: str, action: str, refused: str):
    who = require_change()
    box = services().outbox
    ok = box.retry(row_id) if action == "outbox.retry" else box.mark_sent(row_id)
    if not ok:
        raise PageError(refused.format(row_id=row_id), 409)
    with engine().begin() as conn:
        audit.record(conn, who, action, row_id)
    return redirect(url_for("console.outbox", done=action.partition(".")[2], row=row_id))


@bp.post("/outbox/<row_id>/retry")
def outbox_retry(row_id: str):
    """Send an unknown or rejected row again."""
    return _settle(row_id, "outbox.retry",
                   "{row_id}: no unknown or rejected row with this id; nothing changed.")


@bp.post("/outbox/<row_id>/mark-sent")
def outbox_mark_sent(row_id: str):
    """Settle an unknown row as sent (found at the provider)."""
    return _settle(row_id, "outbox.mark_sent",
                   "{row_id}: no unknown row with this id; nothing changed.")
