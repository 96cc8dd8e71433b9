"""GET /metrics: who may read it, and what it counts (never person data in labels)."""

from __future__ import annotations

import json
import logging
from datetime import timedelta

import pytest
import requests

from connectors.base import Batch, SyncSummary
from guard import create_app
from guard.crm.sync import run_sync
from guard.store.tables import outbox
from tests.conftest import NOW, person
from tests.proxy.upstream import Serving, Upstream

from .conftest import samples

DECISIONS = "contact_guard_decisions_total"


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_a_metrics_or_admin_key(client, make_key):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer cg_nope"}).status_code == 401
    assert client.get("/metrics", headers=make_key("check")).status_code == 403
    for scopes in (("metrics",), ("admin",)):
        response = client.get("/metrics", headers=make_key(*scopes))
        assert response.status_code == 200
        assert response.mimetype == "text/plain"
        assert "contact_guard_policy_info" in response.get_data(as_text=True)


def test_metrics_can_be_switched_off(store):
    client = create_app({"GUARD": store, "TESTING": True, "METRICS": "false"}).test_client()
    assert client.get("/metrics").status_code == 404
    create_app({"GUARD": store, "TESTING": True})  # counting again for the next test


def test_decisions_are_counted_by_verdict_channel_category_and_rule(client, make_key, scrape,
                                                                   store):
    store.ingest([person("003A", "anna@example.com", phones=["+4915123456789"])])
    header = make_key("check", sender="oem", purpose="newsletter")
    before = scrape()
    for _ in range(2):
        client.post("/v1/check", json={"channel": "email", "to": "anna@example.com"},
                    headers=header)
    client.post("/v1/check", json={"channel": "email", "to": "anna@example.com",
                                   "commit": False}, headers=header)
    after = scrape()
    committed = {k: v - before.get(k, 0.0) for k, v in after.items()
                 if k[0] == DECISIONS and dict(k[1])["commit"] == "true"}
    assert sum(committed.values()) == 2
    [labels] = [dict(k[1]) for k, v in committed.items() if v]
    assert labels["channel"] == "email" and labels["category"] == "marketing"
    assert labels["verdict"] in ("allow", "block", "defer", "reroute")
    dry = sum(v - before.get(k, 0.0) for k, v in after.items()
              if k[0] == DECISIONS and dict(k[1])["commit"] == "false")
    assert dry == 1
    text = client.get("/metrics", headers=make_key("metrics")).get_data(as_text=True)
    for personal in ("anna@example.com", "4915123456789", "per_", "dec_", "003A"):
        assert personal not in text


def test_a_blocked_check_names_the_rule_that_blocked(client, make_key, scrape, store):
    store.ingest([{"type": "consent", "source": {"system": "crm", "id": "c1"},
                   "email": "opted@example.com", "channel": "*", "purpose": "*",
                   "status": "opt_out", "at": "2026-11-01T00:00:00Z"}])
    before = scrape()
    answer = client.post("/v1/check", json={"channel": "email", "to": "opted@example.com"},
                         headers=make_key("check", sender="oem", purpose="newsletter"))
    decision = answer.get_json()
    assert decision["verdict"] == "block"
    rule = next(r["rule"] for r in decision["reasons"] if r["effect"] == "block")
    labels = dict(verdict="block", channel="email", category="marketing", rule=rule,
                  commit="true")
    assert value(scrape(), DECISIONS, **labels) - value(before, DECISIONS, **labels) == 1


def test_requests_are_timed_by_route_in_seconds(client, make_key, scrape):
    header = make_key("check", sender="oem", purpose="newsletter")
    before = scrape()
    client.post("/v1/check", json={"channel": "email", "to": "x@example.com"}, headers=header)
    after = scrape()
    count = "contact_guard_request_duration_seconds_count"
    labels = dict(route="/v1/check", method="POST", status="2xx")
    assert value(after, count, **labels) - value(before, count, **labels) == 1
    total = "contact_guard_request_duration_seconds_sum"
    assert 0 < value(after, total, **labels) - value(before, total, **labels) < 30


def test_outbox_rows_by_state_and_the_oldest_due_row(store, client, scrape):
    with store.engine.begin() as conn:
        for index, (status, age) in enumerate([("held", 90), ("held", 10), ("unknown", 500)]):
            at = NOW - timedelta(seconds=age)
            conn.execute(outbox.insert().values(
                id=f"obx_{index}", idempotency_key=f"k{index}", provider="sendgrid",
                resource="mail", payload={}, recipients=[], checks=[], defaults={},
                decision_ids=[], status=status, not_before=at, created_at=at, updated_at=at))
    found = scrape()
    assert value(found, "contact_guard_outbox_rows", state="held") == 2
    assert value(found, "contact_guard_outbox_rows", state="unknown") == 1
    assert value(found, "contact_guard_outbox_rows", state="sent") == 0
    assert value(found, "contact_guard_outbox_oldest_due_seconds") == 90
    assert value(found, "contact_guard_store_up") == 1


