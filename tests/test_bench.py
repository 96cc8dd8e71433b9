"""The benchmark runner: it runs, writes valid JSON, and never drops a group silently."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench import runner

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
    assert set(data["figures"]) == set(runner.DECLARED["engine"])
    for name, figure in data["figures"].items():
        assert isinstance(figure["value"], (int, float)), name
        assert isinstance(figure["met"], bool), name
        assert figure["unit"] and figure["target"], name
        assert name in done.stdout


def test_a_group_that_cannot_be_imported_is_reported_not_measured(monkeypatch):
    real_import = importlib.import_module

    def broken(name: str, *args):
        if name == "bench.proxy":
            raise ImportError("No module named 'gunicorn'")
        return real_import(name, *args)

    monkeypatch.setattr(runner.importlib, "import_module", broken)

    figures = runner.run_group("proxy", runner.QUICK)

    assert [f.name for f in figures] == ["proxy_added_p50_ms", "proxy_throughput_ratio"]
    for figure in figures:
        assert figure.value is None
        assert "cannot import bench.proxy" in figure.reason and "gunicorn" in figure.reason
    assert "not measured" in runner.table(figures)


@pytest.mark.parametrize("group", runner.GROUPS)
def test_the_runner_knows_each_groups_figures(group):
    module = importlib.import_module(f"bench.{group}")

    assert module.FIGURES == runner.DECLARED[group]
