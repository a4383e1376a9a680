"""Issue 11, finding 7: what a run leaves on disk is the user's alone, and no copy of the data
stays behind in dlt's load packages. Runs are real `python -m pipelines run` processes started
with the umask a login shell gives (022)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.hardening.conftest import CliHome

pytestmark = pytest.mark.hardening


def open_to_others(root: Path) -> list[str]:
    """Files and folders under ``root`` (itself included) with any group or other access.

    A file may go between listing and looking: SQLite deletes its `-wal` file when the last
    connection closes, and the test process's own store connections close whenever they are
    collected."""
    found = []
    for path in [root, *root.rglob("*")]:
        try:
            mode = path.lstat().st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISLNK(mode) and stat.S_IMODE(mode) & 0o077:
            found.append(f"{path} {stat.S_IMODE(mode):04o}")
    return found


def test_a_run_writes_private_files_and_keeps_no_loaded_data(cli_home: CliHome) -> None:
    previous = os.umask(0o022)
    try:
        result = cli_home.run()
    finally:
        os.umask(previous)
    assert result.code == 0, result
    assert stat.S_IMODE(cli_home.db.stat().st_mode) == 0o600
    assert open_to_others(cli_home.home) == []
    assert (cli_home.home / "runs.jsonl").exists()
    loaded = list(cli_home.home.glob("pipelines/*/load/loaded/*"))
    assert loaded, "expected dlt's record of the loaded packages"
    data_files = [p for p in cli_home.home.glob("pipelines/*/load/loaded/*/completed_jobs/*")
                  if p.is_file()]
    assert data_files == []
    assert "is open to other users" not in result.stderr


def test_an_open_home_is_reported(cli_home: CliHome) -> None:
    cli_home.home.chmod(0o755)
    result = cli_home.run()
    assert result.code == 0, result
    assert f"{cli_home.home} (XERO_ELT_HOME) is open to other users (mode 0755)" in result.stderr
