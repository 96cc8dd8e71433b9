"""Who a recipient or reference is: normalised emails, E.164 phones, CRM and source ids.

An identity is a ``(kind, value)`` pair: ``("email", "anna@example.com")``,
``("phone", "+4917012345678")`` or ``("ref", "salesforce:003…")`` (a CRM id
or the source of a person record, which are the same thing for the CRMs).
Records from different systems that share an identity are one person.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import email_validator
import phonenumbers
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import DOMAIN_MAX_LENGTH, EMAIL_MAX_LENGTH

from guard.store.ledger import ERASED_PREFIX

# CRM cross-reference keys accepted wherever a person is referenced.
CRM_SYSTEMS = ("salesforce", "hubspot")


@dataclass(frozen=True, slots=True)
class Ref:
    """A parsed reference: an identity to look up, or a person id (kind ``person``)."""

    kind: str  # email | phone | ref | person
    value: str


# The shape nearly every real address has: an unquoted ASCII dot-atom local part and an
# ASCII host name of at least two labels of at most 63 characters, whose last character is
# a letter (RFC 5322 3.2.3, RFC 1123 2.1, RFC 1035 2.3.1). For these email_validator's
# normalised form is the address itself with a lower-case domain, and _plain_email says so
# with one regular expression, where email_validator parses the address whole; everything
# else (quotes, Unicode, IDNA, display names, errors) is left to email_validator.
_ATEXT = r"[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+"
_LABEL = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?"
_PLAIN_EMAIL = re.compile(
    rf"{_ATEXT}(?:\.{_ATEXT})*@(?:{_LABEL}\.)+(?:[a-zA-Z0-9][a-zA-Z0-9-]{{0,61}})?[a-zA-Z]")
# Special-use names (localhost, test, onion, ...) that email_validator rejects, with any
# subdomain: matched against "." + domain.
_RESERVED = tuple("." + name for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)


def _plain_email(text: str) -> str | None:
    """Return email_validator's lower-cased normal form of a plain address, or None."""
    if len(text) > EMAIL_MAX_LENGTH or _PLAIN_EMAIL.fullmatch(text) is None:
        return None
    text = text.lower()
    domain = text[text.index("@") + 1:]
    # "--" covers Punycode ("xn--") labels, which email_validator decodes, and the
    # reserved "ab--" labels it rejects.
    if len(domain) > DOMAIN_MAX_LENGTH or "--" in domain or ("." + domain).endswith(_RESERVED):
        return None
    return text


def normalize_email(value: str) -> str:
    """Return the normalised (lower-case) address, or raise ValueError saying why."""
    if type(value) is str:
        plain = _plain_email(value.strip())
        if plain is not None:
            return plain
    return _validated_email(value)


@lru_cache(maxsize=65536)
def _validated_email(value: str) -> str:
    try:
        result = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not an email address: {value!r} ({exc})") from None
    return result.normalized.lower()


