"""The overview tells an admin how each CRM's last sync run went: records, refusals, error."""

from __future__ import annotations

import pytest
import responses

from guard.crm.sync import StoreBookmarks, run_sync
from tests.connectors.salesforce.conftest import make_connector as make_salesforce
from tests.connectors.salesforce.org import build_dealer_org
from tests.crm.conftest import installed_org


@pytest.fixture
def org():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield installed_org(mock, page_size=3)


def crm_panel(admin) -> str:
    html = admin.get("/console/").get_data(as_text=True)
    return html[html.index("<h2>CRMs</h2>"):html.index("Open owner tasks")]


def test_the_overview_shows_the_last_runs_records_and_refusals(admin, store, org):
    build_dealer_org(org)
    org.advance(minutes=5)
    summary, rejected = run_sync(store, make_salesforce(org))

    panel = crm_panel(admin)
    records = sum(summary.counts.values())
    assert records > 0
    assert f"{records:,} records, {len(rejected):,} refused" in panel
    assert "failed" not in panel


def test_a_failed_run_shows_its_error_without_personal_data(admin, store, org):
    build_dealer_org(org)
    org.advance(minutes=5)

    def store_refuses(events):
        raise RuntimeError("the store refused a row for anna@example.com, +49 170 1234567")

    store.ingest = store_refuses
    with pytest.raises(RuntimeError):
        run_sync(store, make_salesforce(org))

    panel = crm_panel(admin)
    assert "failed" in panel
    assert "RuntimeError: the store refused a row for [email], [phone]" in panel
    assert "anna@example.com" not in panel and "1234567" not in panel


def test_the_run_summary_is_not_taken_for_a_crm_bookmark(store, org):
    build_dealer_org(org)
    org.advance(minutes=5)
    run_sync(store, make_salesforce(org))

    streams = StoreBookmarks(store.engine, "salesforce").all()
    assert streams and not any(stream.startswith("guard:") for stream in streams)
