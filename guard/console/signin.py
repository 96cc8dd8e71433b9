"""Sign in with an API key (scope ``admin`` or read-only ``console``), sign out, the audit log."""

from __future__ import annotations

import secrets

from flask import g, make_response, redirect, request, url_for

from guard.console import audit, session, usage
from guard.console.pages import (
    PageError,
    bp,
    engine,
    key_secret,
    page,
    secure_cookies,
    session_hours,
)
from guard.http import keys


def _safe_next(target: str | None) -> str:
    """Go back only to a console page of this site, never elsewhere."""
    if (target and target.startswith("/console") and not target.startswith("//")
            and "\\" not in target and "\n" not in target and "\r" not in target):
        return target
    return url_for("console.overview")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Show the sign-in form; sign in with a key that has scope admin or console."""
    if request.method == "GET" and g.viewer is not None:
        return redirect(_safe_next(request.args.get("next")))
    secure = secure_cookies()
    nonce = request.cookies.get(session.LOGIN_COOKIE)
    problem, status = None, 200
    if request.method == "POST":
        if not nonce or not session.same(session.login_token(key_secret(), nonce),
                                         request.form.get("csrf")):
            problem, status = ("This sign-in form has expired or did not come from the "
                               "console; try again."), 403
        else:
            token = (request.form.get("key") or "").strip()
            key = keys.authenticate(engine(), token) if token else None
            if not token:
                problem, status = "key: enter an API key.", 400
            elif key is None:
                problem, status = "key: unknown or revoked API key.", 401
            elif not key.allows(session.SCOPE):
                problem, status = (f"key: {key.name!r} has neither the 'admin' nor the "
                                   "'console' scope."), 403
            else:
                cookie = session.open_session(engine(), key, key_secret(), session_hours())
                response = redirect(_safe_next(request.form.get("next")))
                session.set_cookie(response, session.COOKIE, cookie, secure=secure,
                                   max_age=int(session_hours() * 3600))
                response.delete_cookie(session.LOGIN_COOKIE, path="/console")
                with engine().begin() as conn:
                    audit.record(conn, _as_viewer(key), "sign-in")
                usage.record_use(engine(), key.id)
                return response
    nonce = nonce or secrets.token_urlsafe(24)
    body, code = page("console/login.html", status=status, title="Sign in", problem=problem,
                      csrf=session.login_token(key_secret(), nonce),
                      next=request.values.get("next") or "")
    response = make_response(body, code)
    session.set_cookie(response, session.LOGIN_COOKIE, nonce, secure=secure, max_age=3600)
    return response


def _as_viewer(key: keys.ApiKey) -> session.Viewer:
    return session.Viewer(key.id, key.name, key.scopes, "", "")


@bp.post("/logout")
def logout():
    """End the session everywhere and clear the cookie."""
    who = g.viewer
    session.end_session(engine(), who)
    with engine().begin() as conn:
        audit.record(conn, who, "sign-out")
    response = redirect(url_for("console.login"))
    response.delete_cookie(session.COOKIE, path="/console")
    return response


@bp.get("/audit")
def audit_log():
    """List what was changed through the console, newest first."""
    before = request.args.get("before")
    if before is not None and not before.isdigit():
        raise PageError(f"before: expected an entry number, got {before!r}")
    rows = audit.entries(engine(), int(before) if before else None, audit.PAGE + 1)
    more = len(rows) > audit.PAGE
    rows = rows[:audit.PAGE]
    return page("console/audit.html", title="Audit", rows=rows,
                next_before=rows[-1].id if more and rows else None)