@lru_cache(maxsize=65536)
def normalize_phone(value: str, region: str | None = None) -> str:
    """Return the E.164 form (national numbers read in ``region``), or raise ValueError."""
    try:
        number = phonenumbers.parse(value.strip(), region)
    except phonenumbers.NumberParseException:
        raise ValueError(f"not a phone number: {value!r}") from None
    # Possible, not "valid": test and newly allocated ranges must still resolve.
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason != phonenumbers.ValidationResult.IS_POSSIBLE:
        raise ValueError(f"not a phone number: {value!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def address(value: Any, region: str | None = None) -> Ref:
    """Parse a bare email address or phone number."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"not an email address or phone number: {value!r}")
    if "@" in value:
        return Ref("email", normalize_email(value))
    try:
        return Ref("phone", normalize_phone(value, region))
    except ValueError:
        raise ValueError(f"not an email address or phone number: {value!r}") from None


def source_ref(system: Any, record_id: Any) -> Ref:
    """The identity of a record in another system (a CRM id or an event source)."""
    system = str(system).strip().lower()
    record_id = str(record_id).strip()
    if not system or not record_id:
        raise ValueError("a reference needs a system and an id")
    return Ref("ref", f"{system}:{record_id}")


def reference(value: Any, region: str | None = None) -> Ref:
    """Parse how an event or a check names a person.

    Accepted: ``{"system", "id"}`` (a record's source), ``{"email": …}``,
    ``{"phone": …}``, ``{"salesforce": "003…"}``, ``{"hubspot": "501"}``,
    ``{"person": "per_…"}``, or a bare email address or phone number.
    """
    if isinstance(value, str):
        return address(value, region)
    if not isinstance(value, Mapping):
        raise ValueError(f"not a reference: {value!r}")
    if "system" in value or "id" in value:
        if value.get("system") in (None, "") or value.get("id") in (None, ""):
            raise ValueError("a source reference needs system and id")
        return source_ref(value["system"], value["id"])
    if "email" in value:
        if not isinstance(value["email"], str):
            raise ValueError(f"not an email address: {value['email']!r}")
        return Ref("email", normalize_email(value["email"]))
    if "phone" in value:
        if not isinstance(value["phone"], str):
            raise ValueError(f"not a phone number: {value['phone']!r}")
        return Ref("phone", normalize_phone(value["phone"], region))
    if "person" in value and isinstance(value["person"], str) and value["person"]:
        return Ref("person", value["person"])
    for system in CRM_SYSTEMS:
        if system in value and value[system] not in (None, ""):
            return source_ref(system, value[system])
    raise ValueError(
        f"not a reference: {dict(value)!r} (give {{\"system\", \"id\"}}, email, phone, "
        "salesforce, hubspot or person)")


def crm_refs(crm_ids: Any) -> list[Ref]:
    """Turn ``{"salesforce": "003…", "hubspot": ["501", "502"]}`` into identities."""
    if crm_ids in (None, ""):
        return []
    if not isinstance(crm_ids, Mapping):
        raise ValueError(f"expected a mapping of system to id, got {crm_ids!r}")
    refs = []
    for system, ids in crm_ids.items():
        for record_id in ids if isinstance(ids, (list, tuple)) else [ids]:
            if record_id in (None, ""):
                continue
            if not isinstance(record_id, (str, int)):
                raise ValueError(f"{system}: not an id: {record_id!r}")
            refs.append(source_ref(system, record_id))
    return refs


# Characters no identifier may hold: C0 and C1 controls (CR, LF, NUL, NEL …) and the Unicode
# line and paragraph separators. A sender or owner reaches HTTP headers, CSV cells and log
# lines, where any of them starts a new line.
_CONTROL_CATEGORIES = frozenset(("Cc", "Zl", "Zp"))
# The widest identifier a column holds: senders and owners 128 characters, campaign,
# template and product ids 255.
SENDER_MAX = 128
ID_MAX = 255


def identifier(value: Any, limit: int = ID_MAX) -> str:
    """Return a sender, owner, campaign, template or product id as text, or raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"expected text, got {value!r}")
    text = str(value).strip()
    if not text:
        raise ValueError("must not be empty")
    if not text.isprintable() and any(
            unicodedata.category(c) in _CONTROL_CATEGORIES for c in text):
        raise ValueError("control characters are not allowed")
    if len(text) > limit:
        raise ValueError(f"at most {limit} characters, got {len(text)}")
    return text


def erasure_hash(key: bytes, ref: Ref) -> str:
    """Return the keyed hash (HMAC-SHA256) kept for an erased identity instead of it."""
    message = f"{ref.kind}:{ref.value}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def erased_recipient(key: bytes, ref: Ref) -> str:
    """Return what the ledger records instead of an erased recipient: never the address again."""
    return ERASED_PREFIX + erasure_hash(key, ref)
