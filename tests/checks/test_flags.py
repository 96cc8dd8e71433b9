"""Flags a rep reads follow the calendar: a cool-down or contract that ran out leaves the record."""

from __future__ import annotations

from datetime import timedelta

from guard import create_app, worker
from guard.checks.service import Guard
from tests.conftest import NOW, Clock, accepted, person, purchase


def run_worker_jobs(guard: Guard) -> None:
    app = create_app({"GUARD": guard, "TESTING": True, "WARN_MISSING_PROVIDERS": False})
    worker.refresh_flags(app)


def test_a_cooldown_flag_leaves_when_the_cooldown_ends(engine, policy):
    clock = Clock()
    guard = Guard(engine, policy, clock=clock)
    accepted(guard.ingest([person("003A", "anna@example.com"),
                           purchase("SO-1", "anna@example.com", at="2026-11-21T10:00:00Z")]))
    anna = guard.resolve("anna@example.com")
    before = guard.person(anna)["flags"]
    assert before["status"] == "Caution"
    assert before["flags"] == ["In purchase cool-down until 2026-12-21"]

    clock.now = NOW + timedelta(days=10)
    run_worker_jobs(guard)
    assert guard.person(anna)["flags"]["flags"] == before["flags"], "still cooling down"

    clock.now = NOW + timedelta(days=29)
    run_worker_jobs(guard)
    after = guard.person(anna)["flags"]
    assert (after["status"], after["flags"]) == ("Clear", [])
    assert after["updated"] == clock.now.isoformat()
    # Write-back reads people changed since its last run: the refreshed person is among them.
    assert [p["id"] for p in guard.flag_updates(since=NOW + timedelta(days=1))] == [anna]


def test_a_contract_flag_stays_through_its_last_day(engine, policy):
    clock = Clock()
    guard = Guard(engine, policy, clock=clock)
    accepted(guard.ingest([
        {"type": "account", "source": {"system": "salesforce", "id": "001N"},
         "name": "Northwind"},
        person("003E", "eva@northwind.example", account={"system": "salesforce", "id": "001N"}),
        {"type": "contract", "source": {"system": "salesforce", "id": "800C"},
         "account": {"system": "salesforce", "id": "001N"}, "status": "active",
         "start": "2024-01-01", "end": "2026-11-30"},
    ]))
    eva = guard.resolve("eva@northwind.example")
    flag = "Existing customer: Northwind contract until 2026-11-30"
    assert guard.person(eva)["flags"]["flags"] == [flag]

    clock.now = NOW.replace(day=30, hour=23)
    run_worker_jobs(guard)
    assert guard.person(eva)["flags"]["flags"] == [flag]

    clock.now = NOW.replace(day=30) + timedelta(days=1)
    run_worker_jobs(guard)
    assert guard.person(eva)["flags"] == {**guard.person(eva)["flags"], "status": "Clear",
                                          "flags": []}


def test_people_whose_flags_never_lapse_are_not_rewritten(engine, policy):
    clock = Clock()
    guard = Guard(engine, policy, clock=clock)
    accepted(guard.ingest([person("003B", "ben@example.com")]))
    ben = guard.resolve("ben@example.com")
    before = guard.person(ben)["flags"]
    clock.now = NOW + timedelta(days=400)
    run_worker_jobs(guard)
    assert guard.person(ben)["flags"] == before
    assert guard.flag_updates(since=NOW + timedelta(days=1)) == []


def test_a_changed_policy_reflags_everyone_once_in_chunks(engine, policy, tmp_path):
    # A CRM admin lengthens the cool-down: reps must read the new policy's end date on
    # people whose data did not change, not only on the next person a sync touches.
    from guard.checks import flags
    from policies import default_policy_path, load_policy

    guard = Guard(engine, policy, clock=lambda: NOW)
    accepted(guard.ingest([
        person("003A", "anna@example.com"), person("003B", "ben@example.com"),
        person("003C", "cleo@example.com"),
        purchase("SO-1", "anna@example.com", at="2026-11-21T10:00:00Z"),
        purchase("SO-2", "cleo@example.com", at="2026-11-01T10:00:00Z")]))
    anna, ben, cleo = (guard.resolve(f"{n}@example.com") for n in ("anna", "ben", "cleo"))
    assert guard.person(cleo)["flags"]["flags"] == ["In purchase cool-down until 2026-12-01"]
    # Under the policy the flags were made with, the sweep changes nobody and then stops.
    assert [flags.refresh_for_policy(engine, policy, NOW, limit=2) for _ in range(3)] == \
        [0, 0, 0]
    assert guard.flag_updates(since=NOW) == []

    longer = tmp_path / "policy.yaml"
    longer.write_text(default_policy_path().read_text().replace("days: 30d", "days: 60d", 1))
    changed = load_policy(longer)
    later = NOW + timedelta(hours=1)
    counts = [flags.refresh_for_policy(engine, changed, later, limit=2) for _ in range(3)]
    assert sum(counts) == 2 and counts[-1] == 0  # two calls of two cover three people
    assert guard.person(anna)["flags"]["flags"] == ["In purchase cool-down until 2027-01-20"]
    assert guard.person(cleo)["flags"]["flags"] == ["In purchase cool-down until 2026-12-31"]
    assert guard.person(ben)["flags"]["status"] == "Clear"
    # Write-back sees exactly the two people whose lines changed.
    assert sorted(p["id"] for p in guard.flag_updates(since=NOW)) == sorted([anna, cleo])
    assert flags.refresh_for_policy(engine, changed, later, limit=2) == 0
