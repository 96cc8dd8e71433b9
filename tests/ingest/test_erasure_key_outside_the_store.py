"""The erasure key is a secret outside the store; the service will not run without it once needed.

A phone number has little entropy: with the key of its hash, trying every
number of a country takes minutes, and a range of a million numbers well under
a second. So the key lives in ``GUARD_ERASURE_SALT``, never in the store.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa

from guard import create_app
from guard.checks.facts import ErasureKeyMissing
from guard.checks.service import Guard
from guard.config import ConfigurationError
from guard.services import services
from guard.store.migrate import upgrade
from guard.store.tables import erasures, settings
from tests.conftest import NOW, accepted, person

PHONE = "+491701234567"
ERASE = {"type": "erase", "source": {"system": "privacy", "id": "DSR-1"},
         "person": {"phone": PHONE}}
CHECK = {"channel": "sms", "to": PHONE, "purpose": "transactional", "sender": "oem"}
# The salt a store made for itself before the key had to live outside it.
STORED = "5" * 64


def hashed(key: str, phone: str) -> str:
    return hmac.new(key.encode(), f"phone:{phone}".encode(), hashlib.sha256).hexdigest()


@contextmanager
def started(db_url: str) -> Iterator[Guard]:
    """Start the service on ``db_url`` as ``guard serve`` would; yield its Guard."""
    guard = services(create_app({"DATABASE_URL": db_url, "TESTING": True})).guard
    try:
        yield guard
    finally:
        guard.engine.dispose()


def start(db_url: str) -> None:
    """Start the service on ``db_url`` and stop it again."""
    with started(db_url):
        pass


@pytest.mark.parametrize("configured", [True, False], ids=["key-set", "default"])
def test_nothing_in_the_store_recovers_an_erased_phone_number(engine, policy, monkeypatch,
                                                              configured):
    if not configured:
        monkeypatch.delenv("GUARD_ERASURE_SALT")
    guard = Guard(engine, policy, clock=lambda: NOW)
    accepted(guard.ingest([person("003A", phones=[PHONE])]))
    guard.check(CHECK)

    erased = guard.ingest([ERASE])["accepted"] == 1

    with engine.connect() as conn:
        kept = set(conn.execute(sa.select(erasures.c.hash)).scalars())
        stored = conn.execute(sa.select(settings.c.value)).scalars().all()
    # An attacker with the store tries each stored value as the key, over a block of
    # numbers around the real one (the whole country is the same loop, longer).
    candidates = [f"+4917012{n:05d}" for n in range(100_000)]
    assert PHONE in candidates
    found = [phone for value in stored for phone in candidates if hashed(value, phone) in kept]
    assert found == []
    # Erasing needs the key; with it, the hash is kept (and made with it alone).
    assert erased is configured
    if configured:
        assert hashed(guard.erasure_salt().decode(), PHONE) in kept


def test_erasing_without_the_key_is_refused_and_changes_nothing(engine, policy, monkeypatch):
    monkeypatch.delenv("GUARD_ERASURE_SALT")
    keyless = Guard(engine, policy, clock=lambda: NOW)
    accepted(keyless.ingest([person("003A", phones=[PHONE])]))

    result = keyless.ingest([ERASE])

    assert result["accepted"] == 0
    assert result["rejected"][0]["detail"].startswith(
        "erase.person: GUARD_ERASURE_SALT is not set: erasure keeps a keyed hash")
    assert keyless.person(keyless.resolve(PHONE))["erased"] is False
    with engine.connect() as conn:
        assert conn.execute(sa.select(settings)).all() == []


def test_the_service_refuses_to_start_without_the_key_once_anyone_was_erased(
        store, engine, db_url, monkeypatch):
    start(db_url)  # nobody erased: no key needed yet
    accepted(store.ingest([person("003A", phones=[PHONE]), ERASE]))

    monkeypatch.delenv("GUARD_ERASURE_SALT")
    with pytest.raises(ConfigurationError) as missing:
        start(db_url)
    monkeypatch.setenv("GUARD_ERASURE_SALT", "another-key-" + "x" * 40)
    with pytest.raises(ConfigurationError) as wrong:
        start(db_url)

    assert str(missing.value).startswith(
        "GUARD_ERASURE_SALT: not set, and people were erased in this store")
    assert str(wrong.value) == ("GUARD_ERASURE_SALT: not the key this store's erasures were "
                                "made with")


def test_a_process_without_the_key_cannot_let_an_erased_person_through(
        store, engine, policy, monkeypatch):
    accepted(store.ingest([person("003A", phones=[PHONE]),
                           person("003B", "bert@example.com"), ERASE]))
    monkeypatch.delenv("GUARD_ERASURE_SALT")
    keyless = Guard(engine, policy, clock=lambda: NOW)

    with pytest.raises(ErasureKeyMissing) as raised:
        keyless.check(CHECK)
    with pytest.raises(ErasureKeyMissing):
        keyless.check_many([CHECK, {**CHECK, "to": "+491709999999"}])
    with pytest.raises(ErasureKeyMissing):
        list(keyless.screen({k: v for k, v in CHECK.items() if k != "to"}, [PHONE]))

    assert raised.value.status == 503
    assert raised.value.field == "GUARD_ERASURE_SALT"
    # Known people need no key.
    bert = {**CHECK, "channel": "email", "to": "bert@example.com"}
    assert keyless.check(bert).person == keyless.resolve("bert@example.com")
    # Nor does the rest of the store, nor a keyless result (with no erasure, nobody is erased).
    with engine.begin() as conn:
        conn.execute(sa.delete(erasures))
    assert keyless.check(CHECK).rules != ("erased",)


@pytest.fixture
def salted(db_url):
    """A store of the previous release that erased someone with a salt kept in its settings."""
    from guard.store.engine import make_engine

    engine = make_engine(db_url)
    upgrade(engine, "0008")
    with engine.begin() as conn:
        conn.execute(sa.insert(settings).values(name="erasure_salt", value=STORED))
        conn.execute(sa.insert(erasures).values(hash=hashed(STORED, PHONE), erased_at=NOW))
    upgrade(engine)
    yield engine
    engine.dispose()


def test_a_store_that_kept_its_salt_moves_it_to_the_setting(salted, db_url, monkeypatch):
    monkeypatch.delenv("GUARD_ERASURE_SALT")
    with pytest.raises(ConfigurationError) as missing:
        start(db_url)
    monkeypatch.setenv("GUARD_ERASURE_SALT", "a-new-key-" + "y" * 40)
    with pytest.raises(ConfigurationError) as other:
        start(db_url)

    monkeypatch.setenv("GUARD_ERASURE_SALT", STORED)
    with started(db_url) as guard:
        checked = guard.check(CHECK)

    how = "set GUARD_ERASURE_SALT to the value of: SELECT value FROM settings WHERE name = " \
          "'erasure_salt'"
    assert how in str(missing.value) and how in str(other.value)
    with salted.connect() as conn:
        names = conn.execute(sa.select(settings.c.name)).scalars().all()
    assert names == ["erasure_key_check"]
    assert checked.rules == ("erased",)
    monkeypatch.delenv("GUARD_ERASURE_SALT")
    with pytest.raises(ConfigurationError, match="people were erased in this store"):
        start(db_url)


def test_a_store_that_erased_nobody_forgets_its_salt_on_upgrade(db_url):
    from guard.store.engine import make_engine

    engine = make_engine(db_url)
    upgrade(engine, "0008")
    with engine.begin() as conn:
        conn.execute(sa.insert(settings).values(name="erasure_salt", value=STORED))
    upgrade(engine)
    with engine.connect() as conn:
        left = conn.execute(sa.select(settings)).all()
    engine.dispose()
    assert left == []


def test_a_new_key_too_short_to_be_secret_stops_the_start(engine, db_url, monkeypatch):
    monkeypatch.setenv("GUARD_ERASURE_SALT", "pepper")

    with pytest.raises(ConfigurationError) as raised:
        start(db_url)

    assert str(raised.value).startswith("GUARD_ERASURE_SALT: at least 32 characters")
