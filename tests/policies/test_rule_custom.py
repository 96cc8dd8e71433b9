"""custom: an admin's CEL condition with any effect and a message."""

from __future__ import annotations

from datetime import timedelta

import pytest

from policies.rules.base import ConfigError, Duration
from policies.rules.custom import Custom
from tests.policies.helpers import NOW, attempt, context, person, run

VIP = 'person.stage == "customer" && attempt.sender != person.owner'


@pytest.mark.parametrize(
    ("effect", "options", "expected"),
    [
        ("block", {}, {}),
        ("allow", {}, {}),
        ("reroute", {"reroute_to_owner": "dealer:munich"},
         {"reroute": {"owner": "dealer:munich"}, "notify": "dealer:munich"}),
        ("reroute", {"reroute_to_channel": "mail"}, {"reroute": {"channel": "mail"}}),
        ("defer", {"defer_for": Duration(days=2)}, {"not_before": NOW + timedelta(days=2)}),
    ],
    ids=["block", "allow", "reroute-owner", "reroute-channel", "defer"],
)
def test_effects(effect, options, expected):
    rule = Custom(id="vip", effect=effect, condition=VIP, message="VIPs go through their dealer.",
                  **options)
    profile = person(stage="customer", owner="dealer:munich")
    finding = run(rule, context(attempt(sender="oem"), profile))
    assert (finding.rule, finding.kind, finding.effect) == ("vip", "custom", effect)
    assert finding.message == "VIPs go through their dealer."
    for key, value in expected.items():
        assert getattr(finding, key) == value


@pytest.mark.parametrize(
    ("profile", "sender", "found"),
    [
        (person(stage="customer", owner="dealer:munich"), "oem", True),
        (person(stage="customer", owner="dealer:munich"), "dealer:munich", False),
        (person(stage="prospect", owner="dealer:munich"), "oem", False),
        (person(stage="customer"), "oem", True),
    ],
    ids=["holds", "owner-sends", "prospect", "no-owner-null-compare"],
)
def test_condition_truth_table(profile, sender, found):
    rule = Custom(id="vip", condition=VIP, message="VIPs go through their dealer.")
    assert (run(rule, context(attempt(sender=sender), profile)) is not None) == found


def test_condition_error_at_run_time_does_not_hold():
    rule = Custom(id="c", condition="person.purchases[0].product == 'x'", message="m")
    assert run(rule, context(attempt(), person())) is None


def test_message_may_embed_the_default_sentence():
    rule = Custom(id="c", condition="true", message="Stop: {default}")
    assert run(rule, context()).message == "Stop: Condition true holds."


@pytest.mark.parametrize(
    ("kwargs", "key", "words"),
    [
        ({"condition": "person.stage ==", "message": "m"}, "condition", "not valid CEL"),
        ({"condition": "true"}, "message", "needs a message"),
        ({"condition": "true", "message": "m", "effect": "reroute"}, "effect",
         "reroute_to_owner or reroute_to_channel"),
        ({"condition": "true", "message": "m", "effect": "defer"}, "effect", "defer_for"),
        ({"condition": "true", "message": "m", "reroute_to_channel": "fax"},
         "reroute_to_channel", "unknown channel 'fax'"),
    ],
    ids=["bad-cel", "no-message", "reroute-without-target", "defer-without-delay",
         "unknown-channel"],
)
def test_bad_configuration_names_the_key(kwargs, key, words):
    with pytest.raises(ConfigError) as info:
        Custom(id="c", **kwargs)
    assert info.value.key == key
    assert words in info.value.message
