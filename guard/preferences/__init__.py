"""Preferences: the customer's own terms, for every sender of the company at once.

    settings.py    public URL, signing keys, token lifetime, the company's name and look
    tokens.py      signed links: a person's preference link, a message's one-click link
    texts.py       every word of the pages, in English and German, in one place
    pages.py       /preferences/<token> and RFC 8058 /u/<token>
    links.py       POST /v1/preferences/link: a person's link, for a tool's own mail
    sms.py         Twilio's incoming-message webhook: STOP and START
    recording.py   choices recorded as consent and person events (source ``preferences``)
    headers.py     List-Unsubscribe headers on guarded SendGrid marketing and sales mail
    limits.py      requests per minute by link and by client address, shared by replicas
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the customer's pages, the link endpoint and the SMS opt-out webhook."""
    from guard.preferences import links, pages, sms

    app.register_blueprint(pages.bp)
    app.register_blueprint(links.bp)
    app.register_blueprint(sms.bp)
