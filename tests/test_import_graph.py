"""The house's import rules, read from the source (every import, including those inside
functions): no circles among runtime modules, imports flow `pipelines` → `auth_server` →
`connector`, `sandbox` imports nothing of ours, and no runtime module imports the tools, the
tests or the benchmarks. And every runtime module imports on its own in a fresh interpreter."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

# Subprocesses, daemons or fresh interpreters: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ("connector", "auth_server", "pipelines", "sandbox")
OURS = (*RUNTIME, "tools", "tests", "bench")
# Which of our packages each runtime package may import (besides itself).
ALLOWED = {
    "connector": set(),
    "auth_server": {"connector"},
    "pipelines": {"auth_server", "connector", "sandbox"},
    "sandbox": set(),
}


def _modules(packages: tuple[str, ...] = RUNTIME) -> dict[str, Path]:
    found = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Our modules that `path` imports (the longest known prefix of each imported name)."""
    targets: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            # `from pkg import module` imports the module; `from module import name`, the module.
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                     for alias in node.names]
        for imported in names:
            if imported.split(".")[0] not in OURS:
                continue
            parts = imported.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in known or end == 1:
                    targets.add(candidate)
                    break
    targets.discard(name)
    return targets


def _graph(packages: tuple[str, ...] = RUNTIME) -> dict[str, set[str]]:
    modules = _modules(packages)
    known = set(modules)
    return {name: _imports(path, name, known) for name, path in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in graph:
                continue
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circles_among_runtime_modules() -> None:
    assert _cycles(_graph()) == []


def test_no_import_circles_among_the_benchmarks() -> None:
    assert _cycles(_graph(("bench",))) == []


def test_imports_flow_one_way_and_never_into_tools_tests_or_bench() -> None:
    wrong = []
    for name, targets in _graph().items():
        package = name.split(".")[0]
        for target in targets:
            other = target.split(".")[0]
            if other != package and other not in ALLOWED[package]:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_runtime_module_imports_alone_in_a_fresh_interpreter() -> None:
    names = [n for n in _modules() if not n.endswith("__main__")]

    def problem(name: str) -> str | None:
        # A bound per module, not for the whole set: a loaded machine slows every import.
        r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        return f"{name}: {r.stderr.strip().splitlines()[-1]}" if r.returncode else None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        failed = [p for p in pool.map(problem, names) if p]
    assert failed == []


def test_benchmarks_and_tools_never_import_the_tests() -> None:
    wrong = []
    for folder in ("bench", "tools"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                modules = ([a.name for a in node.names] if isinstance(node, ast.Import) else
                           [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                wrong += [f"{path.relative_to(ROOT)} imports {m}" for m in modules
                          if m.split(".")[0] == "tests"]
    assert wrong == []
