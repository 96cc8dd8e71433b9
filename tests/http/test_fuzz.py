"""Whatever JSON a caller posts, the answer is never a server error."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

CHANNELS = st.sampled_from(["email", "sms", "call", "mail", "push", "pigeon", ""])
TEXT = st.text(max_size=30)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
# Bodies near the real shape reach deeper than pure noise does.
CHECK_BODIES = JSON | st.fixed_dictionaries(
    {"channel": CHANNELS, "to": st.one_of(TEXT, st.emails(), JSON)},
    optional={"purpose": st.sampled_from(["newsletter", "price_offer", "x"]) | JSON,
              "sender": st.sampled_from(["oem", "dealer:munich", "dealer:", "*"]) | JSON,
              "at": st.one_of(TEXT, st.datetimes().map(lambda d: d.isoformat()), JSON),
              "product": JSON, "campaign": JSON, "commit": JSON},
)
EVENT_TYPES = st.sampled_from(["person", "account", "purchase", "contract", "consent", "case",
                               "service", "invoice", "touch", "campaign", "erase", "other"])
EVENTS = st.fixed_dictionaries(
    {"type": EVENT_TYPES | JSON,
     "source": st.fixed_dictionaries({"system": TEXT, "id": TEXT}) | JSON},
    optional={"emails": st.lists(st.emails() | TEXT, max_size=2) | JSON,
              "person": st.fixed_dictionaries({"email": st.emails()}) | JSON,
              "at": TEXT | JSON, "product": JSON, "channel": CHANNELS | JSON,
              "status": TEXT, "purpose": TEXT},
)
EVENT_BODIES = JSON | st.fixed_dictionaries({"events": st.lists(EVENTS, max_size=4) | JSON})

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@SETTINGS
@given(body=CHECK_BODIES)
def test_check_never_fails_on_bad_input(client, checker, body):
    response = client.post("/v1/check", json=body, headers=checker)
    assert response.status_code < 500, response.get_data(as_text=True)


@SETTINGS
@given(body=EVENT_BODIES)
def test_events_never_fail_on_bad_input(client, feeder, body):
    response = client.post("/v1/events", json=body, headers=feeder)
    assert response.status_code < 500, response.get_data(as_text=True)


@SETTINGS
@given(body=JSON | st.fixed_dictionaries({"attempt": CHECK_BODIES,
                                          "recipients": st.lists(TEXT | JSON, max_size=4)}))
def test_screen_never_fails_on_bad_input(client, checker, body):
    response = client.post("/v1/screen", json=body, headers=checker)
    assert response.status_code < 500, response.get_data(as_text=True)
