"""Bad preference settings stop start-up with a message naming the setting."""

from __future__ import annotations

import pytest

from guard.config import ConfigurationError
from guard.preferences.settings import read_settings

KEYS = "k1:" + "s" * 40


@pytest.mark.parametrize("config,setting", [
    ({"PUBLIC_URL": "guard.example", "PREFERENCES_KEYS": KEYS}, "GUARD_PUBLIC_URL"),
    ({"PUBLIC_URL": "https://g.example/?x=1", "PREFERENCES_KEYS": KEYS}, "GUARD_PUBLIC_URL"),
    ({"COMPANY_COLOUR": "red; background:url(x)"}, "GUARD_COMPANY_COLOUR"),
    ({"COMPANY_LOGO_URL": "javascript:alert(1)"}, "GUARD_COMPANY_LOGO_URL"),
    ({"PREFERENCES_TOKEN_DAYS": "0"}, "GUARD_PREFERENCES_TOKEN_DAYS"),
    ({"PREFERENCES_RATE_PER_TOKEN": "many"}, "GUARD_PREFERENCES_RATE_PER_TOKEN"),
], ids=["url-without-scheme", "url-with-query", "colour", "logo",
        "lifetime", "rate"])
def test_a_bad_setting_is_named(config, setting):
    with pytest.raises(ConfigurationError, match=setting):
        read_settings(config)


def test_the_defaults_make_no_links():
    conf = read_settings({})
    assert not conf.links and conf.token_days == 365


def test_a_public_url_alone_makes_links():
    assert read_settings({"PUBLIC_URL": "https://guard.example"}).links


def test_a_trailing_slash_is_dropped():
    conf = read_settings({"PUBLIC_URL": "https://g.example/", "PREFERENCES_KEYS": KEYS})
    assert conf.public_url == "https://g.example" and conf.links
