"""The CRM jobs of the worker: one per configured CRM, each with its own connector."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from flask import Flask

from connectors.base import Connector
from guard.crm.settings import CrmSettings
from guard.crm.sync import connector_errors, connector_from_env, run_sync
from guard.crm.webhooks import process_inbox
from guard.crm.writeback import push_tasks, write_flags, write_preferences
from guard.services import services

log = logging.getLogger(__name__)


class CrmJob:
    """One CRM in the worker: webhooks and write-back every cycle, a sync on a schedule.

    The job keeps one connector for its lifetime: HubSpot's echo suppression
    (our own flag writes coming back) lives in the connector's memory.
    """

    def __init__(self, system: str, sync_interval: float, factory: Callable[[], Connector],
                 clock: Callable[[], float] = time.monotonic):
        self.system = system
        self.sync_interval = sync_interval
        self.factory = factory
        self.clock = clock
        self.connector: Connector | None = None
        self.last_sync: float | None = None
        self.__name__ = f"crm:{system}"

    def __call__(self, app: Flask) -> None:
        guard = services(app).guard
        if self.connector is None:
            try:
                self.connector = self.factory()
            except connector_errors() as exc:
                log.error("%s: cannot connect: %s", self.system, exc)
                return
        connector = self.connector
        if hasattr(connector, "webhook_events"):
            self._step("webhooks", lambda: process_inbox(guard, connector))
        if self.last_sync is None or self.clock() - self.last_sync >= self.sync_interval:
            self.last_sync = self.clock()
            self._step("sync", lambda: self._sync(guard, connector))
        self._step("flags", lambda: write_flags(guard, connector))
        self._step("tasks", lambda: push_tasks(guard, connector))
        self._step("preferences", lambda: write_preferences(guard, connector))

    def _sync(self, guard, connector: Connector) -> None:
        summary, rejected = run_sync(guard, connector)
        if summary.stopped:
            log.warning("%s sync stopped early: %s", self.system, summary.stopped)
        log.info("%s sync: %s records, %d rejected", self.system,
                 sum(summary.counts.values()), len(rejected))

    def _step(self, name: str, step: Callable[[], Any]) -> None:
        # One failing step (a CRM outage, a quota) must not stop the others.
        try:
            step()
        except connector_errors() as exc:
            log.error("%s %s failed: %s", self.system, name, exc)


def crm_jobs(settings: CrmSettings) -> list[CrmJob]:
    """Build one job per configured CRM; each connects on its first run."""
    return [CrmJob(system, settings.sync_interval,
                   lambda s=system: connector_from_env(s, settings.environ))
            for system in settings.systems]
