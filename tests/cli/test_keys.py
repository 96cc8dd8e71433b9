"""guard keys create / list / revoke, and the GUARD_ADMIN_KEY bootstrap key's rules."""

from __future__ import annotations

import pytest

from guard import create_app
from guard.cli import main
from guard.config import ConfigurationError
from guard.http import keys
from guard.services import services

ADMIN = "admin-secret-of-the-operator-" + "q" * 12


def create(runner, *args: str):
    return runner.invoke(main, ["keys", "create", "--name", "Munich DMS", "--scope", "send",
                                *args])


def test_keys_create_prints_a_working_key_once(runner, engine):
    result = runner.invoke(main, ["keys", "create", "--name", "HubSpot", "--scope", "check",
                                  "--scope", "send", "--sender", "oem"])
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip().splitlines()[-1]
    key = keys.authenticate(engine, secret)
    assert key.scopes == {"check", "send"} and key.sender == "oem"


def test_keys_create_refuses_an_unknown_sender(runner):
    result = runner.invoke(main, ["keys", "create", "--name", "x", "--scope", "check",
                                  "--sender", "martians"])
    assert result.exit_code == 2
    assert "--sender" in result.output


def test_keys_create_takes_allow_lists(runner, engine):
    result = create(runner, "--sender", "dealer:munich", "--allow-sender", "dealer:munich",
                    "--allow-purpose", "service_reminder", "--allow-purpose", "survey")
    assert result.exit_code == 0, result.output
    key = keys.authenticate(engine, result.stdout.strip().splitlines()[-1])
    assert key.senders == ("dealer:munich",)
    assert key.purposes == ("service_reminder", "survey")
    assert "senders: dealer:munich; purposes: service_reminder, survey" in result.stderr


@pytest.mark.parametrize(("args", "option"), [
    (["--allow-sender", "martians"], "--allow-sender"),
    (["--allow-purpose", "bribery"], "--allow-purpose"),
    (["--sender", "oem", "--allow-sender", "dealer:*"], "--sender"),
    (["--purpose", "price_offer", "--allow-purpose", "survey"], "--purpose"),
], ids=["unknown-sender", "unknown-purpose", "default-sender-outside",
        "default-purpose-outside"])
def test_keys_create_names_the_option_in_error(runner, engine, args, option):
    result = create(runner, *args)
    assert result.exit_code == 2
    assert option in result.output
    assert keys.list_keys(engine) == []


def test_keys_list_shows_keys_and_revocations_never_secrets(runner, engine):
    kept, kept_secret = keys.create_key(engine, "HubSpot", ["check"], sender="oem",
                                        senders=["oem"])
    gone, _ = keys.create_key(engine, "old tool", ["send"])
    keys.revoke_key(engine, gone.id)
    result = runner.invoke(main, ["keys", "list"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    [kept_line] = [line for line in lines if line.startswith(kept.id)]
    [gone_line] = [line for line in lines if line.startswith(gone.id)]
    assert "senders oem" in kept_line and kept_line.endswith("active")
    assert "REVOKED" in gone_line
    assert kept_secret not in result.output and keys.hash_key(kept_secret) not in result.output


def test_keys_revoke_stops_the_key_and_names_an_unknown_id(runner, engine):
    key, secret = keys.create_key(engine, "tool", ["check"])
    result = runner.invoke(main, ["keys", "revoke", key.id])
    assert result.exit_code == 0, result.output
    assert f"Revoked {key.id}" in result.stdout
    assert keys.authenticate(engine, secret) is None
    result = runner.invoke(main, ["keys", "revoke", "key_nothing"])
    assert result.exit_code == 1
    assert "no API key 'key_nothing'" in result.output


@pytest.mark.parametrize("value", ["short", "x" * 31], ids=["5", "31"])
def test_a_short_admin_key_stops_start_up_naming_the_setting(tmp_path, monkeypatch, value):
    monkeypatch.setenv("GUARD_ADMIN_KEY", value)
    with pytest.raises(ConfigurationError, match="GUARD_ADMIN_KEY: must be at least 32"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'short.db'}"})


def test_a_short_admin_key_stops_every_command(runner, monkeypatch):
    monkeypatch.setenv("GUARD_ADMIN_KEY", "short")
    result = runner.invoke(main, ["keys", "list"])
    assert result.exit_code == 1
    assert "GUARD_ADMIN_KEY" in result.output


def test_a_revoked_bootstrap_key_stays_revoked_until_the_setting_changes(db_url, engine):
    app = create_app({"DATABASE_URL": db_url, "ADMIN_KEY": ADMIN})
    services(app).engine.dispose()
    keys.revoke_key(engine, keys.BOOTSTRAP_ID)
    assert keys.authenticate(engine, ADMIN) is None
    with pytest.raises(ConfigurationError, match="GUARD_ADMIN_KEY: this value was revoked"):
        create_app({"DATABASE_URL": db_url, "ADMIN_KEY": ADMIN})
    assert keys.authenticate(engine, ADMIN) is None
    fresh = ADMIN.replace("q", "r")
    app = create_app({"DATABASE_URL": db_url, "ADMIN_KEY": fresh})
    services(app).engine.dispose()
    assert keys.authenticate(engine, fresh) is not None
