"""Console figures: each page's p95 latency on a large store, through the app as a browser asks.

The store is the seeded population replicated to ``people`` people, plus
``decisions`` decision rows spread over the last 60 days, all in the ledger.
A signed-in session asks each page in turn (``rounds`` times after a warm-up),
so every figure is measured under the same load; the figure is the p95 of its
page's latencies. The overview keeps whole past days' counts for an hour, so
its figure is the warm one; its first load rides along.
"""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, timedelta

import sqlalchemy as sa

from bench.figure import Figure, Spread, Target, percentile
from bench.loader import replicate, store, template_store
from bench.population import CHANNELS, EPOCH, PURPOSES, SENDERS, email_of

PAGES = ("overview", "decisions", "decisions_filtered", "decisions_rule", "decisions_rare_rule",
         "decisions_no_match", "decisions_person", "decisions_deep", "decision",
         "people_search", "people_search_name", "people_search_words", "person", "outbox",
         "keys", "policy", "audit")
FIGURES = {f"console_page_p95_ms.{page}": ("ms", Target("<=", 100)) for page in PAGES}
# (people, decision rows, rounds per page) by run mode.
SCALE = {"quick": (2_000, 20_000, 20), "full": (1_000_000, 10_000_000, 50)}
_CHUNK = 20_000
_RULES = ("frequency-cap", "purchase-cooldown", "registered-campaigns", "consent",
          "relationship-owner", "duplicate-content")
_VERDICTS = ("allow", "allow", "allow", "block", "defer", "reroute")
# A rule that stopped 100 contacts in the 60 days (a debt collector's letter held back):
# its list pages through the rule's own index, not through the ledger.
RARE_RULE = "no-collection-without-invoice"
_RARE_COUNT = 100


def measure(size) -> list[Figure]:
    """Build the store at this run's scale, then time every page."""
    people, decisions, count = SCALE.get(size.mode, SCALE["quick"])
    return measure_at(people, decisions, count)


def measure_at(people: int, decisions: int, count: int, backend: str = "sqlite"
               ) -> list[Figure]:
    """Time every console page on a store of ``people`` and ``decisions`` rows."""
    from policies import default_policy_path, load_policy

    policy = load_policy(default_policy_path())
    with store(backend) as engine:
        replicate(template_store(policy), engine, people)
        person_ids = _fill_ledger(engine, decisions, people)
        client, cold_overview = _signed_in(engine, policy)
        paths = _paths(client, engine, person_ids, people)
        found = client.get(paths["people_search_words"]).get_data(as_text=True)
        if f"Person {people // 3}<" not in found:
            raise RuntimeError("the name search found nobody: it would time an empty answer")
        if "/console/decisions/dec_" not in client.get(paths["decisions_rare_rule"]).get_data(
                as_text=True):
            raise RuntimeError("the rare rule's list is empty: it would time an empty answer")
        timings: dict[str, list[float]] = {page: [] for page in PAGES}
        for page in PAGES:
            _get(client, paths[page])  # warm-up
        for _ in range(count):
            for page in PAGES:
                timings[page].append(_get(client, paths[page]))
    params = {"backend": backend, "people": people, "ledger_rows": decisions,
              "requests_per_page": count}
    figures = []
    for page in PAGES:
        name = f"console_page_p95_ms.{page}"
        absolute = {"p50_ms": round(percentile(timings[page], 50), 2),
                    "max_ms": round(max(timings[page]), 2)}
        if page == "overview":
            absolute["first_load_ms"] = round(cold_overview, 1)
        figures.append(Figure(name, *FIGURES[name],
                              value=round(percentile(timings[page], 95), 2),
                              params={**params, "path": paths[page]},
                              spread=Spread.of(timings[page], "ms"), absolute=absolute))
    return figures


