"""Run ``guard`` as a shell would: on the migrated test store, or with no store at all."""

from __future__ import annotations

import pytest
from click.testing import CliRunner


@pytest.fixture
def runner(engine, db_url, monkeypatch):
    """Run ``guard`` commands against the migrated test store, as a shell would."""
    monkeypatch.setenv("GUARD_DATABASE_URL", db_url)
    monkeypatch.delenv("GUARD_POLICY", raising=False)
    monkeypatch.delenv("GUARD_ADMIN_KEY", raising=False)
    return CliRunner()


@pytest.fixture
def bare_runner(monkeypatch):
    """Run ``guard`` commands that need no store, under the shipped policy."""
    monkeypatch.delenv("GUARD_POLICY", raising=False)
    return CliRunner()
