"""The customer's pages: ``/preferences/<token>`` and RFC 8058 ``/u/<token>``.

No login: the signed link is the key. Anything wrong with a link is the same
404 page, so a guesser learns nothing. The preference page is a browser form,
protected against cross-site posts by a SameSite cookie and a signed form
field bound to it and to the link; the one-click POST takes neither (RFC 8058:
mailbox providers send it without cookies).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from datetime import date, timedelta

from flask import Blueprint, Response, render_template, request

from guard.errors import NotFound
from guard.http.openapi import register_path
from guard.preferences import limits, recording
from guard.preferences.recording import CHANNELS, TOPICS, Choices, Refused
from guard.preferences.settings import signer as link_signer
from guard.preferences.texts import texts_for
from guard.preferences.tokens import MESSAGE, SUBJECT_PERSON, Grant, Signer, digest
from guard.services import services
from policies.localtime import DAYS, Hours
from policies.model import Profile
from policies.rules.contact_window import person_window

bp = Blueprint("preferences", __name__, template_folder="templates")

CSRF_COOKIE = "guard_preferences"
ONE_CLICK_FIELD, ONE_CLICK_VALUE = "List-Unsubscribe", "One-Click"
PAUSE_MAX = timedelta(days=5 * 366)
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class _Invalid(Exception):
    """A form value the page cannot take; ``key`` names the text that says why."""

    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _now():
    return services().guard.clock()


def _signer() -> Signer | None:
    return link_signer(services().preferences, services().engine)


def _page(template: str, status: int = 200, **values) -> Response:
    conf = services().preferences
    lang, texts = texts_for(request.accept_languages)
    nonce = secrets.token_urlsafe(16)
    html = render_template(f"preferences/{template}", t=texts, lang=lang, nonce=nonce,
                           company=conf, **values)
    response = Response(html, status=status, mimetype="text/html")
    # The link is the key: it must not leak to other sites, caches or frames.
    response.headers.update({
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Content-Language": lang,
        "Content-Security-Policy": (f"default-src 'none'; style-src 'nonce-{nonce}'; "
                                    "img-src https: http:; form-action 'self'; "
                                    "frame-ancestors 'none'; base-uri 'none'"),
    })
    return response


def _not_found() -> Response:
    return _page("notfound.html", 404)


def _limited() -> Response:
    response = _page("limited.html", 429)
    response.headers["Retry-After"] = "60"
    return response


def _refusal(token: str, valid: bool) -> Response | None:
    """Count the request; return the answer when its link is not valid or over its limit."""
    conf, engine, now = services().preferences, services().engine, _now()
    if not valid:
        # Only requests without a valid link count by address: that is what guessing looks
        # like, while a mailbox provider posts many customers' one-click unsubscribes from
        # one address and must never be held back. The address is the one the guard's
        # socket sees: behind a proxy, the proxy's (see README).
        address = f"a:{request.remote_addr or '-'}"[:80]
        within = limits.hit(engine, address, conf.rate_per_address, now)
        return _not_found() if within else _limited()
    if not limits.hit(engine, f"t:{digest(token)}", conf.rate_per_token, now):
        return _limited()
    return None


def _grant(token: str) -> Grant | None:
    signer = _signer()
    return signer.read(token, _now()) if signer else None


def _person(grant: Grant) -> tuple[str, dict] | None:
    """Return the live person a grant names and their stored profile, or None."""
    if grant.subject != SUBJECT_PERSON:
        return None
    try:
        found = services().guard.person(grant.value, ledger_limit=1)
    except NotFound:
        return None
    if found["erased"]:
        return None
    return found["id"], found["profile"]


def mask(text: str | None) -> str:
    """Show enough of an address for its owner to know it, and little to anyone else."""
    if not text:
        return ""
    if "@" in text:
        local, _, domain = text.partition("@")
        return f"{local[:1]}{'*' * max(len(local) - 1, 3)}@{domain}"
    return f"{text[:3]}{'*' * max(len(text) - 5, 3)}{text[-2:]}"


# -- one-click unsubscribe -----------------------------------------------------------------


def _message_grant(token: str) -> Grant | None:
    grant = _grant(token)
    return grant if grant is not None and grant.kind == MESSAGE else None


def _unsubscribe_page(grant: Grant, token: str, *, done: bool) -> Response:
    link = None
    if _person(grant) is not None:
        link = f"/preferences/{_signer().person(grant.value, _now())}"
    return _page("unsubscribe.html", grant=grant, token=token, done=done,
                 preferences_link=link)


@bp.get("/u/<path:token>")
def unsubscribe_form(token: str) -> Response:
    """Ask before unsubscribing: link checkers follow GETs, so a GET changes nothing."""
    grant = _message_grant(token)
    refused = _refusal(token, grant is not None)
    if refused is not None:
        return refused
    return _unsubscribe_page(grant, token, done=False)


@bp.post("/u/<path:token>")
def unsubscribe(token: str) -> Response:
    """Record the one-click opt-out (RFC 8058): idempotent, no cookie, no CSRF token."""
    grant = _message_grant(token)
    refused = _refusal(token, grant is not None)
    if refused is not None:
        return refused
    if request.form.get(ONE_CLICK_FIELD) != ONE_CLICK_VALUE:
        return _page("unsubscribe.html", 400, grant=grant, token=token, done=False,
                     preferences_link=None)
    try:
        recording.unsubscribe(services().guard, grant, token, _now())
    except Refused:
        return _not_found()
    return _unsubscribe_page(grant, token, done=True)


# -- the preference page -------------------------------------------------------------------


def _csrf_value(cookie: str, token: str) -> str:
    signing = _signer()
    if signing is None:  # the store's key went out of reach since the link was read
        raise NotFound("token: not found", field="token")
    key = signing.keys[signing.key_id]
    return hmac.new(key, f"csrf|{cookie}|{digest(token)}".encode(), hashlib.sha256).hexdigest()


def _preference_page(token: str, person_id: str, profile: dict, choices: Choices, *,
                     status: int = 200, saved: bool = False, error: str | None = None
                     ) -> Response:
    cookie = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(32)
    addresses = [mask(a) for a in (profile.get("emails") or [])[:1] +
                 (profile.get("phones") or [])[:1]]
    hours, days = _window(choices.contact_hours)
    response = _page("preferences.html", status, token=token, choices=choices,
                     channels=CHANNELS, topics=TOPICS, addresses=addresses,
                     hours=hours.text.split("-") if hours else ("", ""),
                     days={DAYS[d]: not days or d in days for d in range(7)},
                     csrf=_csrf_value(cookie, token), saved=saved, error=error,
                     today=_now().date().isoformat())
    response.set_cookie(CSRF_COOKIE, cookie, httponly=True, samesite="Strict",
                        secure=request.is_secure, path="/preferences/")
    return response


def _days_text(days: list[str]) -> str:
    """Write days as a person's contact hours hold them: runs of three or more as ranges."""
    runs: list[list[int]] = []
    for number in sorted(DAYS.index(day) for day in days):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ",".join(f"{DAYS[run[0]]}-{DAYS[run[-1]]}" if len(run) >= 3
                    else ",".join(DAYS[n] for n in run) for run in runs)


