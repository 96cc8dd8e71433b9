"""The layout keeps its promises: rooms import one way, none reaches into another's privates."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# A module past this is doing more than one job; the README's Layout names each room's jobs.
MAX_LINES = 500


def _modules(package: str) -> dict[str, Path]:
    found = {}
    for path in (ROOT / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def _imports(name: str, path: Path, known: dict[str, Path]) -> tuple[set[str], list[str]]:
    """Return the known modules a module imports (anywhere in it) and private names it takes."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    deps: set[str] = set()
    private: list[str] = []
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            for alias in node.names:
                full = f"{module}.{alias.name}"
                if full in known:
                    deps.add(full)
                    aliases[alias.asname or alias.name] = full
                elif module in known:
                    deps.add(module)
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        private.append(f"{name} imports {module}.{alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in known:
                    deps.add(alias.name)
                    aliases[alias.asname or alias.name] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in aliases and node.attr.startswith("_")
                and not node.attr.startswith("__")):
            private.append(f"{name} uses {aliases[node.value.id]}.{node.attr}")
    deps.discard(name)
    return deps, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Return every group of modules that import each other round a loop (Tarjan's components)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in edges[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in edges:
        if node not in index:
            visit(node)
    return groups


def test_no_guard_module_outside_migrations_is_over_500_lines():
    long = {name: n for name, path in _modules("guard").items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_guard_modules_import_each_other_without_a_cycle_even_inside_functions():
    known = _modules("guard")
    edges = {name: _imports(name, path, known)[0] for name, path in known.items()}
    assert _cycles(edges) == []


def test_no_module_uses_another_modules_private_names():
    known = {**_modules("guard"), **_modules("policies"), **_modules("connectors")}
    private = [use for name, path in known.items() for use in _imports(name, path, known)[1]]
    assert private == []


def test_policies_and_connectors_import_neither_guard_nor_each_other():
    crossings = []
    rules = (("policies", ("guard", "connectors")), ("connectors", ("guard", "policies")))
    for package, forbidden in rules:
        for name, path in _modules(package).items():
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and not node.level:
                    targets = [node.module or ""]
                else:
                    continue
                crossings += [f"{name} imports {target}" for target in targets
                              if target.split(".")[0] in forbidden]
    assert crossings == []


def test_the_checker_finds_a_cycle_and_a_private_use_when_there_is_one(tmp_path):
    # The checks above pass on an empty answer; this shows they can fail.
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]
    module = tmp_path / "x.py"
    module.write_text("from guard.store import util\nutil._hidden()\n"
                      "from guard.store.util import _secret\n")
    known = {"guard.store.util": tmp_path / "util.py", "x": module}
    deps, private = _imports("x", module, known)
    assert deps == {"guard.store.util"}
    assert sorted(private) == ["x imports guard.store.util._secret",
                               "x uses guard.store.util._hidden"]
