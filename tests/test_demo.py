"""``guard demo`` runs offline, exits 0 and shows every story of SPEC §1 caught."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from guard.cli import main
from guard.demo import STORIES
from guard.demo.sample import generate


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("GUARD_POLICY", raising=False)
        patch.chdir(folder)
        result = CliRunner().invoke(main, ["demo"])
    return result, folder


def story(out: str, title: str) -> str:
    """Return one story's block of the demo's output."""
    start = out.index(title)
    return out[start:out.index("\n\n", start)]


def test_the_demo_catches_every_story(demo):
    result, folder = demo
    assert result.exit_code == 0, result.output
    out = result.stdout
    for each in STORIES:
        assert f"{each.title}  [caught]" in out
    assert "MISSED" not in out
    assert "0 rejected" in out
    assert "rejected update" not in out
    assert out.index("THE STORIES") < out.index("THE WHOLE WEEK")
    # The demo leaves nothing behind in the working directory.
    assert list(folder.iterdir()) == []


def test_the_demo_shows_a_hand_over_as_a_change_in_the_records(demo):
    out = story(demo[0].stdout, "Head office calls a lead it handed to sales the day before")
    lines = out.splitlines()
    # Monday: head office still owns the lead and its offer goes out.
    assert lines[1].endswith("Black week offer: oem -> Lukas Brandt, email price_offer: ALLOW")
    # Tuesday: the CRM record changes owner; Wednesday head office's call goes to sales.
    assert lines[2].startswith("    Tue 14:00 UTC  Sales opens a deal: salesforce Contact")
    assert "Wed 09:00 UTC  Prospecting calls: oem -> Lukas Brandt, call prospecting" in out
    assert "REROUTE to owner sales" in out
    assert "relationship-owner: The recorded owner of this person with an open deal is sales" \
        in out
    assert "> task for sales:" in out


def test_the_dealer_gets_head_offices_offer_to_send_in_its_own_name(demo):
    out = story(demo[0].stdout, "A head-office finance letter the dealer knows nothing about")
    assert "REROUTE to owner dealer:munich" in out
    task = " ".join(out[out.index("> task for dealer:munich:"):].split())
    assert "(campaign finance-q4: '2.9% APR finance on a new car, any dealer')" in task
    assert "goes to dealer:munich instead, to send in its own name or let go." in task


def test_registered_campaigns_tell_the_owner_without_being_asked_to(demo):
    assert "notify_owner" not in str(generate(7, 60).events)
    assert re.search(r"registered-campaigns +notify +[1-9]", demo[0].stdout)


def test_the_sample_is_the_same_every_time():
    assert generate(7, 60).events == generate(7, 60).events
    assert generate(7, 60).events != generate(8, 60).events
