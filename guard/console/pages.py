"""The console's blueprint and what every page shares: sign-in check, CSRF, errors, helpers.

Every page but the sign-in form needs a session (``session.viewer``); a
request without one is sent to the sign-in page. Every ``POST`` carries the
session's CSRF token, and every change needs an ``admin`` key. Errors are a
page saying what was wrong, never a traceback.
"""

from __future__ import annotations

import urllib.parse
from datetime import UTC, date, datetime
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup, escape
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException

from guard.console import session
from guard.errors import GuardError
from guard.services import services
from policies.model import parse_datetime

bp = Blueprint("console", __name__, url_prefix="/console", template_folder="templates",
               static_folder="static")

# Pages reachable without a session.
_OPEN = {"console.login", "console.static"}
SESSION_HOURS = 8.0


class PageError(Exception):
    """A request a page cannot answer; shown to the reader with its status."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def engine():
    """The store the app's services use."""
    return services().engine


def key_secret() -> bytes:
    return session.secret(current_app, engine())


def session_hours() -> float:
    return float(current_app.config.get("CONSOLE_SESSION_HOURS") or SESSION_HOURS)


@bp.before_request
def require_session() -> Response | None:
    """Send readers without a session to sign-in; refuse a POST without the CSRF token."""
    if request.endpoint == "console.static":
        return None
    g.viewer = session.viewer(engine(), request, key_secret(), session_hours())
    if request.endpoint in _OPEN:
        return None
    if g.viewer is None:
        target = request.full_path if request.method == "GET" else None
        query = {"next": target.rstrip("?")} if target else {}
        return redirect(url_for("console.login", **query))
    if request.method == "POST" and not session.same(g.viewer.csrf, request.form.get("csrf")):
        raise PageError("This form has expired or did not come from the console (CSRF token "
                        "missing or wrong); nothing was changed. Reload the page and try "
                        "again.", 403)
    return None


def require_change() -> session.Viewer:
    """Return the viewer if their key may change things; else refuse the request."""
    who = g.viewer
    if not who.can_change:
        raise PageError(f"Key {who.key_name!r} has the read-only 'console' scope; changes "
                        "need an 'admin' key. Nothing was changed.", 403)
    return who


@bp.after_request
def protect(response: Response) -> Response:
    """Keep console pages out of frames, caches and other sites' referrers."""
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    if request.endpoint != "console.static":
        response.headers["Cache-Control"] = "no-store"
    return response


@bp.errorhandler(PageError)
def _page_error(exc: PageError):
    return page("console/error.html", status=exc.status, title="Cannot do that",
                message=exc.message)


@bp.errorhandler(GuardError)
def _guard_error(exc: GuardError):
    return page("console/error.html", status=exc.status, title=exc.title, message=exc.detail)


@bp.errorhandler(SQLAlchemyError)
def _store_error(exc: SQLAlchemyError):
    current_app.logger.exception("console: store error on %s", request.path)
    return page("console/error.html", status=503, title="Store unavailable",
                message="The store did not answer (or is not migrated: run `guard db "
                        "upgrade`); nothing was changed. See /healthz.")


@bp.route("/<path:rest>", methods=["GET", "POST"])
def unknown_page(rest: str):
    """Answer a console path that names no page."""
    raise PageError(f"No console page at /console/{rest}.", 404)


def secure_cookies() -> bool:
    """Send cookies over HTTPS only when the console is reached over HTTPS."""
    public = services().crm.public_url or ""
    return request.is_secure or public.startswith("https://")


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return page("console/error.html", status=exc.code or 500, title=exc.name,
                message=exc.description or exc.name)


def page(template: str, *, status: int = 200, **context: Any):
    """Render a console page."""
    return render_template(template, viewer=g.get("viewer"), **context), status


@bp.app_template_filter("when")
def when(value: Any) -> str:
    """Show a stored time as ``2026-11-23 10:00 UTC``."""
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        try:
            value = parse_datetime(value)
        except (ValueError, TypeError):
            return value
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


# HubSpot record pages by object type.
_HUBSPOT_TYPES = {"contact": "0-1", "company": "0-2", "deal": "0-3", "ticket": "0-5",
                  "contacts": "0-1", "companies": "0-2", "deals": "0-3", "tickets": "0-5"}


def record_url(evidence: Any) -> str | None:
    """Link a piece of evidence to its record in Salesforce or HubSpot, when we know where."""
    if not isinstance(evidence, dict):
        return None
    system = str(evidence.get("system") or "").lower()
    kind = str(evidence.get("type") or "")
    record = urllib.parse.quote(str(evidence.get("id") or ""), safe="")
    if not record:
        return None
    config = current_app.config
    if system == "salesforce":
        base = config.get("SALESFORCE_INSTANCE_URL")
        domain = config.get("SALESFORCE_DOMAIN")
        if not base and domain and domain not in ("login", "test"):
            base = f"https://{domain}.my.salesforce.com"
        if not base or not str(base).startswith("https://"):
            return None
        base = str(base).rstrip("/")
        if kind and kind.isidentifier():
            return f"{base}/lightning/r/{kind}/{record}/view"
        return f"{base}/{record}"
    if system == "hubspot":
        portal = str(config.get("HUBSPOT_PORTAL_ID") or "")
        object_type = _HUBSPOT_TYPES.get(kind.lower())
        if portal.isdigit() and object_type:
            return f"https://app.hubspot.com/contacts/{portal}/record/{object_type}/{record}"
    return None


@bp.app_template_global("evidence_link")
def evidence_link(evidence: Any) -> Markup:
    """Render evidence as ``system Type id``, linked into the CRM when possible."""
    if not isinstance(evidence, dict):
        return escape(str(evidence))
    text = escape(" ".join(str(evidence.get(k) or "") for k in ("system", "type", "id")
                           if evidence.get(k)))
    url = record_url(evidence)
    if url:
        return Markup('<a href="{}" rel="noopener noreferrer" target="_blank">{}</a>').format(
            url, text)
    return text


@bp.app_template_global("csrf_field")
def csrf_field() -> Markup:
    """The hidden CSRF field every changing form carries."""
    who = g.get("viewer")
    token = who.csrf if who else ""
    return Markup('<input type="hidden" name="csrf" value="{}">').format(token)
