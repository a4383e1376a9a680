"""What import-linter cannot check of the house's import rules.

The rules themselves (imports flow `pipelines` → `auth_server` → `store` → `connector`,
`sandbox` alone, no runtime module imports the tools, the tests or the benchmarks, no circles
inside a package) are import-linter contracts in pyproject.toml, run by `make lint`. Here, in
fresh interpreters: the connector imports alone, bringing nothing of the app with it (a plain
dlt user installs and imports it without the app), and every runtime module imports on its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
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


# Run in a fresh interpreter: the third-party libraries are imported once, then each of our
# modules is imported in a fork of that interpreter, alone. Forking saves importing dlt, Dagster
# and pandas 139 times (86 s of the suite, 10 s this way) and hides nothing of ours: no module of
# the project is loaded before the fork.
_IMPORT_EACH = """
import importlib, json, os, sys
for lib in json.loads(sys.argv[2]):
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
failed = []
for name in json.loads(sys.argv[1]):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
        except BaseException as exc:
            os.write(write, f"{type(exc).__name__}: {exc}".encode()[:2000])
            os._exit(1)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read().decode()
    if os.waitpid(pid, 0)[1]:
        failed.append(f"{name}: {message or 'the import crashed the interpreter'}")
print(json.dumps(failed))
"""
THIRD_PARTY = ("dlt", "dagster", "httpx", "duckdb", "pandas", "pyarrow", "pydantic",
               "cryptography", "jinja2", "babel", "tenacity", "psycopg2", "sqlalchemy")


def _import_each(names: list[str]) -> list[str]:
    """The modules of `names` that fail to import alone, each with its error."""
    r = subprocess.run([sys.executable, "-c", _IMPORT_EACH, json.dumps(names),
                        json.dumps(THIRD_PARTY)], cwd=ROOT, capture_output=True, text=True,
                       timeout=600, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    names = [n for n in _modules(RUNTIME + BUILD) if not n.endswith("__main__")]
    assert len(names) > 100
    assert _import_each(names) == []


def test_a_module_that_cannot_import_alone_is_named() -> None:
    """The check itself: a missing module and a broken one are both reported by name."""
    failed = _import_each(["connector", "connector.no_such_module", "json.no_such_module"])
    assert [f.split(":")[0] for f in failed] == ["connector.no_such_module", "json.no_such_module"]