def _window(text: str | None):
    """Read stored contact hours (maybe with days) for the form; unreadable ones show empty."""
    try:
        return person_window(text) if text else (None, ())
    except ValueError:
        return None, ()


def _open(token: str) -> tuple[str, dict] | Response:
    grant = _grant(token)
    found = _person(grant) if grant is not None else None
    return _refusal(token, found is not None) or found


@bp.get("/preferences/<path:token>")
def preferences(token: str) -> Response:
    """Show a person's preferences for every sender of the company."""
    opened = _open(token)
    if isinstance(opened, Response):
        return opened
    person_id, profile = opened
    return _preference_page(token, person_id, profile,
                            recording.current(Profile.from_dict(profile)))


@bp.post("/preferences/<path:token>")
def save_preferences(token: str) -> Response:
    """Record the choices of the form as consent and person events."""
    opened = _open(token)
    if isinstance(opened, Response):
        return opened
    person_id, profile = opened
    before = recording.current(Profile.from_dict(profile))
    cookie = request.cookies.get(CSRF_COOKIE)
    sent = request.form.get("csrf") or ""
    if not cookie or not hmac.compare_digest(sent, _csrf_value(cookie, token)):
        return _preference_page(token, person_id, profile, before, status=400,
                                error="error.form")
    try:
        after, stop = _read_form(before)
    except _Invalid as exc:
        return _preference_page(token, person_id, profile, before, status=400, error=exc.key)
    try:
        recording.save(services().guard, person_id, profile, before, after,
                       stop != before.stopped, _now())
    except Refused:
        return _not_found()
    fresh = services().guard.person(person_id, ledger_limit=1)["profile"]
    return _preference_page(token, person_id, fresh,
                            recording.current(Profile.from_dict(fresh)), saved=True)


