"""create_app: settings from GUARD_* environment, start-up checks, admin key, /healthz."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from guard import create_app as build_app
from guard.checks.service import Guard
from guard.config import ConfigurationError
from guard.services import services
from guard.store.tables import api_keys

from .conftest import bearer

_built: list = []
DIGITS = "12345678901234567890123456789012"
FIRST, SECOND = "first-admin-secret-" + "a" * 20, "second-admin-secret-" + "b" * 20
BOOT = "bootstrap-admin-secret-" + "c" * 20


def create_app(config=None):
    """Build an app and remember its engine, so every test closes what it opened."""
    app = build_app(config)
    _built.append(services(app).engine)
    return app


@pytest.fixture(autouse=True)
def _dispose_engines():
    yield
    while _built:
        _built.pop().dispose()


def test_embedded_sqlite_needs_no_setup(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    # Digits only: Flask reads it as a JSON number; the setting stays the text it was.
    monkeypatch.setenv("GUARD_ADMIN_KEY", DIGITS)
    app = create_app()
    assert app.config["ADMIN_KEY"] == DIGITS
    client = app.test_client()
    health = client.get("/healthz")
    assert health.status_code == 200
    body = health.get_json()
    assert body["status"] == "ok" and body["store"]["ok"] is True
    assert body["policy"]["version"].startswith("sha256:")
    created = client.post("/v1/keys", json={"name": "t", "scopes": ["check"]},
                          headers=bearer(DIGITS))
    assert created.status_code == 201


def test_the_admin_key_bootstrap_is_idempotent_and_rotates(tmp_path):
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    for _ in range(2):
        create_app({"DATABASE_URL": url, "ADMIN_KEY": FIRST})
    app = create_app({"DATABASE_URL": url, "ADMIN_KEY": SECOND})
    with services(app).engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(api_keys)).scalar_one() == 1
    client = app.test_client()
    body = {"name": "t", "scopes": ["check"]}
    assert client.post("/v1/keys", json=body, headers=bearer(FIRST)).status_code == 401
    assert client.post("/v1/keys", json=body, headers=bearer(SECOND)).status_code == 201


def test_a_bad_policy_fails_start_up_with_file_and_line(tmp_path):
    broken = tmp_path / "policy.yaml"
    broken.write_text("senders: [oem]\nrules:\n  - id: x\n    kind: no_such_kind\n")
    with pytest.raises(ConfigurationError) as caught:
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}", "POLICY": str(broken)})
    assert f"{broken}:4:" in str(caught.value) or "policy.yaml:4:" in str(caught.value)


def test_a_missing_policy_file_fails_start_up(tmp_path):
    with pytest.raises(ConfigurationError, match="GUARD_POLICY"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}",
                    "POLICY": str(tmp_path / "absent.yaml")})


def test_a_bad_number_setting_names_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GUARD_EVENTS_MAX_BATCH", "lots")
    with pytest.raises(ConfigurationError, match="GUARD_EVENTS_MAX_BATCH"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"})


@pytest.mark.parametrize("lanes", ["0", "two"])
def test_a_bad_check_lanes_setting_names_it(tmp_path, monkeypatch, lanes):
    monkeypatch.setenv("GUARD_CHECK_LANES", lanes)
    with pytest.raises(ConfigurationError, match="GUARD_CHECK_LANES"):
        create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}"})


def test_check_lanes_apply_to_postgresql_and_never_to_sqlite(db_url, monkeypatch):
    monkeypatch.setenv("GUARD_CHECK_LANES", "1" if db_url.startswith("sqlite") else "3")
    guard = services(create_app({"DATABASE_URL": db_url})).guard
    assert guard._batcher.lanes == (1 if db_url.startswith("sqlite") else 3)
    monkeypatch.setenv("GUARD_CHECK_LANES", "4")
    guard = services(create_app({"DATABASE_URL": db_url})).guard
    assert guard._batcher.lanes == (1 if db_url.startswith("sqlite") else 4)


def test_healthz_reports_an_unmigrated_store_without_crashing(db_url):
    # PostgreSQL is migrated in the release phase, never at start-up; SQLite always is.
    app = create_app({"DATABASE_URL": db_url, "ADMIN_KEY": BOOT})
    response = app.test_client().get("/healthz")
    body = response.get_json()
    if db_url.startswith("sqlite"):
        assert response.status_code == 200 and body["store"]["ok"]
    else:
        assert response.status_code == 503
        assert body["status"] == "degraded"
        assert "guard db upgrade" in body["store"]["detail"]
        check = app.test_client().post("/v1/check", json={}, headers=bearer(BOOT))
        assert check.status_code == 503
        assert check.mimetype == "application/problem+json"


def test_healthz_reports_an_unreachable_store(policy):
    unreachable = sa.create_engine(
        "postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    app = create_app({"GUARD": Guard(unreachable, policy)})
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert "unreachable" in response.get_json()["store"]["detail"]
    unreachable.dispose()
