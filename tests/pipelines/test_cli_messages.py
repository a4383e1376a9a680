"""What `xero-elt run` says when something is wrong (issue 26, point 3): one true, specific
line that names the cause and the fix, read from the output as the operator reads it."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from pipelines.cli import main
from sandbox.handle import SandboxHandle, XeroGrant
from store import open_store
from tests.connector.conftest import connect_tenants

# CLI subprocesses: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def cli_env(sandbox: SandboxHandle, xero_app: dict[str, Any], tmp_home: Path,
            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {**sandbox.dlt_env(xero_app), "XERO_ELT_HOME": str(tmp_home),
           "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "x.duckdb"),
           "RUNTIME__DLTHUB_TELEMETRY": "false", "SOURCES__XERO__MAX_RETRIES": "1",
           "SOURCES__XERO__BACKOFF_SECONDS": "0.01"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=300, cwd=REPO)


def test_a_typo_in_the_destination_says_did_you_mean(cli_env: dict[str, str]) -> None:
    result = _cli("run", "--destination", "postgress", env=cli_env)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "unknown destination 'postgress': did you mean postgres?" in lines[0]
    assert "\\n" not in lines[0]
    assert "\\t" not in lines[0]
    assert "Traceback" not in result.stderr


def test_a_wrong_client_secret_fails_the_run_with_a_hint(
        cli_env: dict[str, str], sandbox: SandboxHandle, xero_grant: XeroGrant,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    connect_tenants(open_store(Path(cli_env["XERO_ELT_HOME"])), xero_grant, sandbox)
    monkeypatch.setenv("SOURCES__XERO__CLIENT_SECRET", "not-the-secret")
    # While the access token cached at connection lives, Xero's API takes it: the secret is
    # not asked for and the run loads. Once it has expired, the refresh needs the secret.
    assert main(["run", "--entities", "accounts"]) == 0
    sandbox.advance(1801)
    capsys.readouterr()
    code = main(["run"])
    err = capsys.readouterr().err
    assert code == 1
    hint = ("Xero rejected the app's client credentials (invalid_client): check "
            "sources.xero.client_secret")
    failed = [line for line in err.splitlines() if " ERROR " in line]
    assert len(failed) == 2  # one line per organisation
    for line in failed:
        assert hint in line
        accounts = line.split("; accounts: ", 1)[1].split("; ", 1)[0]
        # The entities of an organisation are read side by side: accounts either met the
        # refusal itself or was stopped by the entity that met it first; either way, it says so.
        own = accounts.startswith("token refresh: " + hint)
        assert own or re.match(r"not read because \w+ failed first: token refresh: "
                               + re.escape(hint), accounts), accounts
        assert "entity accounts" in accounts


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_xero_is_named_by_the_url_tried(
        cli_env: dict[str, str], sandbox: SandboxHandle, xero_grant: XeroGrant,
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    connect_tenants(open_store(Path(cli_env["XERO_ELT_HOME"])), xero_grant, sandbox)
    nowhere = f"http://127.0.0.1:{_closed_port()}/api.xro/2.0"
    monkeypatch.setenv("SOURCES__XERO__API_URL", nowhere)
    assert main(["run", "--entities", "accounts"]) == 1
    err = capsys.readouterr().err
    assert f"Xero could not be reached at {nowhere}/Accounts after 2 attempts" in err
    assert "ConnectError: " in err  # and why: the refusal, not just the exception's name


def test_an_entity_s_error_names_that_entity(
        cli_env: dict[str, str], sandbox: SandboxHandle, xero_grant: XeroGrant,
        capsys: pytest.CaptureFixture[str]) -> None:
    connect_tenants(open_store(Path(cli_env["XERO_ELT_HOME"])), xero_grant, sandbox)
    sandbox.fault(kind="status", status=503, path="/api.xro/2.0/Accounts", count=50)
    assert main(["run"]) in (1, 3)
    failed = [line for line in capsys.readouterr().err.splitlines() if " ERROR " in line]
    assert failed
    for line in failed:
        accounts = line.split("accounts: ", 1)[1].split("; ", 1)[0]
        assert "entity accounts" in accounts
        assert "entity suppliers" not in accounts
        assert "HTTP 503" in accounts


def test_ctrl_c_stops_the_run_quickly_with_one_line_and_records_it(
        cli_env: dict[str, str], sandbox: SandboxHandle, xero_grant: XeroGrant) -> None:
    import signal
    import time

    home = Path(cli_env["XERO_ELT_HOME"])
    connect_tenants(open_store(home), xero_grant, sandbox)
    sandbox.fault(kind="slow", seconds=8, path="/api.xro/2.0/Accounts", count=50)
    # As a terminal starts it: a suite started in the background (``make test &``) passes on an
    # ignored SIGINT, and a process that starts with SIGINT ignored never sees Ctrl-C.
    proc = subprocess.Popen([sys.executable, "-m", "pipelines", "run"], cwd=REPO,
                            env={**os.environ, **cli_env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(6)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    if os.environ.get("DUMP_STACKS"):
        time.sleep(1.0)
        dump = subprocess.run(["py-spy", "dump", "--pid", str(proc.pid)], capture_output=True,
                              text=True)
        print(dump.stdout[-6000:], file=sys.__stderr__)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - started
    assert proc.returncode == 130
    assert took < 3, f"{took:.1f} s after Ctrl-C"  # not the 8 s Xero takes to answer
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines[-1] == ("xero-elt run: interrupted (Ctrl-C); recorded as interrupted, and the "
                         "next run catches up")
    assert "KeyboardInterrupt" not in err
    assert "Traceback" not in err
    history = [json.loads(line) for line in (home / "runs.jsonl").read_text().splitlines()]
    assert history[-1]["outcome"] == "interrupted"
    conns = open_store(home).list_connections()
    assert {c.last_sync_outcome for c in conns} == {"interrupted"}
    assert {c.sync_state for c in conns} == {None}  # not "syncing" for ever, not "failed"
    # Nothing was lost: the next run loads everything.
    sandbox.clear_faults()
    assert main(["run"]) == 0