def _read_form(before: Choices) -> tuple[Choices, bool]:
    form = request.form
    stop = form.get("stop") == "on"
    channels = {c: form.get(f"channel_{c}") == "on" for c in CHANNELS}
    topics = {t: form.get(f"topic_{t}") == "on" for t in TOPICS}
    cells = {}
    for (channel, topic), was in before.cells.items():
        if stop:
            cells[(channel, topic)] = False
        elif before.stopped or channels[channel] != before.channels[channel] \
                or topics[topic] != before.topics[topic]:
            cells[(channel, topic)] = channels[channel] and topics[topic]
        else:
            cells[(channel, topic)] = was
    preferred = form.get("preferred_channel") or None
    if preferred is not None and preferred not in CHANNELS:
        raise _Invalid("error.channel")
    start, end = (form.get("hours_from") or "").strip(), (form.get("hours_to") or "").strip()
    hours = None
    if start or end:
        if not (_TIME.match(start) and _TIME.match(end)):
            raise _Invalid("error.hours")
        try:
            hours = Hours.parse(f"{start}-{end}").text
        except ValueError:
            raise _Invalid("error.hours") from None
    # No day ticked means every day, as no hours mean any time ("stop" stops everything).
    days = [day for day in DAYS if form.get(f"day_{day}") == "on"]
    if 0 < len(days) < len(DAYS):
        # Days before the hours, as a person's contact_hours holds them: "mon-fri 09:00-18:00".
        hours = " ".join(part for part in (_days_text(days), hours) if part)
    pause = None
    text = (form.get("pause_until") or "").strip()
    if text:
        today = _now().date()
        try:
            pause = date.fromisoformat(text)
        except ValueError:
            raise _Invalid("error.pause") from None
        if not today < pause <= today + PAUSE_MAX:
            raise _Invalid("error.pause")
    return Choices(cells, preferred, hours, pause), stop


_TOKEN = {"name": "token", "in": "path", "required": True, "schema": {"type": "string"},
          "description": "A signed link token; forged, expired or cut ones answer 404."}
_HTML = {"text/html": {"schema": {"type": "string"}}}
_PAGE = {"200": {"description": "The page.", "content": _HTML},
         "404": {"description": "Not a valid link (the same page for every reason).",
                 "content": _HTML},
         "429": {"description": "Too many requests from this link or address; see Retry-After.",
                 "content": _HTML}}
register_path("/preferences/{token}", {
    "get": {"summary": "The customer's preference page, for every sender of the company",
            "tags": ["preferences"], "parameters": [_TOKEN], "responses": _PAGE},
    "post": {"summary": "Save the preference form (CSRF-protected browser form)",
             "tags": ["preferences"], "parameters": [_TOKEN],
             "requestBody": {"content": {"application/x-www-form-urlencoded": {
                 "schema": {"type": "object", "properties": {
                     "csrf": {"type": "string"},
                     **{f"channel_{c}": {"type": "string", "enum": ["on"]} for c in CHANNELS},
                     **{f"topic_{t}": {"type": "string", "enum": ["on"]} for t in TOPICS},
                     "preferred_channel": {"type": "string", "enum": ["", *CHANNELS]},
                     "hours_from": {"type": "string", "example": "09:00"},
                     "hours_to": {"type": "string", "example": "18:00"},
                     "pause_until": {"type": "string", "format": "date"},
                     "stop": {"type": "string", "enum": ["on"]}}}}}},
             "responses": {**_PAGE, "400": {"description": "A value the page cannot take, or "
                                                           "a stale form; the page says which.",
                                            "content": _HTML}}},
})
register_path("/u/{token}", {
    "get": {"summary": "One-click unsubscribe (RFC 8058): asks, changes nothing",
            "tags": ["preferences"], "parameters": [_TOKEN], "responses": _PAGE},
    "post": {"summary": "One-click unsubscribe (RFC 8058): opt out of the message's category "
                        "on its channel; idempotent, no cookie or CSRF token",
             "tags": ["preferences"], "parameters": [_TOKEN],
             "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {
                 "schema": {"type": "object", "required": ["List-Unsubscribe"], "properties": {
                     "List-Unsubscribe": {"type": "string", "enum": ["One-Click"]}}}}}},
             "responses": {**_PAGE, "400": {"description": "The body is not "
                                                           "List-Unsubscribe=One-Click.",
                                            "content": _HTML}}},
})
