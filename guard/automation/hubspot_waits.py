"""Deferred HubSpot workflow actions: checked again when due, then the callback completed.

Each worker cycle, a waiting execution whose time has come is claimed (one
worker of several gets it), checked again, and its new outputs stored in the
same transaction as the new decision; a contact deferred again keeps waiting
while HubSpot still holds it. Stored outputs are then sent with
``POST /automation/v4/actions/callbacks/{callbackId}/complete`` (Automation
Actions API v4, "Complete a callback": ``{"outputFields": {…}}`` with
``hs_execution_state`` ``SUCCESS``); an answer lost on the way is sent again
next cycle, never decided again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.engine import Connection

from guard.automation import outcome, via
from guard.automation.hubspot_action import GRACE, failure
from guard.errors import InvalidField
from guard.services import services
from guard.store.engine import read_only
from guard.store.tables import (
    ACTIONS_FINISHED,
    COMPLETED,
    DECIDED,
    EXPIRED,
    FAILED,
    WAITING,
    hubspot_actions,
)

log = logging.getLogger(__name__)

# A claimed execution whose worker died is due again after this.
LEASE = timedelta(minutes=5)
BATCH = 100
COMPLETE_PATH = "/automation/v4/actions/callbacks/{callback_id}/complete"


class HubSpotWaits:
    """The worker's job for deferred HubSpot workflow actions.

    ``factory`` builds the HubSpot API (``connectors.hubspot.client.Api``) the
    callbacks are completed with, on first need; it is kept between cycles.
    """

    __name__ = "hubspot:workflow-actions"

    def __init__(self, factory: Callable[[], Any] | None):
        self.factory = factory
        self.api: Any = None

    def __call__(self, app: Flask) -> None:
        guard = services(app).guard
        forget_finished(guard, timedelta(days=app.config["INBOX_RETENTION_DAYS"]))
        recheck_due(guard)
        if not _has(guard.engine, DECIDED):
            return
        if self.factory is None:
            log.warning("hubspot workflow actions wait to be completed: HubSpot credentials "
                        "(GUARD_HUBSPOT_TOKEN or the OAuth app) are not set")
            return
        if self.api is None:
            self.api = self.factory()
        complete_decided(guard, self.api)


def forget_finished(guard, keep: timedelta) -> int:
    """Delete executions finished longer than ``keep`` ago; return how many.

    HubSpot retries an execution within minutes, so an answer kept as long as
    a webhook delivery (GUARD_INBOX_RETENTION_DAYS) outlives every retry; the
    decision itself stays in the ledger.
    """
    with guard.engine.begin() as conn:
        return conn.execute(hubspot_actions.delete().where(
            hubspot_actions.c.state.in_(ACTIONS_FINISHED),
            hubspot_actions.c.updated_at < guard.clock() - keep)).rowcount


def recheck_due(guard, limit: int = BATCH) -> int:
    """Check again every waiting execution whose time has come; return how many."""
    now = guard.clock()
    with read_only(guard.engine.connect()) as conn:
        due = conn.execute(
            sa.select(hubspot_actions.c.callback_id, hubspot_actions.c.due_at,
                      hubspot_actions.c.check, hubspot_actions.c.expires_at)
            .where(hubspot_actions.c.state == WAITING, hubspot_actions.c.due_at <= now)
            .order_by(hubspot_actions.c.due_at).limit(limit)).all()
    done = 0
    for callback_id, due_at, check, expires_at in due:
        if _claim(guard.engine, callback_id, due_at, now):
            _recheck(guard, callback_id, dict(check), _aware(expires_at))
            done += 1
    return done


def _claim(engine: sa.Engine, callback_id: str, due_at: datetime, now: datetime) -> bool:
    """Move a due execution's time on by the lease; only the worker that did so checks it."""
    with engine.begin() as conn:
        return bool(conn.execute(
            hubspot_actions.update()
            .where(hubspot_actions.c.callback_id == callback_id,
                   hubspot_actions.c.state == WAITING, hubspot_actions.c.due_at == due_at)
            .values(due_at=now + LEASE, updated_at=now)).rowcount)


