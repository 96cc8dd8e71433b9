"""Requests per minute by link and by client address, counted in the store every replica shares."""

from __future__ import annotations

from datetime import timedelta

from guard import create_app
from guard.preferences import limits
from tests.conftest import NOW

from .conftest import settings


def test_one_link_gets_its_allowance_then_a_429_page(make_app, anna, signer):
    app = make_app(PREFERENCES_RATE_PER_TOKEN=3)
    link = f"/preferences/{signer.person(anna, NOW)}"
    client = app.test_client()
    assert [client.get(link).status_code for _ in range(4)] == [200, 200, 200, 429]
    limited = client.get(link)
    assert limited.headers["Retry-After"] == "60"
    assert "Too many requests" in limited.get_data(as_text=True)
    # Another link of the same client still works.
    assert client.get(f"/preferences/{signer.person(anna, NOW + timedelta(seconds=1))}"
                      ).status_code == 200


def test_guessing_links_from_one_address_is_stopped(make_app):
    app = make_app(PREFERENCES_RATE_PER_ADDRESS=5)
    client = app.test_client()
    codes = [client.get(f"/u/k2.guess{n}.x").status_code for n in range(7)]
    assert codes == [404] * 5 + [429] * 2


def test_two_replicas_share_one_count(store, upstream, anna, signer):
    replicas = [create_app({"GUARD": store, **settings(upstream.url,
                                                        PREFERENCES_RATE_PER_TOKEN=4)})
                for _ in range(2)]
    link = f"/preferences/{signer.person(anna, NOW)}"
    codes = [replicas[n % 2].test_client().get(link).status_code for n in range(6)]
    assert codes == [200] * 4 + [429] * 2


def test_the_count_starts_again_the_next_minute(engine):
    assert all(limits.hit(engine, "t:x", 2, NOW) for _ in range(2))
    assert not limits.hit(engine, "t:x", 2, NOW + timedelta(seconds=30))
    assert limits.hit(engine, "t:x", 2, NOW + timedelta(minutes=1))


def test_a_mailbox_provider_posting_many_unsubscribes_from_one_address_is_not_held_back(
        make_app, signer):
    from guard.preferences.tokens import SUBJECT_EMAIL

    app = make_app(PREFERENCES_RATE_PER_ADDRESS=3)
    client = app.test_client()
    tokens = [signer.message(SUBJECT_EMAIL, f"c{n}@example.com", "oem", "email", "marketing",
                             NOW) for n in range(6)]
    codes = [client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"}).status_code
             for token in tokens]
    assert codes == [200] * 6
