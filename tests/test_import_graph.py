"""What import-linter cannot check of the house's import rules.

The rules themselves (imports flow `pipelines` → `auth_server` → `store` → `connector`,
`sandbox` alone, no runtime module imports the tools, the tests or the benchmarks, no circles
inside a package) are import-linter contracts in pyproject.toml, run by `make lint`. Here, in
fresh interpreters: the connector imports alone, bringing nothing of the app with it (a plain
dlt user installs and imports it without the app), and every runtime module imports on its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ("connector", "store", "auth_server", "pipelines", "sandbox")
# Not the product's, but run by hand (`python -m bench.memory_profile`): they must import too.
BUILD = ("bench", "tools")
# What a plain dlt user's `from connector import xero_source` must not bring along.
NOT_WITH_THE_CONNECTOR = ("store", "auth_server", "pipelines", "sandbox", "cryptography")


def _modules(packages: tuple[str, ...] = RUNTIME) -> list[str]:
    found = []
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


@pytest.mark.parametrize("statement", [
    "import connector",
    "from connector import xero_source",
    "import connector.source",
])
def test_the_connector_comes_alone(statement: str) -> None:
    code = (f"{statement}\nimport json, sys\n"
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, check=True)
    loaded = set(json.loads(r.stdout.strip().splitlines()[-1]))
    assert loaded & set(NOT_WITH_THE_CONNECTOR) == set()
    assert "connector" in loaded


@pytest.mark.slow  # one interpreter per module: `make test` runs it, `make test-fast` does not
def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    names = [n for n in _modules(RUNTIME + BUILD) if not n.endswith("__main__")]

    def problem(name: str) -> str | None:
        # A bound per module, not for the whole set: a loaded machine slows every import.
        r = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        return f"{name}: {r.stderr.strip().splitlines()[-1]}" if r.returncode else None

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        failed = [p for p in pool.map(problem, names) if p]
    assert failed == []
