"""Right to erasure: after an erase event no table holds the person's address, phone or name."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from guard.ingest.identity import Ref, erasure_hash
from guard.proxy.outbox import DONE_SENT, Item, Outbox
from guard.proxy.transport import SENT, Outcome
from guard.store.ledger import ERASED_MESSAGE
from guard.store.tables import hook_inbox, idempotency_keys, ledger, outbox
from tests.conftest import NOW, accepted, person

EMAIL, PHONE, NAME = "anna.weber@example.com", "+491701234567", "Anna Weber"
OTHER = "olaf@example.com"
NEWSLETTER = {"channel": "email", "purpose": "newsletter", "sender": "oem"}
ERASE = {"type": "erase", "source": {"system": "privacy", "id": "DSR-1"},
         "person": {"email": EMAIL}}


def plain_text(engine) -> dict[str, list[str]]:
    """Every row of every table of the store, each as one line of text, by table."""
    found = sa.MetaData()
    found.reflect(engine)
    dump: dict[str, list[str]] = {}
    with engine.connect() as conn:
        for name, table in found.tables.items():
            dump[name] = [" | ".join(str(v) for v in row)
                          for row in conn.execute(sa.select(table)).all()]
    return dump


def mentions(engine, *needles: str) -> list[str]:
    """The rows, as ``table: text``, that contain any of ``needles`` (case-insensitive)."""
    return [f"{name}: {line}" for name, lines in plain_text(engine).items() for line in lines
            if any(n.lower() in line.lower() for n in needles)]


def mail(*people: tuple[str, str], text: str) -> dict:
    """A SendGrid Mail Send body with one personalization per (email, name)."""
    return {"from": {"email": "offers@dealer.example"}, "subject": "Your offer",
            "personalizations": [{"to": [{"email": email, "name": name}],
                                  "substitutions": {"-name-": name}} for email, name in people],
            "content": [{"type": "text/plain", "value": text}]}


@pytest.fixture
def anna(store, engine):
    """Anna's data in every place the guard copies it to, and Olaf's beside it; her ids."""
    # Checked before she was known: a row without a person, by address and by CRM id.
    before = [store.check({**NEWSLETTER, "to": EMAIL}),
              store.check({**NEWSLETTER, "to": {"salesforce": "003A"}}, commit=False)]
    accepted(store.ingest([person("003A", EMAIL, phones=[PHONE], name=NAME),
                           person("003O", OTHER, name="Olaf")]))
    known = store.check({**NEWSLETTER, "to": EMAIL, "campaign": "spring"})
    sms = store.check({**NEWSLETTER, "channel": "sms", "to": PHONE})
    olaf = store.check({**NEWSLETTER, "to": OTHER})
    box = Outbox(engine, clock=lambda: NOW)
    box.hold(Item("sendgrid", "mail", mail((EMAIL, NAME), text=f"Dear {NAME}, 2% off."),
                  "held-anna", recipients=[EMAIL.upper()], decision_ids=[known.decision_id],
                  checks=[{**NEWSLETTER, "to": EMAIL}], needs_check=True,
                  not_before=NOW + timedelta(hours=2)))
    box.hold(Item("twilio", "Messages", {"To": "0170 1234567", "Body": f"Hi {NAME}"},
                  "held-sms", recipients=["0170 1234567"], decision_ids=[sms.decision_id]))
    shared = box.start_sending(Item(
        "sendgrid", "mail", mail((OTHER, "Olaf"), (EMAIL, NAME), text="Spring is here."),
        "shared", recipients=[OTHER, EMAIL], decision_ids=[olaf.decision_id, known.decision_id]))
    box.finish(shared, Outcome(SENT, attempts=1))
    box.hold(Item("sendgrid", "mail", mail((OTHER, "Olaf"), text="Only Olaf."), "olaf-only",
                  recipients=[OTHER], decision_ids=[olaf.decision_id]))
    with engine.begin() as conn:
        conn.execute(sa.insert(hook_inbox), [
            {"system": "hubspot", "received_at": NOW, "attempts": 0, "processed_at": None,
             "error": None, "payload": [
                 {"objectId": 501, "subscriptionType": "contact.propertyChange",
                  "propertyName": "email", "propertyValue": EMAIL},
                 {"objectId": 502, "subscriptionType": "contact.propertyChange",
                  "propertyName": "phone", "propertyValue": "+49 170 1234567"},
                 {"objectId": 777, "subscriptionType": "contact.creation"}]},
            {"system": "salesforce", "received_at": NOW, "attempts": 1, "processed_at": NOW,
             "payload": [{"objectId": "003A", "propertyName": "phone",
                          "propertyValue": PHONE}],
             "error": f"rejected: no person matches email {EMAIL}"},
        ])
        conn.execute(sa.insert(idempotency_keys), [
            {"key_id": "key_1", "key_hash": "h-anna", "fingerprint": "f", "outbox_id": None,
             "response": {"status": 202, "body": "", "content_type": None, "headers": {
                 "X-Guard-Blocked": "0", "X-Guard-Rerouted-To": f"{EMAIL} -> owner oem"}},
             "created_at": NOW, "decision_ids": f"{olaf.decision_id} {known.decision_id}"},
            {"key_id": "key_1", "key_hash": "h-anna-sms", "fingerprint": "f", "outbox_id": None,
             "response": {"status": 201, "content_type": "application/json", "headers": {},
                          "body": json.dumps({"sid": "SM1", "status": "queued", "to": PHONE,
                                              "body": f"Hello {NAME}"})},
             "created_at": NOW, "decision_ids": known.decision_id},
            {"key_id": "key_1", "key_hash": "h-olaf", "fingerprint": "f", "outbox_id": None,
             "response": {"status": 202, "body": "", "content_type": None, "headers": {
                 "X-Guard-Rerouted-To": f"{OTHER} -> owner oem"}},
             "created_at": NOW, "decision_ids": olaf.decision_id},
        ])
    return {"before": before, "known": known, "sms": sms, "olaf": olaf}


def test_erasure_leaves_no_copy_of_the_address_phone_or_name(store, engine, anna):
    assert mentions(engine, EMAIL, PHONE, NAME)  # the setting-up put them everywhere

    accepted(store.ingest([ERASE]))

    assert mentions(engine, EMAIL, PHONE, NAME, "170 1234567") == []


def test_what_others_share_with_an_erased_person_stays_theirs(store, engine, anna):
    accepted(store.ingest([ERASE]))

    with engine.connect() as conn:
        rows = {r.idempotency_key: r for r in conn.execute(sa.select(outbox)).all()}
        answers = dict(conn.execute(sa.select(idempotency_keys.c.key_hash,
                                              idempotency_keys.c.response)).all())
        [pending] = conn.execute(sa.select(hook_inbox.c.payload)).scalars().all()
    assert sorted(rows) == ["olaf-only", "shared"]
    shared = rows["shared"]
    assert (shared.status, shared.recipients) == (DONE_SENT, [OTHER])
    assert [p["to"] for p in shared.payload["personalizations"]] == [
        [{"email": OTHER, "name": "Olaf"}]]
    assert shared.payload["content"][0]["value"] == "Spring is here."
    # Answers that named her stay, without her, so a retry still sends nothing again to
    # the others; Olaf's own is untouched.
    assert sorted(answers) == ["h-anna", "h-anna-sms", "h-olaf"]
    assert answers["h-anna"]["headers"] == {"X-Guard-Blocked": "0"}
    assert json.loads(answers["h-anna-sms"]["body"]) == {"sid": "SM1", "status": "queued"}
    assert answers["h-olaf"]["headers"] == {"X-Guard-Rerouted-To": f"{OTHER} -> owner oem"}
    assert pending == [{"objectId": 777, "subscriptionType": "contact.creation"}]


def test_the_audit_trail_keeps_verdict_rules_time_and_policy_version(store, engine, anna):
    before = store.decision(anna["before"][0].decision_id)

    accepted(store.ingest([ERASE]))

    for decided in (*anna["before"], anna["known"], anna["sms"]):
        kept = store.decision(decided.decision_id)
        assert kept["verdict"] == decided.verdict
        assert [r["rule"] for r in kept["reasons"]] == list(decided.rules)
        assert kept["policy_version"] == decided.policy_version
        assert kept["erased"] is True
        assert all((r["message"], r["evidence"]) == (ERASED_MESSAGE, [])
                   for r in kept["reasons"])
        assert kept["attempt"]["channel"] == decided_channel(decided, anna)
    after = store.decision(anna["before"][0].decision_id)
    assert after["at"] == before["at"]
    # A decision about no known person keeps the keyed hash the erasure list keeps.
    digest = erasure_hash(store.erasure_salt(), Ref("email", EMAIL))
    assert after["attempt"]["to"] == f"erased:{digest}"
    assert store.decision(anna["olaf"].decision_id)["attempt"]["to"] == OTHER


def decided_channel(decided, anna) -> str:
    return "sms" if decided is anna["sms"] else "email"


@pytest.mark.parametrize("how", ["check", "batch", "dry-run", "screen"])
def test_decisions_about_an_erased_address_never_store_it_again(store, engine, anna, how):
    accepted(store.ingest([ERASE]))

    attempt = {**NEWSLETTER, "purpose": "transactional"}
    if how == "check":
        decided = [store.check({**attempt, "to": EMAIL})]
    elif how == "batch":
        decided = store.check_many([{**attempt, "to": EMAIL}, {**attempt, "to": PHONE,
                                                               "channel": "sms"}])
    elif how == "dry-run":
        decided = [store.check({**attempt, "to": PHONE, "channel": "sms"}, commit=False)]
    else:
        decided = [d for _, d in store.screen(attempt, [EMAIL, " Anna.Weber@Example.com "])]

    assert [d.rules for d in decided] == [("erased",)] * len(decided)
    assert mentions(engine, EMAIL, PHONE, NAME) == []
    with engine.connect() as conn:
        kept = conn.execute(sa.select(ledger.c.attempt, ledger.c.recipient).where(
            ledger.c.id.in_([d.decision_id for d in decided]))).all()
    assert len(kept) == len(decided)
    assert all(a["to"].startswith("erased:") and r is None for a, r in kept)


def test_a_policy_simulation_after_an_erasure_replays_what_is_left(store, anna, policy):
    from guard.checks.simulation import replay

    accepted(store.ingest([ERASE]))
    later = store.check({**NEWSLETTER, "to": EMAIL})

    replays = {r.decision_id: r for r in replay(store.engine, policy, NOW - timedelta(days=1))}

    assert anna["olaf"].decision_id in replays
    assert anna["known"].decision_id not in replays  # nothing left to replay it with
    assert replays[later.decision_id].after.rules == ("erased",)
    assert not any(r.changed for r in replays.values())
