"""``guard demo`` runs offline, exits 0 and shows every story of SPEC §1 caught."""

from __future__ import annotations

from click.testing import CliRunner

from guard.cli import main
from guard.demo import STORIES
from guard.demo.sample import generate


def test_the_demo_catches_every_story(monkeypatch, tmp_path):
    monkeypatch.delenv("GUARD_POLICY", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["demo"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    for story in STORIES:
        assert f"{story.title}  [caught]" in out
    assert "MISSED" not in out
    assert "0 rejected" in out
    assert out.index("THE STORIES") < out.index("THE WHOLE WEEK")
    # The demo leaves nothing behind in the working directory.
    assert list(tmp_path.iterdir()) == []


def test_the_sample_is_the_same_every_time():
    assert generate(7, 60).events == generate(7, 60).events
    assert generate(7, 60).events != generate(8, 60).events
