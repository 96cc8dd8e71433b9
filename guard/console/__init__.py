"""The admin console at /console: pages for CRM admins, compliance and operators.

Server-rendered with Jinja2; no JavaScript needed but for nothing (charts
are SVG drawn here). Same process, store and keys as the API.

    pages.py      the blueprint; sign-in check, CSRF, error pages, shared helpers
    session.py    the shared secret, sessions in the store, CSRF tokens
    signin.py     sign-in, sign-out, the audit page
    audit.py      the audit log of changes made through the console
    usage.py      when each API key was last used
    decisions.py  the decision list (filters, keyset paging) and one decision
    people.py     people search, a person's profile, flags, timeline; erasure
    outbox.py     held, deferred and unknown sends; retry and mark sent
    keys.py       API keys: list, create (shown once), revoke
    overview.py   verdicts per day, top stopping rules, outbox, CRM sync
    policy.py     the rules in force; check, test, simulate and publish a draft
    versions.py   policy versions kept in the store
    charts.py     SVG charts drawn on the server
    describe.py   the pages in the OpenAPI document
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the console's pages and the note of each API key's use."""
    from guard.console import (  # noqa: F401 - each module adds its pages to the blueprint
        decisions,
        describe,
        keys,
        outbox,
        overview,
        people,
        policy,
        signin,
        usage,
    )
    from guard.console.pages import bp

    app.register_blueprint(bp)
    usage.init_app(app)
