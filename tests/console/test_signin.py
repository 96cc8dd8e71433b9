"""Sign-in and sign-out, sessions that end, CSRF refusals, read-only keys, the audit log."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from guard.console import session, usage
from guard.http import keys
from guard.services import services
from guard.store.tables import console_audit, console_sessions, settings

from .conftest import csrf_of, post, sign_in

PAGES = ["/console/", "/console/decisions", "/console/people", "/console/policy",
         "/console/outbox", "/console/keys", "/console/audit", "/console/decisions/dec_x",
         "/console/people/per_x"]


def test_every_page_sends_a_stranger_to_sign_in(app):
    client = app.test_client()
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/console/login?next="), path


def test_a_path_that_names_no_page_is_a_page_saying_so(app, admin):
    assert app.test_client().get("/console/nothing/here").status_code == 302
    response = admin.get("/console/nothing/here")
    assert response.status_code == 404 and "text/html" in response.content_type
    assert "No console page at /console/nothing/here" in response.get_data(as_text=True)


def test_a_forged_or_tampered_cookie_is_no_session(app, make_key):
    client = app.test_client()
    client.set_cookie(session.COOKIE, "made-up.value.sig", path="/console")
    assert client.get("/console/").status_code == 302


def test_sign_in_sets_a_strict_httponly_cookie_and_returns_to_the_page(app, make_key):
    _, secret = make_key("admin")
    client = app.test_client()
    response = sign_in(client, secret, "/console/outbox")
    assert response.status_code == 302 and response.headers["Location"] == "/console/outbox"
    cookie = next(h for h in response.headers.getlist("Set-Cookie")
                  if h.startswith(session.COOKIE + "="))
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert client.get("/console/outbox").status_code == 200


def test_sign_in_never_sends_a_reader_to_another_site(app, make_key):
    _, secret = make_key("admin")
    for target in ("https://evil.example/", "//evil.example/", "/v1/keys"):
        response = sign_in(app.test_client(), secret, target)
        assert response.headers["Location"] == "/console/", target


def test_keys_that_may_not_sign_in_are_told_why(app, make_key):
    _, checker = make_key("check")
    client = app.test_client()
    response = sign_in(client, checker)
    assert response.status_code == 403
    assert "neither the &#39;admin&#39; nor the &#39;console&#39; scope" in response.get_data(
        as_text=True)
    response = sign_in(client, "cg_not-a-key")
    assert response.status_code == 401 and "unknown or revoked" in response.get_data(as_text=True)
    assert client.get("/console/").status_code == 302


def test_sign_in_without_the_forms_token_is_refused(app, make_key):
    _, secret = make_key("admin")
    client = app.test_client()
    response = client.post("/console/login", data={"key": secret, "csrf": "guess"})
    assert response.status_code == 403
    assert client.get("/console/").status_code == 302


def test_sign_out_ends_the_session_even_for_a_copied_cookie(app, admin):
    stolen = admin.get_cookie(session.COOKIE, path="/console").value
    response = post(admin, "/console/logout", page="/console/")
    assert response.status_code == 302 and response.headers["Location"] == "/console/login"
    assert admin.get("/console/").status_code == 302
    other = app.test_client()
    other.set_cookie(session.COOKIE, stolen, path="/console")
    assert other.get("/console/").status_code == 302


def test_sessions_expire(app, admin):
    with services(app).engine.begin() as conn:
        conn.execute(sa.update(console_sessions).values(
            expires_at=datetime(2000, 1, 1, tzinfo=UTC)))
    assert admin.get("/console/").status_code == 302


def test_revoking_the_key_ends_its_sessions(app, make_key):
    key_id, secret = make_key("console")
    client = app.test_client()
    sign_in(client, secret)
    assert client.get("/console/").status_code == 200
    keys.revoke_key(services(app).engine, key_id)
    assert client.get("/console/").status_code == 302


def test_a_change_without_the_csrf_token_is_refused_and_changes_nothing(app, admin, world):
    response = admin.post(f"/console/outbox/{world['unknown']}/mark-sent",
                          data={"csrf": "wrong"})
    assert response.status_code == 403
    assert "CSRF" in response.get_data(as_text=True)
    assert services(app).outbox.get(world["unknown"])["status"] == "unknown"
    assert admin.post(f"/console/outbox/{world['unknown']}/mark-sent").status_code == 403


def test_a_read_only_key_reads_but_changes_nothing(app, reader, world):
    html = reader.get("/console/outbox").get_data(as_text=True)
    assert world["unknown"] in html and "Mark sent" not in html
    response = post(reader, f"/console/outbox/{world['unknown']}/mark-sent",
                    page="/console/outbox")
    assert response.status_code == 403 and "read-only" in response.get_data(as_text=True)
    assert services(app).outbox.get(world["unknown"])["status"] == "unknown"
    response = post(reader, "/console/keys", {"name": "sneaky", "scopes": "admin"},
                    page="/console/keys")
    assert response.status_code == 403
    assert not [k for k in keys.list_keys(services(app).engine) if k["name"] == "sneaky"]


def test_the_secret_is_made_once_and_shared_through_the_store(app, store):
    from guard import create_app

    html = app.test_client().get("/console/login").get_data(as_text=True)
    assert csrf_of(html)
    other = create_app({"GUARD": store, "TESTING": True})
    assert session.secret(other, store.engine) == session.secret(app, store.engine)
    with store.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(settings)
                            .where(settings.c.name == session.SECRET_SETTING)).scalar() == 1


def test_changes_and_sign_ins_are_in_the_audit_log(app, admin, world):
    post(admin, f"/console/outbox/{world['unknown']}/mark-sent", page="/console/outbox")
    with services(app).engine.connect() as conn:
        rows = conn.execute(sa.select(console_audit).order_by(console_audit.c.id)).all()
    assert [(r.key_name, r.action, r.target) for r in rows] == [
        ("Ada admin", "sign-in", None), ("Ada admin", "outbox.mark_sent", world["unknown"])]
    html = admin.get("/console/audit").get_data(as_text=True)
    assert "outbox.mark_sent" in html and world["unknown"] in html and rows[0].key_id in html
    assert rows[0].key_id in usage.last_used(services(app).engine)  # signing in is a use
