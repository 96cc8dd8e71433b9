"""The engine's fast paths give what the plain definitions give."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from policies import (
    Decision,
    Finding,
    combine,
    default_policy_path,
    load_policy,
    localtime,
    phrases,
)
from policies.localtime import Hours
from policies.model import VERDICT_RANK
from policies.rules.base import Context
from policies.rules.contact_window import _person_hours
from policies.rules.frequency_cap import FrequencyCap
from tests.policies.helpers import POLICY, attempt, context, person, run, scope, touch

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]
moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                       timezones=st.just(UTC))
effects = st.sampled_from(list(VERDICT_RANK))


@settings(max_examples=200, deadline=None)
@given(moments, st.sampled_from(ZONES))
def test_clock_and_weekday_match_strftime(moment, zone):
    local = moment.astimezone(ZoneInfo(zone))
    assert phrases.clock(local) == f"{local:%H:%M}"
    assert phrases.weekday(local) == f"{local:%A}"


def _next_open_plain(moment, zone, windows, days):
    """The candidate search without the per-day memo (the code before it)."""
    if localtime.is_open(moment, zone, windows, days):
        return moment.astimezone(zone)
    starts = sorted({datetime.min.time(), *(w.opens for w in windows)})
    local_day = moment.astimezone(zone).date()
    for offset in range(9):
        on = local_day + timedelta(days=offset)
        candidates = {localtime._first_real(datetime.combine(on, s, tzinfo=zone), zone)
                      for s in starts}
        for candidate in sorted(candidates):
            if candidate > moment and localtime.is_open(candidate, zone, windows, days):
                return candidate.astimezone(zone)
    return None


@settings(max_examples=300, deadline=None)
@given(moments, st.sampled_from(ZONES), st.integers(0, 1439), st.integers(1, 1438),
       st.lists(st.integers(0, 6), max_size=6, unique=True))
def test_remembered_openings_give_the_plain_answer(moment, zone, start, length, days):
    zone = ZoneInfo(zone)
    windows = (Hours(start, (start + length) % 1440 or 1440),)
    days = tuple(sorted(days))
    expected = _next_open_plain(moment, zone, windows, days)
    # Twice: the second call answers from the memo.
    assert localtime.next_open(moment, zone, windows, days) == expected
    assert localtime.next_open(moment, zone, list(windows), days) == expected
    if expected is not None:
        assert localtime.next_open(moment, zone, windows, days).utcoffset() == \
            expected.utcoffset()


def test_zone_lookups_are_remembered_and_agree():
    assert localtime.zone_named("Europe/Berlin") is ZoneInfo("Europe/Berlin")
    assert localtime.zone_named("Europe/Berlin") is ZoneInfo("Europe/Berlin")
    assert localtime.zone_named("Mars/Olympus") is None
    assert localtime.zone_named("Mars/Olympus") is None
    assert localtime.phone_zone("+12125550123") == localtime.phone_zone("+12125550123") \
        == ZoneInfo("America/New_York")
    assert localtime.phone_zone("not a number") is None


def test_persons_hours_that_are_not_text_are_ignored():
    assert _person_hours("09:00-17:00") == Hours(540, 1020)
    assert _person_hours("nine to five") is None
    assert _person_hours(["09:00-17:00"]) is None
    assert _person_hours(None) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(effects, st.booleans()), max_size=5),
       st.lists(effects, max_size=2))
def test_combine_picks_the_most_restrictive_as_max_by_rank(found, watched):
    at = datetime(2026, 11, 23, 9, tzinfo=UTC)
    reasons = [Finding(rule=f"r{i}", kind="custom", effect=effect, message=f"m{i}",
                       reroute={"owner": f"o{i}"} if effect == "reroute" else None,
                       not_before=at + timedelta(hours=i) if effect == "defer" else None,
                       notify=f"o{i}" if notify else None)
               for i, (effect, notify) in enumerate(found)]
    monitored = [Finding(rule=f"w{i}", kind="custom", effect=e, message="w")
                 for i, e in enumerate(watched)]
    decision = combine(reasons, monitored, person="p1", policy_version="v")
    assert type(decision) is Decision
    assert decision.verdict == max((f.effect for f in reasons), key=VERDICT_RANK.__getitem__,
                                   default="allow")
    assert decision.monitored == tuple(monitored)
    assert decision.decision_id is None
    assert decision == Decision(
        verdict=decision.verdict, person="p1", reasons=decision.reasons,
        reroute=decision.reroute, not_before=decision.not_before,
        monitored=tuple(monitored), policy_version="v", notify=decision.notify)


def test_finding_built_by_a_rule_equals_one_built_plainly():
    cap = FrequencyCap(id="cap", max=1, scope=scope(categories=["marketing"]))
    ctx = context(attempt(purpose="newsletter"),
                  ledger=[touch("2026-11-20T09:00:00Z", ref="T1")])
    finding = run(cap, ctx)
    assert type(finding) is Finding
    assert finding == Finding(rule="cap", kind="frequency_cap", effect="block",
                              message=finding.message, evidence=finding.evidence)


def test_context_knows_category_and_contacts():
    ledger = (touch("2026-11-20T09:00:00Z"), touch("2026-11-21T09:00:00Z", verdict="block"))
    ctx = Context(attempt=attempt(purpose="trade_in"), profile=person(), ledger=ledger,
                  policy=POLICY, now=datetime(2026, 11, 23, tzinfo=UTC))
    assert ctx.category == "sales"
    assert ctx.campaigns == {}
    assert ctx.contacts == (ledger[0],)
    assert ctx.contacts is ctx.contacts
    told = Context(attempt(purpose="trade_in"), person(), (), POLICY, ctx.now, None, "other")
    assert told.category == "other"


def test_scoped_rules_are_remembered_and_match_the_scope():
    policy = load_policy(default_policy_path())
    for purpose in ("newsletter", "trade_in", "transactional", "collections", "unheard_of"):
        for channel in ("email", "call"):
            att = attempt(purpose=purpose, channel=channel, sender="dealer:munich")
            category = policy.category(purpose)
            expected = tuple(r for r in policy.rules if r.in_scope(att, category))
            assert policy.scoped(att) == (category, expected)
            assert policy.scoped(att)[1] is policy.rules_for(att)
