"""The policy page: check, test, simulate and publish a draft; stored versions; file mode."""

from __future__ import annotations

import re
from pathlib import Path

from markupsafe import escape

from guard import create_app
from guard.services import services
from policies import default_policy_path

from .conftest import csrf_of

DEFAULT = default_policy_path().read_text()
# A rule whose condition and message would run script if the page did not escape them.
NO_NEWSLETTERS = DEFAULT.rstrip("\n") + '''

  - id: no-email-newsletters
    kind: custom
    purposes: [newsletter]
    condition: 'attempt.channel == "email" && "<script>" != "</script>"'
    effect: block
    message: "No newsletters by e-mail <script>alert(1)</script> for now."
'''
NEWSLETTER = {"channel": "email", "to": "anna@example.com", "purpose": "newsletter",
              "sender": "oem", "commit": False}


def act(client, action: str, draft: str, **extra):
    html = client.get("/console/policy").get_data(as_text=True)
    return client.post("/console/policy", data={"csrf": csrf_of(html), "action": action,
                                                "policy": draft, **extra})


def text(response) -> str:
    return response.get_data(as_text=True)


def test_the_page_lists_the_rules_in_force_and_holds_the_policy(admin):
    html = text(admin.get("/console/policy"))
    assert "purchase-cooldown" in html and "The shipped default policy" in html
    assert '<textarea id="policy" name="policy"' in html
    assert str(escape(DEFAULT[:200])) in html


def test_check_lists_every_problem_by_line(admin):
    draft = DEFAULT.replace("kind: purchase_cooldown", "kind: purchase_cooldwn", 1)
    draft = draft.rstrip("\n") + "\n  - id: broken\n    kind: custom\n    condition: 'person.'\n"
    response = act(admin, "check", draft)
    assert response.status_code == 422
    html = text(response)
    line = draft.split("\n").index("    kind: purchase_cooldwn") + 1
    problems = re.findall(r"<li>line (\d+): ", html)
    assert str(line) in problems and len(problems) >= 2
    assert "nothing was published" not in html
    assert "No problems" in text(act(admin, "check", DEFAULT))


def test_a_malformed_draft_is_a_message_not_an_error(admin):
    for draft in ("rules: [", "- just\n- a list", "\x00", ""):
        response = act(admin, "check", draft)
        assert response.status_code in (200, 422), draft
        assert "text/html" in response.content_type


def test_test_runs_the_example_cases_against_the_draft(admin):
    html = text(act(admin, "test", DEFAULT))
    assert "PASS" in html and re.search(r"\d+ passed, 0 failed", html)
    weaker = DEFAULT.replace("kind: purchase_cooldown",
                             "kind: purchase_cooldown\n    mode: monitor", 1)
    html = text(act(admin, "test", weaker))
    assert "FAIL" in html and not re.search(r" 0 failed", html)


def test_simulate_counts_verdicts_before_and_after_and_lists_changes(admin, world):
    response = act(admin, "simulate", NO_NEWSLETTERS, days="30")
    html = text(response)
    assert response.status_code == 200
    assert "Replayed 3 decisions" in html and "1 would change" in html
    changed = re.findall(r'<td><a href="/console/decisions/(dec_[0-9a-f]+)">', html)
    assert changed == [world["decisions"][1].decision_id]  # Bob's newsletter gains the rule
    assert "block (open-complaint, no-email-newsletters)" in html
    assert "<svg" in html
    assert text(act(admin, "simulate", DEFAULT, days="0")).count("days: a whole number") == 1


def test_simulate_on_the_page_replays_only_the_newest_decisions(admin, world, monkeypatch):
    from guard.console import policy

    monkeypatch.setattr(policy, "SIMULATE_MAX_DECISIONS", 2)
    html = text(act(admin, "simulate", NO_NEWSLETTERS, days="30"))
    assert "Replayed 2 decisions since" in html and "replays the newest 2" in html


def test_publish_stores_a_version_every_replica_follows_and_restore_brings_back(
        app, admin, store, world):
    replica = create_app({"GUARD": _twin(store), "TESTING": True, "POLICY_POLL_SECONDS": 0})
    checker = replica.test_client()
    assert services(replica).guard.check(NEWSLETTER, commit=False).verdict == "allow"
    response = act(admin, "publish", NO_NEWSLETTERS)
    assert response.status_code == 302
    html = text(admin.get(response.headers["Location"]))
    assert "Published version 1" in html and "no-email-newsletters" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script>alert" not in html
    checker.get("/healthz")  # any request: the replica looks for a new version first
    decision = services(replica).guard.check(NEWSLETTER, commit=False)
    assert (decision.verdict, decision.rules) == ("block", ("no-email-newsletters",))
    assert decision.policy_version == services(app).guard.policy.version
    act(admin, "publish", DEFAULT)
    html = text(admin.get("/console/policy"))
    token = csrf_of(html)
    response = admin.post("/console/policy/versions/1/restore", data={"csrf": token})
    assert response.status_code == 302
    checker.get("/healthz")
    assert services(replica).guard.check(NEWSLETTER, commit=False).verdict == "block"
    audit = text(admin.get("/console/audit"))
    assert audit.count("policy.publish") == 2 and "policy.restore" in audit


