"""The plain-address fast path normalises exactly as email_validator does."""

from __future__ import annotations

import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import example, given, settings
from hypothesis import strategies as st

from guard.ingest.identity import _plain_email, normalize_email


def reference(text: str) -> str | None:
    """Return email_validator's lower-cased normal form, or None if it rejects the address."""
    try:
        return validate_email(text.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        return None


ATEXT = "abcXYZ019_!#$%&'*+-/=?^`{|}~"
local_parts = st.one_of(
    st.text(st.sampled_from(ATEXT + "."), min_size=0, max_size=20),
    st.text(st.sampled_from(ATEXT + '.@<>" \\éß\u0301'), min_size=0, max_size=12),
    st.sampled_from(["info", "Postmaster", '"quoted"', '"a b"', "Anna.Schulz"]),
)
labels = st.one_of(
    st.text(st.sampled_from("abzAZ09-"), min_size=0, max_size=8),
    st.text(st.sampled_from("aZ9-_.é\u3002ß"), min_size=0, max_size=6),
    st.sampled_from(["xn--bcher-kva", "XN--bcher-kva", "ab--cd", "a" * 63, "b" * 64, "1", "-a",
                     "a-"]),
)
tlds = st.one_of(
    st.text(st.sampled_from("abzAZ09-"), min_size=0, max_size=5),
    st.sampled_from(["com", "DE", "localhost", "LOCAL", "test", "onion", "arpa", "invalid",
                     "example", "c0m", "co1", "xn--p1ai", "com."]),
)
domains = st.builds(lambda ls, tld: ".".join([*ls, tld]), st.lists(labels, max_size=4), tlds)
addresses = st.one_of(
    st.builds(lambda local, at, domain, pad: pad + local + at + domain + pad,
              local_parts, st.sampled_from(["@", "@", "@", "@@", "＠", ""]), domains,
              st.sampled_from(["", " ", "\t", "\n"])),
    st.builds(lambda n, domain: "x" * n + "@" + domain, st.integers(1, 250), domains),
    st.builds(lambda n: "a@" + ".".join(["b" * 62] * n) + ".de", st.integers(1, 5)),
    st.text(max_size=30),
)


@settings(max_examples=1000)
@given(addresses)
@example("anna@example.com")
@example("Anna.Schulz@Example.COM")
@example("info@Example.com")
@example("a@localhost")
@example("a@mail.test")
@example("a@sub.onion")
@example("a@b.c0")
@example("a@b.0c")
@example("a@münchen.de")
@example("a@xn--mnchen-3ya.de")
@example("a@ab--c.de")
@example('"a"@b.de')
@example("a..b@c.de")
@example(".a@c.de")
@example("a.@c.de")
@example("a@-b.de")
@example("a@b-.de")
@example("a@b..de")
@example("a@b.de.")
@example("a@" + "b" * 63 + ".de")
@example("a@" + "b" * 64 + ".de")
@example("x" * 245 + "@b.de")
@example("x" * 250 + "@b.de")
@example("Anna <anna@b.de>")
def test_the_fast_path_agrees_with_email_validator(text):
    expected = reference(text)
    plain = _plain_email(text.strip())
    assert plain is None or plain == expected
    if expected is None:
        with pytest.raises(ValueError, match="not an email address"):
            normalize_email(text)
    else:
        assert normalize_email(text) == expected


@pytest.mark.parametrize("text", [
    "anna@example.com", " Anna.Schulz@Example.COM ", "o'brien+news@mail.example.co.uk",
    "a-b_c!#$%&'*+/=?^`{|}~@x1.example", "a@b.c0m",
], ids=["plain", "mixed-case", "plus-and-subdomain", "every-atext", "digit-in-tld"])
def test_common_addresses_take_the_fast_path(text):
    assert _plain_email(text.strip()) == reference(text)


@pytest.mark.parametrize("text", [
    "a@münchen.de", "a@xn--mnchen-3ya.de", '"a b"@c.de', "a@localhost.localhost",
    "Anna <anna@b.de>", "a@b.de1",
], ids=["unicode-domain", "punycode", "quoted", "special-use", "display-name", "digit-tld"])
def test_unusual_addresses_are_left_to_email_validator(text):
    assert _plain_email(text) is None
