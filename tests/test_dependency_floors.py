"""The declared dependencies admit no release with a known vulnerability the guard is exposed to."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]

# The newest affected release of each package, and what it is affected by.
VULNERABLE = [
    ("waitress", "3.0.0", "CVE-2024-49768, CVE-2024-49769: request smuggling, DoS"),
    ("requests", "2.32.3", "CVE-2024-47081: .netrc credentials leak"),
    ("requests", "2.32.5", "CVE-2026-25645: predictable temporary file"),
    ("urllib3", "2.6.3", "CVE-2026-44432: decompression bomb in the streaming API"),
    ("werkzeug", "3.1.5", "CVE-2026-27199 and earlier: multipart and safe_join fixes"),
    ("flask", "3.1.2", "CVE-2026-27205: session access without Vary: Cookie"),
    ("marshmallow", "4.1.1", "CVE-2025-68480: Schema.load(many) DoS"),
    ("orjson", "3.11.5", "CVE-2025-67221: unbounded recursion in dumps"),
    ("gunicorn", "26.2.0", "CVE-2026-134820, CVE-2026-134821: ASGI parser smuggling, DoS"),
    ("setuptools", "78.1.0", "CVE-2025-47273: path traversal in PackageIndex"),
]


def _requirements() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    texts = [*project["build-system"]["requires"], *project["project"]["dependencies"]]
    for extra in project["project"]["optional-dependencies"].values():
        texts += extra
    found = {}
    for text in texts:
        requirement = Requirement(text)
        found[requirement.name.lower()] = requirement
    return found


@pytest.mark.parametrize(("package", "version", "why"), VULNERABLE,
                         ids=[f"{p}-{v}" for p, v, _ in VULNERABLE])
def test_no_vulnerable_release_is_admitted(package, version, why):
    requirement = _requirements().get(package)
    assert requirement is not None, f"{package} is not declared"
    assert not requirement.specifier.contains(version, prereleases=True), (
        f"{package} {requirement.specifier} admits {version} ({why})")


def test_ci_upgrades_pip_and_setuptools_before_installing():
    script = (ROOT / ".ci" / "run").read_text().splitlines()
    upgrade = next(i for i, line in enumerate(script) if "install -q --upgrade" in line)
    assert {"pip", "setuptools"} <= set(script[upgrade].split())
    assert upgrade < next(i for i, line in enumerate(script) if "-e '.[dev]'" in line)