def _fill_ledger(engine, decisions: int, people: int) -> list[str]:
    """Add ``decisions`` decision rows over the 60 days before the epoch; return some people."""
    from guard.store.tables import decision_rules, ledger
    from guard.store.tables import people as people_table

    with engine.connect() as conn:
        person_ids = list(conn.execute(sa.select(people_table.c.id).limit(1_000)).scalars())
    rnd = random.Random(11)
    start = EPOCH - timedelta(days=60)
    span = 60 * 24 * 3600
    insert, insert_rules = sa.insert(ledger), sa.insert(decision_rules)
    rare_every = max(decisions // _RARE_COUNT, 1)
    rows, rules = [], []
    for n in range(decisions):
        at = start + timedelta(seconds=span * n / max(decisions, 1))
        verdict = rnd.choice(_VERDICTS)
        rule = RARE_RULE if n % rare_every == rare_every - 1 else rnd.choice(_RULES)
        if rule == RARE_RULE:
            verdict = "block"
        person = rnd.choice(person_ids)
        attempt = {"channel": rnd.choice(CHANNELS), "to": email_of(rnd.randrange(people)),
                   "purpose": rnd.choice(PURPOSES), "sender": rnd.choice(SENDERS),
                   "campaign": None, "template": None, "product": None,
                   "at": at.isoformat()}
        reasons = [] if verdict == "allow" else [
            {"rule": rule, "kind": rule.replace("-", "_"), "effect": verdict,
             "message": f"Stopped by {rule}.", "evidence": []}]
        decision_id = f"dec_{int(at.timestamp() * 1000):012x}{n:016x}"
        rows.append({"id": decision_id, "person_id": person, "at": at,
                     "channel": attempt["channel"], "purpose": attempt["purpose"],
                     "sender": attempt["sender"], "verdict": verdict, "committed": True,
                     "attempt": attempt,
                     "decision": {"decision_id": decision_id, "verdict": verdict,
                                  "person": person, "reasons": reasons, "reroute": None,
                                  "not_before": None, "monitored": [],
                                  "policy_version": "sha256:bench"},
                     "policy_version": "sha256:bench", "created_at": at})
        if reasons:
            rules.append({"rule": rule, "at": at, "decision_id": decision_id})
        if len(rows) == _CHUNK:
            with engine.begin() as conn:
                conn.execute(insert, rows)
                conn.execute(insert_rules, rules)
            rows, rules = [], []
    if rows:
        with engine.begin() as conn:
            conn.execute(insert, rows)
            if rules:
                conn.execute(insert_rules, rules)
    if engine.dialect.name == "postgresql":
        # What autovacuum does on a store in service: statistics to plan from, and the
        # visibility map that lets an index answer without reading the table.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            for table in ("ledger", "decision_rules", "people", "person_words", "identities"):
                conn.exec_driver_sql(f"VACUUM ANALYZE {table}")
    else:
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")  # SQLite plans from statistics too
    return person_ids


def _signed_in(engine, policy):
    """An app on the store and a test client signed in with an admin key."""
    from guard import create_app
    from guard.checks.service import Guard
    from guard.http import keys

    guard = Guard(engine, policy, clock=lambda: EPOCH)
    app = create_app({"GUARD": guard, "TESTING": True})
    _, secret = keys.create_key(engine, "bench admin", ["admin"])
    client = app.test_client()
    form = client.get("/console/login").get_data(as_text=True)
    token = re.search(r'name="csrf" value="([^"]+)"', form).group(1)
    answer = client.post("/console/login", data={"key": secret, "csrf": token})
    if answer.status_code != 302:
        raise RuntimeError(f"sign-in failed: {answer.status_code}")
    cold = _get(client, "/console/")
    return client, cold


def _paths(client, engine, person_ids: list[str], people: int) -> dict[str, str]:
    """The URL each figure asks: lists, a deep page, a filtered list, one of each item."""
    from guard.console.decisions import DECIDED
    from guard.store.tables import ledger

    with engine.connect() as conn:
        deep = conn.execute(sa.select(ledger.c.at, ledger.c.id)
                            .where(DECIDED)
                            .order_by(ledger.c.at, ledger.c.id).limit(1)
                            .offset(1_000)).first()
        one = conn.execute(sa.select(ledger.c.id).where(DECIDED)
                           .order_by(ledger.c.at.desc()).limit(1)).scalar()
    from guard.console.decisions import encode_cursor

    since = (EPOCH - timedelta(days=7)).astimezone(UTC).date().isoformat()
    return {
        "overview": "/console/",
        "decisions": "/console/decisions",
        "decisions_filtered": f"/console/decisions?verdict=block&channel=email&since={since}",
        "decisions_rule": "/console/decisions?rule=consent&verdict=block",
        "decisions_rare_rule": f"/console/decisions?rule={RARE_RULE}",
        # Filters that no decision matches together (the bench never sends a push): the
        # page tests one stretch of the ledger and offers the next.
        "decisions_no_match": "/console/decisions?channel=push&purpose=safety_recall",
        # The person with about a tenth of a percent of the ledger, their blocks.
        "decisions_person": f"/console/decisions?person={person_ids[0]}&verdict=block",
        "decisions_deep": "/console/decisions?after=" + encode_cursor(deep.at, deep.id),
        "decision": f"/console/decisions/{one}",
        "people_search": "/console/people?q=" + email_of(7),
        # A name nobody has (a typo), and a first name everyone has beside a rare surname.
        "people_search_name": "/console/people?q=zzqx",
        "people_search_words": f"/console/people?q=person+{people // 3}",
        "person": f"/console/people/{person_ids[0]}",
        "outbox": "/console/outbox",
        "keys": "/console/keys",
        "policy": "/console/policy",
        "audit": "/console/audit",
    }


def _get(client, path: str) -> float:
    start = time.perf_counter()
    answer = client.get(path)
    elapsed = (time.perf_counter() - start) * 1000
    if answer.status_code != 200:
        raise RuntimeError(f"{path}: {answer.status_code} {answer.get_data(as_text=True)[:200]}")
    return elapsed
