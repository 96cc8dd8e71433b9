"""Links: signed, scoped, rotating keys, expiring; anything else reads as no link at all."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest

from guard.preferences.settings import read_keys
from guard.preferences.tokens import MESSAGE, PERSON, SUBJECT_EMAIL, SUBJECT_PERSON, Signer
from tests.conftest import NOW

from .conftest import KEY, OLD_KEY


def test_a_person_link_names_the_person_and_lasts_a_year_by_default(signer):
    token = signer.person("per_1", NOW)
    grant = signer.read(token, NOW + timedelta(days=364))
    assert (grant.kind, grant.subject, grant.person_id) == (PERSON, SUBJECT_PERSON, "per_1")
    assert grant.sender is None
    assert signer.read(token, NOW + timedelta(days=365)) is None


def test_a_message_link_carries_sender_channel_and_category(signer):
    token = signer.message(SUBJECT_PERSON, "per_1", "dealer:munich", "email", "marketing", NOW)
    grant = signer.read(token, NOW)
    assert (grant.kind, grant.sender, grant.channel, grant.category) == (
        MESSAGE, "dealer:munich", "email", "marketing")


def test_a_link_for_an_unknown_recipient_names_only_their_address(signer):
    token = signer.message(SUBJECT_EMAIL, "x@example.com", "oem", "email", "sales", NOW)
    grant = signer.read(token, NOW)
    assert (grant.subject, grant.value, grant.person_id) == (SUBJECT_EMAIL, "x@example.com", None)


def test_the_lifetime_is_configurable():
    short = Signer(read_keys(KEY), timedelta(days=2))
    token = short.person("per_1", NOW)
    assert short.read(token, NOW + timedelta(days=1)) is not None
    assert short.read(token, NOW + timedelta(days=2)) is None


def test_links_signed_with_a_retired_key_work_until_it_is_removed():
    old = Signer(read_keys(OLD_KEY), timedelta(days=365))
    token = old.person("per_1", NOW)
    rotated = Signer(read_keys(f"{KEY},{OLD_KEY}"), timedelta(days=365))
    assert rotated.read(token, NOW).person_id == "per_1"
    assert rotated.person("per_1", NOW).startswith("k2.")  # the new key signs
    assert Signer(read_keys(KEY), timedelta(days=365)).read(token, NOW) is None


def _tampered(token: str, **change) -> str:
    key_id, body, signature = token.split(".")
    items = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    items[2] = change.get("value", items[2])
    new = base64.urlsafe_b64encode(json.dumps(items).encode()).rstrip(b"=").decode()
    return f"{key_id}.{new}.{signature}"


@pytest.mark.parametrize("spoil", [
    lambda t: t[:-1],
    lambda t: t[: len(t) // 2],
    lambda t: t.rsplit(".", 1)[0],
    lambda t: t + ".",
    lambda t: "k9" + t[2:],
    lambda t: _tampered(t, value="per_2"),
    lambda t: t.replace(t.split(".")[2], "A" * 43),
    lambda t: "",
    lambda t: "not a token",
    lambda t: "k2.%%%.%%%",
    lambda t: t + "x" * 2000,
], ids=["last-char-cut", "half", "no-signature", "extra-dot", "unknown-key", "other-person",
        "forged-signature", "empty", "words", "bad-base64", "huge"])
def test_a_spoilt_link_grants_nothing(signer, spoil):
    token = signer.person("per_1", NOW)
    assert signer.read(spoil(token), NOW) is None


def test_a_link_signed_by_another_secret_with_the_same_key_id_grants_nothing(signer):
    impostor = Signer({"k2": b"i" * 40}, timedelta(days=365))
    assert signer.read(impostor.person("per_1", NOW), NOW) is None


def test_a_link_does_not_show_the_address_of_a_known_person(signer):
    token = signer.message(SUBJECT_PERSON, "per_1", "oem", "email", "marketing", NOW)
    assert "@" not in base64.urlsafe_b64decode(token.split(".")[1] + "==").decode()


@pytest.mark.parametrize("value,problem", [
    ("k1", "<id>:<secret>"), ("k1:short", "at least 32"), ("bad.id:" + "x" * 40, "key id"),
    (f"{KEY},{KEY}", "twice"),
], ids=["no-secret", "short", "bad-id", "twice"])
def test_bad_key_settings_stop_start_up(value, problem):
    from guard.config import ConfigurationError

    with pytest.raises(ConfigurationError, match=problem):
        read_keys(value)
