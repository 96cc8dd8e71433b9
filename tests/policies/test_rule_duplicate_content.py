"""duplicate_content: the same campaign or template reaches a person once per window."""

from __future__ import annotations

import pytest

from policies.rules.base import Duration
from policies.rules.duplicate_content import DuplicateContent
from tests.policies.helpers import attempt, context, person, run, src, touch

RULE = DuplicateContent(id="duplicate-content", effect="block", window=Duration(days=30))


@pytest.mark.parametrize(
    ("ledger", "fields", "blocked"),
    [
        ((touch("2026-11-10", campaign="q4", sender="dealer:augsburg"),),
         {"campaign": "q4"}, True),
        ((touch("2026-11-10", campaign="q3"),), {"campaign": "q4"}, False),
        ((touch("2026-11-10", template="tmpl-42"),), {"template": "tmpl-42"}, True),
        ((touch("2026-11-10", template="tmpl-42"),), {"campaign": "q4", "template": "tmpl-42"},
         True),
        ((touch("2026-10-24T10:00:00", campaign="q4"),), {"campaign": "q4"}, False),
        ((touch("2026-10-24T10:00:01", campaign="q4"),), {"campaign": "q4"}, True),
        ((touch("2026-11-10", campaign="q4", verdict="block"),), {"campaign": "q4"}, False),
        ((touch("2026-11-10", campaign="q4"),), {}, False),
        ((touch("2026-11-10", channel="sms", campaign="q4"),), {"campaign": "q4"}, True),
    ],
    ids=["same-campaign-other-sender", "other-campaign", "same-template",
         "template-matches-without-campaign", "exactly-at-window-edge", "just-inside-window",
         "blocked-attempt-never-reached", "attempt-without-content-ids", "other-channel"],
)
def test_truth_table(ledger, fields, blocked):
    finding = run(RULE, context(attempt(sender="dealer:munich", **fields), person(), ledger))
    assert (finding is not None) == blocked
    if blocked:
        assert (finding.rule, finding.kind, finding.effect) == (
            "duplicate-content", "duplicate_content", "block")


def test_message_names_content_date_sender_and_window():
    ledger = (touch("2026-11-10T08:00:00", campaign="q4-upgrade", sender="dealer:augsburg",
                    ref="E-9"),)
    finding = run(RULE, context(attempt(campaign="q4-upgrade"), person(), ledger))
    assert finding.message == ("Campaign q4-upgrade already reached this person on 2026-11-10 "
                               "from dealer:augsburg; the same campaign goes out once per "
                               "30 days, whoever sends it.")
    assert finding.evidence == (src("Task", "E-9", "hubspot"),)
