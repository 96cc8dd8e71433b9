"""frequency_cap: at most max contacts per window, across senders and systems."""

from __future__ import annotations

from datetime import timedelta

import pytest

from policies.rules.base import ConfigError, Duration
from policies.rules.frequency_cap import FrequencyCap
from tests.policies.helpers import NOW, at, attempt, context, person, run, scope, src, touch

MARKETING = scope(categories=["marketing", "sales"])


def cap(**options):
    options.setdefault("max", 3)
    options.setdefault("window", Duration(days=30))
    options.setdefault("scope", MARKETING)
    return FrequencyCap(id="frequency-cap", **options)


def days_ago(n, **fields):
    return touch(NOW - timedelta(days=n), **fields)


@pytest.mark.parametrize(
    ("ledger", "options", "capped"),
    [
        ((days_ago(1), days_ago(2)), {}, False),
        ((days_ago(1), days_ago(2), days_ago(3)), {}, True),
        ((days_ago(1), days_ago(2), days_ago(30)), {}, False),
        ((days_ago(1), days_ago(2), touch(NOW - timedelta(days=30) + timedelta(seconds=1))),
         {}, True),
        ((days_ago(1), days_ago(2), days_ago(3, verdict="block")), {}, False),
        ((days_ago(1), days_ago(2), days_ago(3, purpose="transactional")), {}, False),
        ((days_ago(1), days_ago(2), days_ago(3, purpose="invoice")), {}, False),
        ((days_ago(1), days_ago(2, sender="dealer:munich"), days_ago(3, sender="sales")),
         {}, True),
        ((days_ago(1), days_ago(2, sender="dealer:munich"), days_ago(3, sender="sales")),
         {"per_sender": True}, False),
        ((days_ago(1), days_ago(2), days_ago(3)), {"per_sender": True}, True),
        ((days_ago(1), days_ago(2), days_ago(3, channel="sms")),
         {"scope": scope(categories=["marketing"], channels=["email"])}, False),
        ((days_ago(1), days_ago(2), touch(NOW + timedelta(hours=1))), {}, False),
    ],
    ids=["under-cap", "at-cap", "oldest-exactly-at-window-edge", "oldest-just-inside",
         "blocked-attempts-do-not-count", "required-never-counts", "out-of-scope-purpose",
         "counts-all-senders", "per-sender-other-senders", "per-sender-same-sender",
         "out-of-scope-channel", "future-entries-ignored"],
)
def test_truth_table(ledger, options, capped):
    finding = run(cap(**options), context(attempt(purpose="promotion"), person(), ledger))
    assert (finding is not None) == capped
    if capped:
        assert (finding.rule, finding.kind, finding.effect) == (
            "frequency-cap", "frequency_cap", "block")


def test_defer_waits_until_the_oldest_counted_contact_leaves_the_window():
    ledger = (days_ago(1), days_ago(5), days_ago(9), days_ago(20))
    finding = run(cap(max=3, effect="defer"), context(attempt(), person(), ledger))
    assert finding.effect == "defer"
    # Four counted, three allowed: two must leave; the second oldest (9 days ago) frees a slot.
    assert finding.not_before == NOW - timedelta(days=9) + timedelta(days=30)
    assert finding.not_before.isoformat() == "2026-12-14T10:00:00+00:00"


def test_deferred_time_passes_the_cap():
    ledger = (days_ago(1), days_ago(5), days_ago(9))
    rule = cap(effect="defer")
    later = run(rule, context(attempt(), person(), ledger)).not_before
    assert run(rule, context(attempt(when=later), person(), ledger, now=later)) is None


def test_message_names_count_window_latest_and_evidence():
    ledger = (touch("2026-11-20T09:00:00", sender="dealer:munich", ref="T1"),
              touch("2026-11-01T09:00:00", ref="T2"), touch("2026-10-30T09:00:00"))
    finding = run(cap(), context(attempt(), person(), ledger))
    assert finding.message == ("Already had 3 such contacts in the last 30 days (latest on "
                               "2026-11-20 by dealer:munich); at most 3 per 30 days, so the "
                               "next one fits from 2026-11-29.")
    assert finding.evidence == (src("Task", "T2", "hubspot"), src("Task", "T1", "hubspot"))
    assert at("2026-10-30T09:00:00") + timedelta(days=30) == at("2026-11-29T09:00:00")


@pytest.mark.parametrize(
    ("options", "key"),
    [({"max": 0}, "max"), ({"window": Duration(0)}, "window")],
    ids=["zero-max", "empty-window"],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ConfigError) as info:
        cap(**options)
    assert info.value.key == key
