"""GET /readyz: ready only with a reachable, migrated store and a loaded policy."""

from __future__ import annotations

import sqlalchemy as sa

from guard import create_app
from guard.checks.service import Guard
from guard.services import services


def test_ready_when_store_is_migrated_and_policy_loaded(client, store):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.get_json()
    assert body["ready"] is True
    assert body["store"]["ok"] and body["policy"]["version"] == store.policy.version


def test_not_ready_while_the_store_is_not_migrated(db_url):
    app = create_app({"DATABASE_URL": db_url, "TESTING": True})
    response = app.test_client().get("/readyz")
    services(app).engine.dispose()
    if db_url.startswith("sqlite"):
        # The embedded store is migrated at start-up: ready at once.
        assert response.status_code == 200
    else:
        assert response.status_code == 503
        body = response.get_json()
        assert body["ready"] is False
        assert "guard db upgrade" in body["store"]["detail"]


def test_not_ready_while_the_store_is_unreachable(policy):
    unreachable = sa.create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    try:
        app = create_app({"GUARD": Guard(unreachable, policy), "TESTING": True})
        response = app.test_client().get("/readyz")
        assert response.status_code == 503
        assert "unreachable" in response.get_json()["store"]["detail"]
    finally:
        unreachable.dispose()


def test_not_ready_without_a_policy(engine):
    app = create_app({"GUARD": Guard(engine, None), "TESTING": True})
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.get_json()["policy"] == {"ok": False,
                                             "detail": "no policy loaded: see GUARD_POLICY"}
