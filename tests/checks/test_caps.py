"""Caps hold across processes: concurrent committed checks never exceed the cap."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

from guard.checks.service import Guard
from guard.store.engine import make_engine
from policies import parse_policy
from tests.conftest import accepted, person

from .conftest import CAP, CAP_POLICY

PROCESSES = 4
CHECKS_EACH = 4


def send_newsletters(url: str, start_at: float) -> list[str]:
    """In a fresh process: wait for the common start, then commit checks as fast as possible."""
    engine = make_engine(url)
    guard = Guard(engine, parse_policy([("cap.yaml", CAP_POLICY)]))
    guard.erasure_salt()
    time.sleep(max(0.0, start_at - time.time()))
    verdicts = [
        guard.check({"channel": "email", "to": "anna@example.com", "purpose": "newsletter",
                     "sender": "oem"}).verdict
        for _ in range(CHECKS_EACH)
    ]
    engine.dispose()
    return verdicts


def test_concurrent_processes_allow_exactly_the_cap(db_url, engine):
    guard = Guard(engine, parse_policy([("cap.yaml", CAP_POLICY)]))
    accepted(guard.ingest([person("003A", "anna@example.com")]))
    guard.erasure_salt()
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        start_at = time.time() + 3
        results = pool.starmap(send_newsletters, [(db_url, start_at)] * PROCESSES)
    verdicts = Counter(v for result in results for v in result)
    assert verdicts == {"allow": CAP, "block": PROCESSES * CHECKS_EACH - CAP}
    view = guard.person(guard.resolve("anna@example.com"), ledger_limit=100)
    assert sum(1 for e in view["ledger"] if e["verdict"] == "allow") == CAP
