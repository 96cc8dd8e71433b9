"""consent: opt-outs by channel and purpose or category, latest record wins, dead addresses."""

from __future__ import annotations

import pytest

from policies.model import Consent
from policies.rules.consent import ConsentRule
from tests.policies.helpers import at, attempt, context, person, run, src

RULE = ConsentRule(id="consent", effect="block")


def consent(channel="email", purpose="*", status="opt_out", when="2026-10-01", ref="003A"):
    return Consent(channel=channel, purpose=purpose, status=status, at=at(when),
                   source=src("Contact", ref))


@pytest.mark.parametrize(
    ("records", "channel", "purpose", "blocked"),
    [
        ((), "email", "price_offer", False),
        ((consent(),), "email", "price_offer", True),
        ((consent(),), "sms", "price_offer", False),
        ((consent(channel="*"),), "sms", "price_offer", True),
        ((consent(purpose="price_offer"),), "email", "price_offer", True),
        ((consent(purpose="price_offer"),), "email", "newsletter", False),
        ((consent(purpose="marketing"),), "email", "newsletter", True),
        ((consent(purpose="marketing"),), "email", "service_reminder", False),
        ((consent(), consent(status="opt_in", when="2026-11-01")), "email", "newsletter", False),
        ((consent(status="opt_in", when="2026-09-01"), consent()), "email", "newsletter", True),
        ((consent(), consent(status="opt_in", when="2026-10-01")), "email", "newsletter", True),
        ((consent(purpose="marketing"), consent(purpose="newsletter", status="opt_in",
                                                when="2026-11-01")),
         "email", "newsletter", False),
        ((consent(status="bounced", purpose="*"),), "email", "service_reminder", True),
        ((consent(status="invalid", purpose="newsletter"),), "email", "price_offer", True),
        ((consent(status="bounced"),), "sms", "price_offer", False),
        ((consent(status="opt_in"),), "email", "price_offer", False),
        ((consent(channel="*", purpose="*"),), "call", "collections", True),
        ((consent(channel="*", purpose="*"),), "email", "transactional", False),
        ((consent(channel="*", purpose="*"),), "email", "safety_recall", False),
    ],
    ids=[
        "no-records", "opt-out-all-email", "other-channel", "star-channel",
        "purpose-match", "other-purpose", "category-match", "other-category",
        "opt-in-after-opt-out", "opt-out-after-opt-in", "same-time-opt-out-wins",
        "purpose-opt-in-after-category-opt-out",
        "bounced-blocks-channel", "invalid-any-purpose", "bounced-other-channel",
        "opt-in-only", "do-not-contact-list", "transactional-exempt", "recall-exempt",
    ],
)
def test_truth_table(records, channel, purpose, blocked):
    ctx = context(attempt(purpose=purpose, channel=channel), person(consents=records))
    finding = run(RULE, ctx)
    assert (finding is not None) == blocked
    if blocked:
        assert finding.effect == "block"
        assert finding.rule == "consent"
        assert finding.kind == "consent"


def test_message_names_what_was_opted_out_of_and_when_with_its_source():
    ctx = context(attempt(purpose="newsletter"),
                  person(consents=(consent(purpose="marketing", ref="003XYZ"),)))
    finding = run(RULE, ctx)
    assert finding.message == ("Opted out of marketing by email on 2026-10-01; no newsletters "
                               "by email until they opt in again.")
    assert finding.evidence == (src("Contact", "003XYZ"),)


def test_bounced_address_message_names_the_address():
    ctx = context(attempt(purpose="price_offer"),
                  person(consents=(consent(status="bounced", when="2026-11-02"),)))
    finding = run(RULE, ctx)
    assert "anna@example.com was marked bounced on 2026-11-02" in finding.message


def test_admin_exempt_list_replaces_the_default():
    rule = ConsentRule(id="consent", effect="block", exempt=("survey",))
    opted_out = person(consents=(consent(purpose="*"),))
    assert run(rule, context(attempt(purpose="survey"), opted_out)) is None
    assert run(rule, context(attempt(purpose="newsletter"), opted_out)) is not None


def test_unknown_recipient_with_a_bare_address_opt_out_is_blocked():
    stranger = person(id=None, consents=(consent(),))
    assert run(RULE, context(attempt(), stranger)).effect == "block"
