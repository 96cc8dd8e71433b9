"""service_due: reminders only once the service is nearly due, by date or mileage."""

from __future__ import annotations

from datetime import date

import pytest

from policies.model import Service
from policies.rules.base import Duration
from policies.rules.service_due import ServiceDue
from tests.policies.helpers import NOW, at, attempt, context, person, run, scope, src

SCOPE = scope(purposes=["service_reminder"])


def visit(when="2026-05-02T09:00:00", mileage=32000, due=date(2027, 5, 2), due_miles=None,
          asset="WVW-1", ref="SV-1"):
    return Service(asset=asset, at=at(when), mileage=mileage, next_due=due,
                   next_due_mileage=due_miles, source=src("ServiceAppointment", ref, "dms"))


def rule(effect="block", **options):
    return ServiceDue(id="service-due", effect=effect, scope=SCOPE,
                      lead_days=Duration(days=30), **options)


def reminder():
    return attempt(purpose="service_reminder", sender="service")


@pytest.mark.parametrize(
    ("services", "now", "held"),
    [
        ((), "2026-11-23T10:00:00", False),
        ((visit(),), "2026-11-23T10:00:00", True),
        ((visit(),), "2027-04-01T23:59:59", True),
        ((visit(),), "2027-04-02T00:00:00", False),
        ((visit(due=None, due_miles=47000),), "2026-11-23T10:00:00", True),
        ((visit(due=None, due_miles=39500),), "2026-11-23T10:00:00", False),
        ((visit(due=date(2027, 5, 2), due_miles=39500),), "2026-11-23T10:00:00", False),
        ((visit(due=None, due_miles=47000, mileage=None),), "2026-11-23T10:00:00", False),
        ((visit(), visit(asset="AUDI-2", due=date(2026, 12, 1), ref="SV-2")),
         "2026-11-23T10:00:00", False),
        ((visit(due=date(2026, 12, 1), when="2025-12-01T09:00:00"),
          visit(when="2026-05-02T09:00:00")), "2026-11-23T10:00:00", True),
    ],
    ids=["no-service-record", "due-next-year", "day-before-window", "window-opens",
         "mileage-far-off", "mileage-nearly-due", "mileage-due-before-date",
         "no-reading-to-estimate", "another-car-is-due", "latest-visit-wins"],
)
def test_truth_table(services, now, held):
    finding = run(rule(), context(reminder(), person(services=services), now=at(now)))
    assert (finding is not None) == held
    if held:
        assert (finding.rule, finding.kind, finding.effect) == (
            "service-due", "service_due", "block")


def test_message_names_visit_due_date_and_window():
    finding = run(rule(), context(reminder(), person(services=(visit(),))))
    assert finding.message == (
        "Last service of WVW-1 on 2026-05-02 at 32,000 miles; next due 2027-05-02; reminders "
        "start 30 days or 1,000 miles before, so not before 2027-04-02.")
    assert finding.evidence == (src("ServiceAppointment", "SV-1", "dms"),)


def test_defer_waits_for_the_due_window():
    finding = run(rule("defer"), context(reminder(), person(services=(visit(),))))
    assert finding.effect == "defer"
    assert finding.not_before.isoformat() == "2027-04-02T00:00:00+00:00"
    later = finding.not_before
    assert run(rule("defer"), context(reminder(), person(services=(visit(),)), now=later)) is None


def test_mileage_estimate_sets_the_window():
    # 12,000 miles a year: from 32,000 on 2026-05-02, 46,000 (47,000 less the
    # 1,000-mile lead) is reached 14,000 miles = 1 1/6 years later.
    service = visit(due=None, due_miles=47000)
    finding = run(rule("defer"), context(reminder(), person(services=(service,))))
    assert finding.not_before.date() == date(2027, 7, 2)
    assert "due at 47,000 miles (about 38,700 now)" in finding.message
    assert NOW < finding.not_before
