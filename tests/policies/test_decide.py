"""decide(): combining findings, monitor mode, strangers, erasure, required purposes."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta

import pytest

from policies import Attempt, Consent, Evidence, LedgerEntry, Profile, decide, parse_policy
from policies.cel import Condition
from policies.rules.base import Context
from tests.conftest import NOW
from tests.policies.standin_kinds import KINDS

LATER = "2026-11-24T08:00:00+01:00"
LATEST = "2026-11-25T08:00:00+01:00"


def policy_of(text: str, **defaults):
    text = textwrap.dedent(text)
    if defaults:
        text += "defaults: {" + ", ".join(f"{k}: {v}" for k, v in defaults.items()) + "}\n"
    return parse_policy([("p.yaml", text)], kinds=KINDS)


def attempt(purpose="price_offer", channel="email", sender="oem", **kw):
    return Attempt(channel=channel, to="anna@example.com", purpose=purpose, sender=sender,
                   at=NOW, **kw)


ANNA = Profile(id="per_anna", emails=("anna@example.com",), stage="customer",
               owner="dealer:munich", sources=(Evidence("dms", "Customer", "C-1"),))


def rules_yaml(*effects: str) -> str:
    """One fixed rule per effect, named r0, r1, … in order."""
    lines = ["rules:"]
    for i, effect in enumerate(effects):
        lines += [f"  - id: r{i}", "    kind: fixed", f"    effect: {effect}"]
        if effect == "reroute":
            lines.append(f"    owner: owner{i}")
        if effect == "defer":
            lines.append(f"    not_before: '{LATER if i % 2 == 0 else LATEST}'")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("effects", "verdict"),
    [
        ((), "allow"),
        (("allow",), "allow"),
        (("defer",), "defer"),
        (("reroute",), "reroute"),
        (("block",), "block"),
        (("allow", "defer"), "defer"),
        (("defer", "reroute"), "reroute"),
        (("reroute", "defer"), "reroute"),
        (("reroute", "block"), "block"),
        (("block", "defer", "reroute", "allow"), "block"),
    ],
    ids=["none", "allow", "defer", "reroute", "block", "allow+defer", "defer+reroute",
         "reroute+defer", "reroute+block", "all-four"],
)
def test_most_restrictive_effect_wins_and_every_finding_is_a_reason(effects, verdict):
    policy = policy_of(rules_yaml(*effects))
    decision = decide(attempt(), ANNA, [], policy, NOW)
    assert decision.verdict == verdict
    assert decision.rules == tuple(f"r{i}" for i in range(len(effects)))
    assert [r.effect for r in decision.reasons] == list(effects)
    assert decision.person == "per_anna"
    assert decision.policy_version == policy.version
    assert decision.decision_id is None
    assert (decision.reroute is not None) == (verdict == "reroute")
    assert (decision.not_before is not None) == (verdict == "defer")


def test_reroutes_merge_first_wins_per_key():
    policy = policy_of("""\
        rules:
          - {id: a, kind: fixed, effect: reroute, channel: sms}
          - {id: b, kind: fixed, effect: reroute, owner: "dealer:munich", channel: call}
          - {id: c, kind: fixed, effect: reroute, owner: sales}
        """)
    decision = decide(attempt(), ANNA, [], policy, NOW)
    assert decision.verdict == "reroute"
    assert decision.reroute == {"channel": "sms", "owner": "dealer:munich"}


def test_defer_waits_for_the_latest_not_before():
    policy = policy_of(rules_yaml("defer", "defer"))
    decision = decide(attempt(), ANNA, [], policy, NOW)
    assert decision.not_before == datetime.fromisoformat(LATEST)


def test_monitor_rules_report_but_never_change_the_verdict():
    policy = policy_of("""\
        rules:
          - {id: watch, kind: fixed, effect: block, mode: monitor, notify: sales}
          - {id: hold, kind: fixed, effect: defer, not_before: "2026-11-24T08:00:00Z"}
        """)
    decision = decide(attempt(), ANNA, [], policy, NOW)
    assert decision.verdict == "defer"
    assert decision.rules == ("hold",)
    assert [m.rule for m in decision.monitored] == ["watch"]
    assert decision.monitored[0].effect == "block"
    assert decision.notify == ()


def test_scope_and_condition_decide_which_rules_apply():
    policy = policy_of("""\
        rules:
          - {id: sms-only, kind: fixed, channels: [sms]}
          - {id: dealers, kind: fixed, senders: ["dealer:*"]}
          - {id: billing, kind: fixed, categories: [billing]}
          - {id: offers, kind: fixed, purposes: [price_offer]}
          - {id: customers, kind: fixed, when: 'person.stage == "customer"'}
          - {id: prospects, kind: fixed, when: 'person.stage == "prospect"'}
          - {id: broken, kind: fixed, when: 'person.no_such_field == 1'}
        """)
    decision = decide(attempt(), ANNA, [], policy, NOW)
    assert decision.rules == ("offers", "customers")
    by_dealer = decide(attempt(channel="sms", sender="dealer:munich"), ANNA, [], policy, NOW)
    assert by_dealer.rules == ("sms-only", "dealers", "offers", "customers")


@pytest.mark.parametrize(
    ("purpose", "rules"),
    [("price_offer", ("all", "marketing", "scoped")),
     ("transactional", ("scoped", "required")),
     ("safety_recall", ("required",))],
    ids=["marketing-gets-every-rule", "transactional-only-when-scoped",
         "recall-only-when-category-scoped"],
)
def test_required_purposes_pass_rules_that_do_not_name_them(purpose, rules):
    policy = policy_of("""\
        rules:
          - {id: all, kind: fixed}
          - {id: marketing, kind: fixed, categories: [marketing]}
          - {id: scoped, kind: fixed, purposes: [transactional, price_offer]}
          - {id: required, kind: fixed, categories: [required]}
        """)
    decision = decide(attempt(purpose=purpose), ANNA, [], policy, NOW)
    assert decision.rules == rules


BLOCK_ALL = """\
    rules:
      - {id: everything, kind: fixed, effect: block, categories: [required, marketing]}
      - {id: opt-out, kind: consent}
    """


def test_erased_person_is_blocked_even_for_transactional_messages():
    erased = Profile(id=None, erased=True)
    policy = policy_of("rules: []\n")
    for purpose in ("transactional", "safety_recall", "price_offer"):
        decision = decide(attempt(purpose=purpose), erased, [], policy, NOW)
        assert decision.verdict == "block"
        assert [(r.rule, r.kind) for r in decision.reasons] == [("erased", "erasure")]
        assert "erasure" in decision.reasons[0].message


@pytest.mark.parametrize(
    ("setting", "consents", "verdict", "rules"),
    [
        ("allow", (), "allow", ("unknown-recipient",)),
        ("block", (), "block", ("unknown-recipient",)),
        ("allow", (Consent(channel="email", purpose="*", status="opt_out",
                           source=Evidence("sendgrid", "Unsubscribe", "u-1")),),
         "block", ("unknown-recipient", "opt-out")),
    ],
    ids=["policy-allows", "policy-blocks", "bare-address-opt-out-still-blocks"],
)
def test_unknown_recipient_gets_the_policy_default_and_consent_rules(
        setting, consents, verdict, rules):
    policy = policy_of("""\
        rules:
          - {id: relationship, kind: fixed, effect: block}
          - {id: opt-out, kind: consent}
        """, unknown_recipient=setting)
    stranger = Profile(id=None, emails=("anna@example.com",), consents=consents)
    decision = decide(attempt(), stranger, [], policy, NOW)
    assert decision.verdict == verdict
    assert decision.person is None
    assert decision.rules == rules
    first = decision.reasons[0]
    assert (first.kind, first.effect) == ("unknown_recipient", setting)
    assert "anna@example.com matches no known person" in first.message


def test_several_rules_fire_at_once_each_with_its_own_reason():
    policy = policy_of("""\
        rules:
          - {id: opt-out, kind: consent}
          - {id: cap, kind: cap, max: 2, window: 7d}
          - {id: later, kind: fixed, effect: defer, not_before: "2026-11-24T08:00:00Z"}
        """)
    ledger = [LedgerEntry(at=NOW - timedelta(days=d), channel="email", purpose="newsletter",
                          sender="oem") for d in (1, 2)]
    profile = Profile(id="per_anna", consents=(Consent("email", "*", "opt_out"),))
    decision = decide(attempt(), profile, ledger, policy, NOW)
    assert decision.verdict == "block"
    assert decision.rules == ("opt-out", "cap", "later")
    assert decision.not_before is None
    assert decision.reasons[1].message == "2 contacts in 1 week."


def test_ledger_entries_that_were_not_contacts_do_not_count():
    policy = policy_of("rules:\n  - {id: cap, kind: cap, max: 1, window: 7d}\n")
    blocked = [LedgerEntry(at=NOW - timedelta(days=1), channel="email", purpose="newsletter",
                           sender="oem", verdict="block")]
    assert decide(attempt(), ANNA, blocked, policy, NOW).verdict == "allow"


@pytest.mark.parametrize(
    ("effects", "notified"),
    [
        (("block",), ["case-owner"]),
        (("reroute",), ["case-owner"]),
        (("allow",), ["case-owner"]),
        (("reroute", "block-plain"), []),
        (("allow", "block-plain"), []),
        (("block", "defer-plain"), ["case-owner"]),
    ],
    ids=["blocked-because-of-them", "rerouted-to-them", "promise-went-out",
         "reroute-overruled", "promise-never-sent", "block-notice-survives-other-rules"],
)
def test_owners_hear_of_what_concerns_them(effects, notified):
    lines = ["rules:"]
    for i, effect in enumerate(effects):
        plain_effect = effect.removesuffix("-plain")
        rule = f"  - {{id: r{i}, kind: fixed, effect: {plain_effect}"
        if not effect.endswith("-plain"):
            rule += ", notify: case-owner"
        if plain_effect == "reroute":
            rule += ", owner: case-owner"
        if plain_effect == "defer":
            rule += ", not_before: '2026-11-24T08:00:00Z'"
        lines.append(rule + "}")
    policy = policy_of("\n".join(lines) + "\n")
    decision = decide(attempt(), ANNA, [], policy, NOW)
    assert [n.owner for n in decision.notify] == notified
    assert all(n.rule == "r0" and n.message == "Rule r0 says " + effects[0] + "."
               for n in decision.notify)


def test_decisions_are_deterministic_and_serialise_to_the_contract_shape():
    policy = policy_of(rules_yaml("block", "reroute"))
    first = decide(attempt(), ANNA, [], policy, NOW)
    assert first == decide(attempt(), ANNA, [], policy, NOW)
    data = first.to_dict()
    assert set(data) >= {"decision_id", "verdict", "person", "reasons", "reroute",
                         "not_before", "monitored", "policy_version"}
    assert data["reasons"][0] == {"rule": "r0", "kind": "fixed", "effect": "block",
                                  "message": "Rule r0 says block.", "evidence": []}


def test_condition_sees_attempt_person_account_and_now():
    profile = Profile.from_dict({
        "id": "per_anna", "stage": "customer", "replacement_cycle_years": 10,
        "do_not_market_until": "2027-01-01",
        "account": {"id": "acc-1", "name": "Acme", "owner": "sales"},
        "purchases": [{"product": "audi-a4", "at": "2026-11-21T09:00:00Z"}],
    })
    ctx = Context(attempt=attempt(product="audi-a4"), profile=profile, ledger=(),
                  policy=policy_of("rules: []\n"), now=NOW)
    holds = [
        'attempt.category == "marketing" && attempt.product == "audi-a4"',
        'attempt.at == now',
        'person.purchases.exists(p, p.product == attempt.product && '
        'p.at > now - duration("72h"))',
        'person.do_not_market_until > now',
        'person.replacement_cycle_years >= 10',
        'account.name == "Acme" && account.owner == "sales"',
        'attempt.campaign == null',
    ]
    for source in holds:
        assert Condition(source).holds(ctx), source
    for source in ('person.stage == "prospect"', 'person.nope == 1', '"a" + 1 == "a1"',
                   'person.stage'):
        assert not Condition(source).holds(ctx), source
    assert Condition("size(person.purchases)").evaluate(ctx) == 1


def test_account_fields_are_null_when_there_is_no_account():
    ctx = Context(attempt=attempt(), profile=ANNA, ledger=(), policy=policy_of("rules: []\n"),
                  now=NOW)
    assert Condition("account.owner == null").holds(ctx)


@pytest.mark.parametrize(("at", "cooling"), [
    (NOW, True),
    (datetime(2026, 12, 20, 9, 0, tzinfo=UTC), True),
    (datetime(2026, 12, 22, 9, 0, tzinfo=UTC), False),
    (NOW - timedelta(days=30), True),
], ids=["now", "scheduled-inside-the-cooldown", "scheduled-after-it", "backdated"])
def test_a_scheduled_contact_is_judged_as_of_when_it_goes_out(at, cooling):
    from policies import default_policy_path, load_policy
    from policies.model import Purchase

    bought = Profile(id="per_max", purchases=(Purchase(
        product="audi-a4", at=datetime(2026, 11, 21, 10, 0, tzinfo=UTC),
        source=Evidence("dms", "SalesOrder", "SO-1")),))
    offer = Attempt(channel="email", to="max@example.com", purpose="price_offer",
                    sender="oem", product="audi-a4", at=at)
    decision = decide(offer, bought, [], load_policy(default_policy_path()), NOW)
    assert ("purchase-cooldown" in decision.rules) is cooling