def _twin(store):
    """Another process's Guard on the same store (a replica)."""
    from guard.checks.service import Guard

    return Guard(store.engine, store.policy, clock=store.clock)


def test_a_draft_with_problems_is_never_published(app, admin):
    before = services(app).guard.policy.version
    response = act(admin, "publish", "rules: [")
    assert response.status_code == 422 and "nothing was published" in text(response)
    assert services(app).guard.policy.version == before


def test_a_read_only_key_checks_but_cannot_publish_or_restore(app, reader):
    assert "No problems" in text(act(reader, "check", DEFAULT))
    response = act(reader, "publish", NO_NEWSLETTERS)
    assert response.status_code == 403
    assert "no-email-newsletters" not in {r.id for r in services(app).guard.policy.rules}


def test_with_policy_files_publish_shows_the_change_and_writes_nothing(store, make_key,
                                                                       tmp_path):
    from .conftest import sign_in

    path = tmp_path / "policy.yaml"
    path.write_text(DEFAULT)
    (tmp_path / "examples").mkdir()
    app = create_app({"GUARD": store, "TESTING": True, "POLICY": str(path)})
    client = app.test_client()
    from guard.http import keys

    _, secret = keys.create_key(store.engine, "files admin", ["admin"])
    sign_in(client, secret)
    html = text(act(client, "publish", NO_NEWSLETTERS))
    assert "make this change to" in html and "+  - id: no-email-newsletters" in html
    assert Path(path).read_text() == DEFAULT
    assert "Restore" not in html


def test_a_worker_follows_a_published_version_each_cycle(store, admin):
    from guard import worker

    worker_app = create_app({"GUARD": _twin(store), "TESTING": True, "POLICY_POLL_SECONDS": 0})
    assert act(admin, "publish", NO_NEWSLETTERS).status_code == 302
    worker.run(worker_app, once=True)
    assert "no-email-newsletters" in {r.id for r in services(worker_app).guard.policy.rules}


def test_a_stored_version_that_no_longer_loads_leaves_the_policy_in_force(store, caplog):
    from guard.console import versions

    app = create_app({"GUARD": _twin(store), "TESTING": True, "POLICY_POLL_SECONDS": 0})
    before = services(app).guard.policy.version
    with store.engine.begin() as conn:
        versions.publish(conn, "rules: [", "sha256:broken", "key_x", "someone")
    app.test_client().get("/healthz")
    assert services(app).guard.policy.version == before
    assert caplog.text.count("has problems; keeping") == 1
    app.test_client().get("/healthz")
    assert caplog.text.count("has problems; keeping") == 1  # said once
    assert services(app).policies.failed == "1"


def test_with_a_policy_folder_the_draft_is_one_of_its_files(store, tmp_path):
    from guard.http import keys

    from .conftest import sign_in

    (tmp_path / "a-main.yaml").write_text(DEFAULT)
    (tmp_path / "b-extra.yaml").write_text("purposes:\n  spring_sale: marketing\n")
    app = create_app({"GUARD": store, "TESTING": True, "POLICY": str(tmp_path)})
    client = app.test_client()
    _, secret = keys.create_key(store.engine, "folder admin", ["admin"])
    sign_in(client, secret)
    html = text(client.get("/console/policy?file=b-extra.yaml"))
    assert '<option selected>b-extra.yaml</option>' in html and "spring_sale" in html
    page = client.get("/console/policy").get_data(as_text=True)
    response = client.post("/console/policy", data={
        "csrf": csrf_of(page), "action": "check", "file": "b-extra.yaml",
        "policy": "purposes:\n  spring_sale: nonsense\n"})
    assert response.status_code == 422 and "<li>line 2: " in text(response)
    response = client.post("/console/policy", data={
        "csrf": csrf_of(page), "action": "publish", "file": "b-extra.yaml",
        "policy": "purposes:\n  spring_sale: sales\n"})
    assert "+  spring_sale: sales" in text(response)
    assert (tmp_path / "b-extra.yaml").read_text() == "purposes:\n  spring_sale: marketing\n"
