"""RFC 8058 one-click unsubscribe headers on guarded SendGrid mail.

Each personalization whose message is marketing or sales, addressed to
exactly one recipient, gets ``List-Unsubscribe: <GUARD_PUBLIC_URL/u/<token>>``
and ``List-Unsubscribe-Post: List-Unsubscribe=One-Click`` in its own
``headers``, with a token naming that recipient, the sender, the channel and
the purpose category. A personalization is one message: with several
recipients one header would let any of them opt out the others, so it gets
none. Transactional, billing, service and safety mail gets none either: the
mailbox providers ask for one-click on bulk commercial mail only. A message
sent with a dynamic template also gets ``guard_unsubscribe_url`` and
``guard_preferences_url`` in each such personalization's template data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from guard.preferences.settings import PreferenceSettings
from guard.preferences.settings import signer as link_signer
from guard.preferences.tokens import SUBJECT_EMAIL, SUBJECT_PERSON
from guard.proxy.providers import custom_args

# Purpose categories whose mail carries a one-click unsubscribe.
CATEGORIES = ("marketing", "sales")
LIST_UNSUBSCRIBE = "List-Unsubscribe"
LIST_UNSUBSCRIBE_POST = "List-Unsubscribe-Post"
ONE_CLICK = "List-Unsubscribe=One-Click"
# Keys a dynamic template's data gets, for links in the mail's own text.
UNSUBSCRIBE_URL, PREFERENCES_URL = "guard_unsubscribe_url", "guard_preferences_url"


def unsubscribe_url(conf: PreferenceSettings, token: str) -> str:
    """Return the one-click link for a token."""
    return f"{conf.public_url}/u/{token}"


def add_headers(payload: dict | None, recipients: Sequence, guard, conf: PreferenceSettings,
                defaults: Mapping[str, str]) -> dict | None:
    """Give each single-recipient marketing or sales personalization its one-click headers.

    ``recipients`` are the allowed ones, each with ``email`` and ``decision``
    (whose ``person`` names whom the guard knows them as). Purpose and sender
    are read from the personalization's ``custom_args`` as the check read them.
    The caller's ``payload`` is left as it is; without ``GUARD_PUBLIC_URL`` and
    a key it is returned unchanged.
    """
    if payload is None or not conf.links:
        return payload
    signer = link_signer(conf, guard.engine)
    if signer is None:
        return payload
    policy, now = guard.policy, guard.clock()
    people = {r.email.lower(): getattr(r.decision, "person", None) for r in recipients}
    message_args = custom_args(payload.get("custom_args"))
    personalizations = list(payload.get("personalizations") or [])
    payload = {**payload, "personalizations": personalizations}
    for position, pers in enumerate(personalizations):
        addressed = [a for f in ("to", "cc", "bcc") for a in (pers.get(f) or [])]
        if len(addressed) != 1:
            continue
        email = str(addressed[0].get("email") or "").lower()
        if email not in people:
            continue
        args = {**message_args, **custom_args(pers.get("custom_args"))}
        purpose = str(args.get("guard_purpose") or defaults.get("purpose") or "")
        sender = str(args.get("guard_sender") or defaults.get("sender") or "")
        category = policy.purposes.get(purpose)
        if category not in CATEGORIES or not sender:
            continue
        person = people[email]
        subject, value = (SUBJECT_PERSON, person) if person else (SUBJECT_EMAIL, email)
        token = signer.message(subject, value, sender, "email", category, now)
        headers = dict(pers.get("headers") or {})
        headers[LIST_UNSUBSCRIBE] = f"<{unsubscribe_url(conf, token)}>"
        headers[LIST_UNSUBSCRIBE_POST] = ONE_CLICK
        changed = {**pers, "headers": headers}
        if str(payload.get("template_id") or "").startswith("d-"):
            # A dynamic template can show the links in the mail itself as well.
            links = {UNSUBSCRIBE_URL: unsubscribe_url(conf, token)}
            if person:
                links[PREFERENCES_URL] = f"{conf.public_url}/preferences/" \
                                         f"{signer.person(person, now)}"
            changed["dynamic_template_data"] = {**(pers.get("dynamic_template_data") or {}),
                                                **links}
        personalizations[position] = changed
    return payload
