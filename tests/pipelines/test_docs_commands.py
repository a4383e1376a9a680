"""The docs' own commands work as written (issue 26, point 4): the README's query one-liner and
key one-liner, docs/sandbox.md's recipe pointing the CLI at a running sandbox, and
docs/deploy.md's move of the store (issue 24, point 4)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from sandbox.handle import SandboxHandle

# Shell commands in subprocesses: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
SANDBOX_DOC = (REPO / "docs" / "sandbox.md").read_text()
DEPLOY_DOC = (REPO / "docs" / "deploy.md").read_text()


def _bash(script: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    # `python` and `xero-elt` are this interpreter and this checkout's CLI, as after `make`.
    shims = cwd / "bin"
    shims.mkdir(exist_ok=True)
    (shims / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (shims / "xero-elt").write_text(f'#!/bin/sh\nexec {sys.executable} -m pipelines "$@"\n')
    for shim in shims.iterdir():
        shim.chmod(0o755)
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], cwd=cwd, capture_output=True, text=True,
        timeout=120, env={**os.environ, "PATH": f"{shims}:{os.environ['PATH']}",
                          "PYTHONPATH": str(REPO), **(env or {})})
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_the_readme_query_one_liner_prints_the_answer(tmp_path: Path) -> None:
    block = re.search(r"```sh\n(\.venv/bin/python -c \"import duckdb.*?\nSQL)\n```", README,
                      re.S)
    assert block, "the README's query one-liner moved"
    demo = tmp_path / "demo-data"
    demo.mkdir()
    with duckdb.connect(str(demo / "xero_elt.duckdb")) as db:
        db.execute("CREATE SCHEMA xero")
        db.execute("CREATE TABLE xero.organisations AS SELECT 'tenant-1' AS tenant_id, "
                   "'Kauri Bay Trading Ltd' AS organisation_name")
    script = block.group(1).replace(".venv/bin/python", "python")
    assert "Kauri Bay Trading Ltd" in _bash(script, tmp_path)


def test_the_key_one_liner_makes_a_key_the_store_accepts(tmp_path: Path) -> None:
    line = re.search(r"`(export XERO_ELT_SECRET_KEY=\$\(.*?\))`", README)
    assert line, "the README's key one-liner moved"
    out = _bash(line.group(1) + "\npython -c 'import os; from store.keys import "
                "fernet; fernet(os.environ[\"XERO_ELT_SECRET_KEY\"].encode()); print(\"ok\")'",
                tmp_path)
    assert out.strip() == "ok"


def test_the_sandbox_recipe_points_the_cli_at_a_running_sandbox(
        sandbox: SandboxHandle, tmp_path: Path) -> None:
    blocks = re.findall(r"```sh\n(.*?)```", SANDBOX_DOC.split(
        "## Run the real flow against the sandbox, from the shell", 1)[1], re.S)
    setup = blocks[1]
    # The recipe's own sandbox is on port 8000; this test's is already running elsewhere.
    script = setup.replace("SANDBOX=http://127.0.0.1:8000", f"SANDBOX={sandbox.url}")
    script = script.replace("xero-elt serve &", "")
    script += "\nenv | grep '^SOURCES__XERO__' | sort\n"
    out = _bash(script, tmp_path, env={"AUTH_SERVER__PUBLIC_URL": "http://127.0.0.1:8765"})
    assert re.search(r"^invite con_[0-9a-f]+$", out, re.M)
    assert re.search(r"^link http://127\.0\.0\.1:8765/invite/\S+$", out, re.M)
    settings = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    assert settings["SOURCES__XERO__API_URL"] == f"{sandbox.url}/api.xro/2.0"
    app = [a for a in sandbox._call("GET", "/apps") if a["name"] == "local"]
    assert app
    assert settings["SOURCES__XERO__CLIENT_ID"] == app[-1]["client_id"]


def test_the_deploy_recipe_moves_the_store_and_the_cli_reads_it_there(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from store import lifecycle, open_store, utcnow

    section = DEPLOY_DOC.split("## From cron to the shared store", 1)[1]
    recipe = re.search(r"```sh\n(.*?)```", section, re.S)
    assert recipe, "docs/deploy.md's move recipe moved"
    for name in ("XERO_ELT_SECRET_KEY", "XERO_ELT_STORE_URL", "XERO_ELT_TARGET_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    home = tmp_path / "home"
    monkeypatch.setenv("XERO_ELT_HOME", str(home))
    store = open_store(home)  # cron's store: SQLite, its key file beside it
    conn = store.create_connection("Kauri Bay", "a@example.test", invite_token_hash="h",
                                   invite_expires_at=utcnow())
    grant = store.add_grant({"access_token": "a", "refresh_token": "r"}, client_id="app")
    lifecycle.apply(store, conn.connection_id, lifecycle.Event.IMPORT, tenant_id="t-1",
                    organisation_name="Kauri Bay Ltd", grant_id=grant.grant_id)
    store.close()
    # The recipe's PostgreSQL URL stands for any other store; a SQLite file needs no server.
    script = recipe.group(1).replace("postgresql://xero_elt@db:5432/xero_elt",
                                     f"sqlite:///{tmp_path / 'shared' / 'store.sqlite3'}")
    script += 'mv "$XERO_ELT_HOME/store.sqlite3" "$XERO_ELT_HOME/old.sqlite3"\n'  # only the copy
    script += "xero-elt connections --json\n"
    out = _bash(script, tmp_path)
    assert "copied 3, already there 0 (from " in out
    assert '"organisation_name": "Kauri Bay Ltd"' in out
