"""The benchmark runner: it runs, writes valid JSON, and never drops a group silently."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import runner
from bench.figure import Spread, Target, ratio_figure

ROOT = Path(__file__).resolve().parent.parent


def test_a_quick_engine_run_writes_every_figure_as_json(tmp_path):
    out = tmp_path / "results.json"

    done = subprocess.run([sys.executable, "-m", "bench", "--quick", "--only", "engine",
                           "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)

    assert done.returncode == 0, done.stderr
    data = json.loads(out.read_text())
    assert data["run"]["mode"] == "quick"
    assert data["run"]["machine"]["cores"] >= 1
    for moment in ("before", "after"):
        loop = data["run"]["calibration"][moment]
        assert loop["unit"] == "ms" and loop["rounds"] == runner.QUICK.rounds
        assert 0 < loop["min"] <= loop["median"] <= loop["max"]
    assert set(data["figures"]) == set(runner.DECLARED["engine"])
    for name, figure in data["figures"].items():
        assert isinstance(figure["value"], (int, float)), name
        assert isinstance(figure["met"], bool), name
        assert figure["unit"] and figure["target"], name
        assert figure["value"] == figure["rounds"]["median"], name
        assert figure["rounds"]["min"] <= figure["value"] <= figure["rounds"]["max"], name
        assert figure["rounds"]["rounds"] == runner.QUICK.rounds, name
        assert name in done.stdout
    overhead = data["figures"]["engine_overhead_ratio"]
    assert overhead["floor"]
    assert set(overhead["absolute"]) == {"decide_us", "fetch_us"}


def test_a_ratio_figure_is_the_median_round_with_its_floor_and_absolutes():
    figure = ratio_figure("store_commit_ratio.sqlite", ("×", Target("<=", 2.5)),
                          [3.0, 2.0, 2.4, 9.0, 2.2], floor="a bare one-row commit",
                          absolute={"check_us": Spread.of([300, 200, 240, 900, 220], "µs")},
                          params={"rounds": 5})

    out = figure.to_dict()

    assert out["value"] == 2.4 and out["met"] is True and out["target"] == "≤ 2.5"
    assert out["rounds"] == {"median": 2.4, "min": 2.0, "max": 9.0, "rounds": 5}
    assert out["floor"] == "a bare one-row commit"
    assert out["absolute"]["check_us"] == {"median": 240, "min": 200, "max": 900,
                                           "rounds": 5, "unit": "µs"}
    line = runner.table([figure]).splitlines()[-1]
    assert "2.40 ×" in line and "2.00–9.00" in line and "≤ 2.5" in line and "check_us 240" in line


def test_every_figure_but_engine_speed_and_memory_is_a_ratio_to_a_floor():
    absolute = {"engine_decisions_per_s", "screen_peak_memory_mib"}
    for group in ("engine", "store", "growth", "http", "proxy", "screen", "sync"):
        for name, (unit, _target) in runner.DECLARED[group].items():
            assert (unit == "×") != (name in absolute), name


def test_a_group_that_cannot_be_imported_is_reported_not_measured(monkeypatch):
    real_import = importlib.import_module

    def broken(name: str, *args):
        if name == "bench.proxy":
            raise ImportError("No module named 'gunicorn'")
        return real_import(name, *args)

    monkeypatch.setattr(runner.importlib, "import_module", broken)

    figures = runner.run_group("proxy", runner.QUICK)

    assert [f.name for f in figures] == ["proxy_added_p50_ratio", "proxy_throughput_ratio"]
    for figure in figures:
        assert figure.value is None
        assert "cannot import bench.proxy" in figure.reason and "gunicorn" in figure.reason
    assert "not measured" in runner.table(figures)


@pytest.mark.parametrize("group", runner.GROUPS)
def test_the_runner_knows_each_groups_figures(group):
    module = importlib.import_module(f"bench.{group}")

    assert module.FIGURES == runner.DECLARED[group]
