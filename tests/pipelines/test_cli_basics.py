"""The command line's contract that needs no Xero: usage errors, the lock, JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.cli import main
from pipelines.lock import LockHeld, run_lock


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XERO_ELT_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "x.duckdb"))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pipelines", *args], capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=120, cwd=Path(__file__).parents[2],
    )


def test_bad_usage_exits_2(home: Path) -> None:
    assert main(["run", "--entities", "invoices"]) == 2
    assert main(["run", "--dataset", "bad name!"]) == 2
    assert main(["no-such-command"]) == 2


def test_run_with_no_connections_succeeds_and_prints_json(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["outcome"] == "ok"
    assert doc["organisations"] == []
    assert doc["pipeline"] == "xero_duckdb_xero"


def test_unknown_tenant_is_a_usage_error(home: Path) -> None:
    assert main(["run", "--tenant", "00000000-0000-0000-0000-000000000000"]) == 2


def test_overlapping_run_exits_75_with_one_line(home: Path) -> None:
    with run_lock(home):
        result = _cli("run", env={"XERO_ELT_HOME": str(home)})
    assert result.returncode == 75
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1
    assert "another xero-elt run" in lines[0]
    assert str(os.getpid()) in lines[0]


def test_wait_gives_up_after_the_deadline(home: Path) -> None:
    with run_lock(home), pytest.raises(LockHeld):
        with run_lock(home, wait=0.3):
            pass


def test_lock_is_released_when_the_holder_is_killed(home: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys,time; from pathlib import Path; from pipelines.lock import run_lock\n"
         "with run_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(60)",
         str(home)],
        stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2],
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(LockHeld):
        with run_lock(home):
            pass
    holder.kill()
    holder.wait()
    with run_lock(home):
        pass


def test_duckdb_file_named_like_the_dataset_is_refused(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(home.parent / "xero.duckdb"))
    assert main(["run"]) == 2
    assert "would not tell the catalog from the schema" in capsys.readouterr().err