def test_a_forward_is_counted_by_provider_and_outcome_and_logged(store, capsys):
    upstream = Upstream(script=[(503, {}, b"busy")] * 3)
    with Serving(upstream) as serving:
        app = create_app({"GUARD": store, "TESTING": True, "SENDGRID_URL": serving.url,
                          "SENDGRID_API_KEY": "SG.k", "FORWARD_ATTEMPTS": 1,
                          "FORWARD_WAIT": 0.001, "FORWARD_WAIT_MAX": 0.002})
        client = app.test_client()
        from guard.http import keys
        from guard.services import services

        _, send = keys.create_key(services(app).engine, "tool", ["send"], sender="oem",
                                  purpose="newsletter")
        _, reader = keys.create_key(services(app).engine, "prom", ["metrics"])
        metrics = {"Authorization": f"Bearer {reader}"}
        before = samples(client.get("/metrics", headers=metrics).get_data(as_text=True))
        mail = {"personalizations": [{"to": [{"email": "carl@example.com"}]}],
                "from": {"email": "news@example.com"}, "subject": "Hi",
                "content": [{"type": "text/plain", "value": "Hello"}]}
        headers = {"Authorization": f"Bearer {send}"}
        client.post("/v3/mail/send", json=mail, headers=headers)
        upstream.script.clear()
        capsys.readouterr()
        client.post("/v3/mail/send", json={**mail, "subject": "Hi again"}, headers=headers)
        after = samples(client.get("/metrics", headers=metrics).get_data(as_text=True))
    name = "contact_guard_upstream_forwards_total"
    for outcome, n in (("failed", 1), ("sent", 1)):
        assert value(after, name, provider="sendgrid", outcome=outcome) - \
            value(before, name, provider="sendgrid", outcome=outcome) == n
    sends = [json.loads(line) for line in capsys.readouterr().err.splitlines()
             if '"event": "send"' in line]
    assert [(s["provider"], s["outcome"], s["upstream_status"]) for s in sends] == [
        ("sendgrid", "sent", 202)]
    assert "carl@example.com" not in json.dumps(sends)


class _Connector:
    name = "hubspot"

    def __init__(self, fail: bool):
        self.fail = fail
        self.summary = SyncSummary(counts={"contacts": 1})

    def sync(self, bookmarks):
        yield Batch("contacts", [person("501", "dora@example.com", system="hubspot")],
                    {"after": "1"})
        if self.fail:
            raise requests.ConnectionError("api.hubapi.com: connection refused")


@pytest.mark.parametrize("fail", [False, True])
def test_a_sync_run_is_counted_and_logged(store, client, scrape, fail, capsys):
    before = scrape()
    capsys.readouterr()
    if fail:
        with pytest.raises(requests.ConnectionError):
            run_sync(store, _Connector(fail))
    else:
        run_sync(store, _Connector(fail))
    after = scrape()
    result = "error" if fail else "ok"
    runs = "contact_guard_crm_sync_runs_total"
    assert value(after, runs, crm="hubspot", result=result) - \
        value(before, runs, crm="hubspot", result=result) == 1
    errors = "contact_guard_crm_api_errors_total"
    assert value(after, errors, crm="hubspot") - value(before, errors, crm="hubspot") == fail
    assert value(after, "contact_guard_crm_sync_lag_seconds", crm="hubspot") >= 0
    [line] = [json.loads(line) for line in capsys.readouterr().err.splitlines()
              if '"event": "sync"' in line]
    assert line["crm"] == "hubspot" and line["result"] == result
    assert line["level"] == ("warning" if fail else "info")
    assert logging.getLogger("guard").level == logging.INFO


def test_flag_writes_waiting_and_the_last_good_sync_are_reported(store, client, scrape):
    from guard.store.tables import FLAGS_STREAM, sync_bookmarks

    store.ingest([person("003F", "fay@example.com"), person("003G", "gus@example.com")])
    with store.engine.begin() as conn:
        conn.execute(sync_bookmarks.insert().values(
            connector="salesforce", stream=FLAGS_STREAM, updated_at=NOW,
            value={"since": (NOW - timedelta(days=1)).isoformat()}))
        conn.execute(sync_bookmarks.insert().values(
            connector="hubspot", stream=FLAGS_STREAM, updated_at=NOW,
            value={"since": (NOW + timedelta(days=1)).isoformat()}))
    run_sync(store, _Connector(fail=False))
    found = scrape()
    assert value(found, "contact_guard_writeback_flags_pending", crm="salesforce") == 3
    assert value(found, "contact_guard_writeback_flags_pending", crm="hubspot") == 0
    assert value(found, "contact_guard_crm_sync_last_success_timestamp_seconds",
                 crm="hubspot") > 1.7e9
