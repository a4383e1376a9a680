"""`xero-elt apikey create|list|revoke`: the key is printed once and only its hash is kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from store import open_store

# CLI subprocesses: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines", "apikey", *args],
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_key_is_shown_once_listed_without_its_value_and_revoked(tmp_home: Path) -> None:
    made = _cli("create", "--name", "platform backend")
    assert made.returncode == 0, made.stderr
    lines = dict(line.split(" ", 1) for line in made.stdout.splitlines())
    key, key_id = lines["key"], lines["key_id"]
    assert len(key) >= 32

    listed = _cli("list", "--json")
    assert [k["key_id"] for k in json.loads(listed.stdout)["api_keys"]] == [key_id]
    assert key not in listed.stdout + _cli("list").stdout
    for written in tmp_home.rglob("*"):  # the database, its WAL, logs: nowhere
        assert not written.is_file() or key.encode() not in written.read_bytes()
    assert open_store(tmp_home).check_api_key(key) is not None

    assert _cli("revoke", key_id).returncode == 0
    assert open_store(tmp_home).check_api_key(key) is None
    assert _cli("revoke", "key_unknown").returncode == 2


def test_a_key_gets_the_scope_asked_for_and_admin_by_default(tmp_home: Path) -> None:
    read = _cli("create", "--name", "dashboards", "--scope", "read")
    default = _cli("create", "--name", "backend")
    wrong = _cli("create", "--name", "x", "--scope", "root")
    assert read.returncode == 0, read.stderr
    assert "scope read" in read.stdout.splitlines()
    assert "scope admin" in default.stdout.splitlines()
    assert wrong.returncode == 2
    assert "invalid choice: 'root'" in wrong.stderr
    scopes = {k["name"]: k["scope"] for k in json.loads(_cli("list", "--json").stdout)["api_keys"]}
    assert scopes == {"dashboards": "read", "backend": "admin"}
