"""contact_window: local hours and days, time zone resolution, DST-correct next open time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from policies import localtime
from policies.localtime import Hours
from policies.rules.base import ConfigError
from policies.rules.contact_window import ContactWindow
from tests.policies.helpers import (
    POLICY,
    Defaults,
    StandInPolicy,
    at,
    attempt,
    context,
    person,
    run,
    scope,
    src,
)

CALLS = ContactWindow(id="call-hours", scope=scope(channels=["call", "sms"]),
                      hours="08:00-21:00")
BERLIN = person(timezone="Europe/Berlin")
NEW_YORK = person(timezone="America/New_York")


def call(when: str, **kw):
    return attempt(purpose="service_reminder", channel="call", sender="service", when=at(when),
                   **kw)


def deferred_until(rule, profile, when, policy=POLICY, **kw):
    att = call(when, **kw) if "channel" not in kw else attempt(when=at(when), **kw)
    finding = run(rule, context(att, profile, now=at(when), policy=policy))
    if finding is None:
        return None
    assert (finding.rule, finding.effect) == (rule.id, "defer")
    return finding.not_before.isoformat()


@pytest.mark.parametrize(
    ("profile", "when", "expected"),
    [
        (BERLIN, "2026-11-23T09:00:00Z", None),
        (BERLIN, "2026-11-23T06:00:00Z", "2026-11-23T08:00:00+01:00"),
        (BERLIN, "2026-11-23T07:00:00Z", None),
        (BERLIN, "2026-11-23T19:59:59Z", None),
        (BERLIN, "2026-11-23T20:00:00Z", "2026-11-24T08:00:00+01:00"),
        (BERLIN, "2026-11-23T23:30:00Z", "2026-11-24T08:00:00+01:00"),
        (NEW_YORK, "2026-11-23T12:00:00Z", "2026-11-23T08:00:00-05:00"),
        (NEW_YORK, "2026-11-24T01:59:00Z", None),
        (NEW_YORK, "2026-11-24T02:00:00Z", "2026-11-24T08:00:00-05:00"),
        # Europe/Berlin springs forward on 2026-03-29 and falls back on 2026-10-25.
        (BERLIN, "2026-03-28T22:00:00Z", "2026-03-29T08:00:00+02:00"),
        (BERLIN, "2026-03-29T05:59:00Z", "2026-03-29T08:00:00+02:00"),
        (BERLIN, "2026-03-29T06:00:00Z", None),
        (BERLIN, "2026-10-24T21:00:00Z", "2026-10-25T08:00:00+01:00"),
        (BERLIN, "2026-10-25T06:30:00Z", "2026-10-25T08:00:00+01:00"),
        (BERLIN, "2026-10-25T07:00:00Z", None),
        # America/New_York springs forward on 2026-03-08 and falls back on 2026-11-01.
        (NEW_YORK, "2026-03-08T05:00:00Z", "2026-03-08T08:00:00-04:00"),
        (NEW_YORK, "2026-03-08T11:59:00Z", "2026-03-08T08:00:00-04:00"),
        (NEW_YORK, "2026-11-01T04:30:00Z", "2026-11-01T08:00:00-05:00"),
        (NEW_YORK, "2026-11-01T12:30:00Z", "2026-11-01T08:00:00-05:00"),
    ],
    ids=[
        "berlin-open", "berlin-early", "berlin-opens-exactly", "berlin-last-second",
        "berlin-closes-exactly", "berlin-after-midnight-utc", "new-york-early",
        "new-york-last-minute", "new-york-closed", "berlin-night-before-spring-forward",
        "berlin-spring-forward-morning", "berlin-spring-forward-open",
        "berlin-night-before-fall-back", "berlin-fall-back-morning", "berlin-fall-back-open",
        "new-york-spring-forward-midnight", "new-york-spring-forward-0759",
        "new-york-fall-back-midnight", "new-york-fall-back-0730",
    ],
)
def test_call_hours_truth_table(profile, when, expected):
    assert deferred_until(CALLS, profile, when) == expected


@pytest.mark.parametrize(
    ("hours", "days", "when", "expected"),
    [
        ("22:00-06:00", (), "2026-11-23T22:30:00Z", None),
        ("22:00-06:00", (), "2026-11-24T04:59:00Z", None),
        ("22:00-06:00", (), "2026-11-24T05:00:00Z", "2026-11-24T22:00:00+01:00"),
        ("08:00-21:00", ("mon", "tue", "wed", "thu", "fri"), "2026-11-28T10:00:00Z",
         "2026-11-30T08:00:00+01:00"),
        ("08:00-21:00", ("mon", "tue", "wed", "thu", "fri"), "2026-11-27T20:30:00Z",
         "2026-11-30T08:00:00+01:00"),
        ("22:00-06:00", ("mon", "tue", "wed", "thu", "fri"), "2026-11-27T23:00:00Z",
         "2026-11-30T00:00:00+01:00"),
        ("08:00-24:00", (), "2026-11-23T22:59:00Z", None),
        ("08:00-24:00", (), "2026-11-23T23:00:00Z", "2026-11-24T08:00:00+01:00"),
        ("02:30-05:00", (), "2026-03-29T00:00:00Z", "2026-03-29T03:00:00+02:00"),
        ("02:30-05:00", (), "2026-10-25T00:00:00Z", "2026-10-25T02:30:00+02:00"),
    ],
    ids=["night-window-open-before-midnight", "night-window-open-after-midnight",
         "night-window-closed-morning", "weekday-only-saturday", "weekday-only-friday-evening",
         "night-window-weekday-saturday-starts", "until-midnight-open",
         "until-midnight-closed", "starts-inside-spring-forward-gap",
         "starts-inside-repeated-fall-back-hour"],
)
def test_hours_and_days_truth_table(hours, days, when, expected):
    rule = ContactWindow(id="cw", hours=hours, days=days)
    assert deferred_until(rule, BERLIN, when) == expected


def test_message_names_local_time_zone_source_hours_and_next_open():
    finding = run(CALLS, context(call("2026-11-23T05:15:00Z"), BERLIN,
                                 now=at("2026-11-23T05:15:00Z")))
    assert finding.message == ("It is 06:15 on Monday 2026-11-23 in Europe/Berlin (their time "
                               "zone); phone calls go out 08:00-21:00, every day, so this "
                               "waits until Monday 2026-11-23 08:00.")


def test_zone_from_phone_number_when_person_has_none():
    profile = person(phones=("+12125550123",))
    when = "2026-11-23T12:00:00Z"  # 13:00 in Berlin, 07:00 in New York
    finding = run(CALLS, context(call(when, to="+12125550123"), profile, now=at(when)))
    assert finding.not_before.isoformat() == "2026-11-23T08:00:00-05:00"
    assert "America/New_York (their phone number's time zone)" in finding.message


def test_person_without_zone_or_phone_uses_policy_default():
    rule = ContactWindow(id="cw", hours="09:00-18:00")
    profile = person(phones=())
    when = "2026-11-23T07:00:00Z"
    found = run(rule, context(attempt(when=at(when)), profile, now=at(when)))
    assert found.not_before.isoformat() == "2026-11-23T09:00:00+01:00"
    assert "(the policy's default time zone)" in found.message
    no_default = StandInPolicy(defaults=Defaults(timezone=None))
    found = run(rule, context(attempt(when=at(when)), profile, now=at(when), policy=no_default))
    assert found.not_before.isoformat() == "2026-11-23T09:00:00+00:00"


def test_unknown_time_zone_name_falls_back_to_phone():
    profile = person(timezone="Mars/Olympus", phones=("+12125550123",))
    assert deferred_until(CALLS, profile, "2026-11-23T12:00:00Z",
                          to="+12125550123") == "2026-11-23T08:00:00-05:00"


@pytest.mark.parametrize(
    ("contact_hours", "when", "expected"),
    [
        ("09:00-18:00", "2026-11-23T07:30:00Z", "2026-11-23T09:00:00+01:00"),
        ("09:00-18:00", "2026-11-23T17:30:00Z", "2026-11-24T09:00:00+01:00"),
        ("09:00-18:00", "2026-11-23T10:00:00Z", None),
        ("22:00-23:00", "2026-11-23T06:00:00Z", "2026-11-23T08:00:00+01:00"),
        ("whenever", "2026-11-23T06:00:00Z", "2026-11-23T08:00:00+01:00"),
    ],
    ids=["before-persons-hours", "after-persons-hours", "inside-both",
         "disjoint-hours-rule-wins", "unreadable-hours-ignored"],
)
def test_persons_contact_hours_narrow_the_window(contact_hours, when, expected):
    profile = person(timezone="Europe/Berlin", contact_hours=contact_hours,
                     field_sources={"contact_hours": src("Contact", "003HRS")})
    assert deferred_until(CALLS, profile, when) == expected


def test_persons_hours_are_cited_as_evidence():
    profile = person(timezone="Europe/Berlin", contact_hours="09:00-18:00",
                     field_sources={"contact_hours": src("Contact", "003HRS")})
    finding = run(CALLS, context(call("2026-11-23T07:30:00Z"), profile,
                                 now=at("2026-11-23T07:30:00Z")))
    assert finding.evidence == (src("Contact", "003HRS"),)
    assert "the person's own hours 09:00-18:00" in finding.message


def test_calls_default_to_tcpa_hours_emails_are_unrestricted():
    rule = ContactWindow(id="cw")
    assert deferred_until(rule, NEW_YORK, "2026-11-24T03:00:00Z") == "2026-11-24T08:00:00-05:00"
    assert deferred_until(rule, NEW_YORK, "2026-11-24T03:00:00Z", channel="email") is None


def test_scheduled_attempt_is_judged_at_its_own_time():
    when = at("2026-11-23T06:00:00Z")  # 07:00 in Berlin now; the call is planned for 10:00
    planned = call("2026-11-23T09:00:00Z")
    assert run(CALLS, context(planned, BERLIN, now=when)) is None


@pytest.mark.parametrize(
    ("options", "key"),
    [({"hours": "8-21"}, "hours"), ({"hours": "08:00-25:00"}, "hours"),
     ({"hours": "09:00-09:00"}, "hours"), ({"days": ("funday",)}, "days")],
    ids=["not-hours", "hour-25", "empty-window", "unknown-day"],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ConfigError) as info:
        ContactWindow(id="cw", **options)
    assert info.value.key == key


ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]


@settings(max_examples=200, deadline=None)
@given(
    moment=st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                        timezones=st.just(UTC)),
    zone=st.sampled_from(ZONES),
    start=st.integers(0, 95).map(lambda q: q * 15),
    length=st.integers(1, 95).map(lambda q: q * 15),
    days=st.sets(st.integers(0, 6), min_size=1),
)
def test_next_open_is_open_and_nothing_earlier_is(moment, zone, start, length, days):
    hours = Hours(start, (start + length) % 1440 or 1440)
    tz = ZoneInfo(zone)
    days = tuple(sorted(days))
    opens = localtime.next_open(moment, tz, [hours], days)
    assert opens is not None
    assert opens >= moment
    assert localtime.is_open(opens, tz, [hours], days)
    if opens > moment:
        # The minute before the opening is still closed (openings are on whole minutes).
        assert not localtime.is_open(opens - timedelta(minutes=1), tz, [hours], days)
