"""preferred_channel: the person's stated channel wins."""

from __future__ import annotations

import pytest

from policies.rules.preferred_channel import PreferredChannel
from tests.policies.helpers import attempt, context, person, run, scope, src

RULE = PreferredChannel(id="preferred-channel", effect="reroute",
                        scope=scope(categories=["marketing", "sales", "service"]))
STATED = src("Contact", "003PREF")


@pytest.mark.parametrize(
    ("preferred", "channel", "purpose", "reroute"),
    [
        ("sms", "email", "promotion", {"channel": "sms"}),
        ("sms", "sms", "promotion", None),
        (None, "email", "promotion", None),
        ("sms", "email", "invoice", None),
        ("sms", "email", "transactional", None),
        ("pigeon", "email", "promotion", None),
        ("mail", "call", "service_reminder", {"channel": "mail"}),
    ],
    ids=["prefers-sms", "already-preferred", "no-preference", "billing-out-of-scope",
         "required-exempt", "unknown-channel-ignored", "prefers-letters"],
)
def test_truth_table(preferred, channel, purpose, reroute):
    profile = person(preferred_channel=preferred, field_sources={"preferred_channel": STATED})
    finding = run(RULE, context(attempt(purpose=purpose, channel=channel), profile))
    if reroute is None:
        assert finding is None
    else:
        assert (finding.rule, finding.kind, finding.effect) == (
            "preferred-channel", "preferred_channel", "reroute")
        assert finding.reroute == reroute


def test_message_and_evidence():
    profile = person(preferred_channel="sms", field_sources={"preferred_channel": STATED})
    finding = run(RULE, context(attempt(purpose="promotion"), profile))
    assert finding.message == ("Asked to be contacted by text message; promotions go by text "
                               "message instead of email.")
    assert finding.evidence == (STATED,)