def _recheck(guard, callback_id: str, check: dict, expires_at: datetime | None) -> None:
    commit = bool(check.pop("commit", True))
    now = guard.clock()

    def settle(conn: Connection, outcomes: list) -> None:
        # In the checks' transaction: the new outputs commit with the new decision.
        [decided] = outcomes
        values: dict[str, Any] = {"updated_at": now}
        if isinstance(decided, InvalidField):
            # The policy changed under the wait (a purpose was removed): say so in HubSpot.
            values.update(state=DECIDED, outputs=failure(decided)["outputFields"])
        elif decided.verdict == "defer" and decided.not_before is not None and (
                expires_at is None or decided.not_before + GRACE <= expires_at):
            values.update(state=WAITING, due_at=decided.not_before.astimezone(UTC),
                          decision_id=decided.decision_id)
        else:
            values.update(state=DECIDED, decision_id=decided.decision_id,
                          outputs={**outcome.fields(decided), "hs_execution_state": "SUCCESS"})
        conn.execute(hubspot_actions.update()
                     .where(hubspot_actions.c.callback_id == callback_id).values(**values))

    guard.check_many([check], commit=commit, then=settle, via=via.HUBSPOT_WORKFLOW)


def complete_decided(guard, api: Any, limit: int = BATCH) -> int:
    """Send the stored outputs of checked executions to HubSpot; return how many it took."""
    from connectors.hubspot import ApiError

    with read_only(guard.engine.connect()) as conn:
        rows = conn.execute(
            sa.select(hubspot_actions.c.callback_id, hubspot_actions.c.outputs,
                      hubspot_actions.c.expires_at, hubspot_actions.c.tries)
            .where(hubspot_actions.c.state == DECIDED)
            .order_by(hubspot_actions.c.updated_at).limit(limit)).all()
    done = 0
    for callback_id, outputs, expires_at, tries in rows:
        now = guard.clock()
        values: dict[str, Any] = {"updated_at": now, "tries": (tries or 0) + 1}
        try:
            api.post(COMPLETE_PATH.format(callback_id=callback_id), {"outputFields": outputs})
        except ApiError as exc:
            log.warning("hubspot callback %s not completed: %s", callback_id, exc)
            values["last_error"] = str(exc)[:2000]
            expires = _aware(expires_at)
            if not exc.retriable:
                values["state"] = FAILED
            elif expires is not None and now >= expires:
                values["state"] = EXPIRED
        else:
            values.update(state=COMPLETED, last_error=None)
            done += 1
        with guard.engine.begin() as conn:
            conn.execute(hubspot_actions.update().where(
                hubspot_actions.c.callback_id == callback_id,
                hubspot_actions.c.state == DECIDED).values(**values))
    return done


def _has(engine: sa.Engine, state: str) -> bool:
    with read_only(engine.connect()) as conn:
        return conn.execute(sa.select(hubspot_actions.c.callback_id)
                            .where(hubspot_actions.c.state == state).limit(1)).first() is not None


def _aware(at: datetime | None) -> datetime | None:
    """Read a stored time as UTC (SQLite hands it back without its zone)."""
    if at is None or at.tzinfo is not None:
        return at
    return at.replace(tzinfo=UTC)


def waits_jobs(app: Flask) -> list[HubSpotWaits]:
    """List the worker's job for HubSpot workflow actions: one when the action is enabled.

    The action is enabled by the app's secret (GUARD_HUBSPOT_WEBHOOK_SECRET); the
    job completes callbacks with the CRM's HubSpot credentials.
    """
    conf = services(app).crm
    if not conf.webhook_secret:
        return []
    if "hubspot" not in conf.systems:
        return [HubSpotWaits(None)]

    def factory():
        from guard.crm.sync import connector_from_env

        return connector_from_env("hubspot", conf.environ).api

    return [HubSpotWaits(factory)]
