"""The app on the shared test store, keys by scope, and a scrape of /metrics as numbers."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from guard import create_app
from guard.http import keys
from guard.services import services


@pytest.fixture
def app(store):
    return create_app({"GUARD": store, "TESTING": True})


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def make_key(app):
    """Create a key with the given scopes; return its Authorization header."""

    def make(*scopes: str, sender: str | None = None, purpose: str | None = None) -> dict:
        _, secret = keys.create_key(services(app).engine, "test " + "+".join(scopes), scopes,
                                    sender=sender, purpose=purpose)
        return {"Authorization": f"Bearer {secret}"}

    return make


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """Read a Prometheus text answer as {(sample name, sorted labels): value}."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def scrape(client, make_key):
    """Scrape /metrics with a metrics key; return the samples."""
    header = make_key("metrics")

    def read() -> dict[tuple[str, tuple], float]:
        response = client.get("/metrics", headers=header)
        assert response.status_code == 200, response.data
        return samples(response.get_data(as_text=True))

    return read
