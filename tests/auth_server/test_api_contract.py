"""The API keeps its contract: Schemathesis runs every operation of the served OpenAPI document
against the real auth server on loopback, with every check it has.

Schemathesis is a well-kept property-based tester for exactly this job: it derives valid and
invalid requests from the document (examples, boundary coverage, fuzzing, stateful sequences)
and checks each answer's status, content type, headers and body against it, so the document
and the server cannot drift apart unnoticed. It runs through its command line, its stable
interface (its pytest plugin does not support pytest 9.2's nodes yet).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from auth_server import api
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import RunningAuth
from tests.conftest import SandboxFactory

pytestmark = pytest.mark.hardening

MAX_EXAMPLES = 50  # per operation: bounds the run to well under a minute on 2 cores


@pytest.fixture
def contract_auth(sandbox_factory: SandboxFactory, tmp_home: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[RunningAuth, list[list[str]]]]:
    """A server whose side effects stay in a temporary home: syncs are recorded, not run, and a
    purge starts no ``pipelines`` subprocess (returned: the purges asked for)."""
    sandbox = sandbox_factory()
    sandbox.reset()
    purges: list[list[str]] = []

    def record(store: object, args: list[str], **_: object) -> object:
        purges.append(args)
        return lambda: (True, "done")

    monkeypatch.setattr(api, "cli_work", record)
    running = start_auth(sandbox, tmp_home)
    yield running, purges
    stop_auth(running)


def test_every_operation_keeps_the_documented_contract(
        contract_auth: tuple[RunningAuth, list[list[str]]], tmp_path: Path) -> None:
    auth, _ = contract_auth
    _, key = auth.store.create_api_key("schemathesis")
    command = [
        sys.executable, "-m", "schemathesis.cli", "--no-color", "run",
        f"{auth.url}/api/v1/openapi.json", "--url", f"{auth.url}/api/v1",
        "--header", f"Authorization: Bearer {key}",
        "--checks", "all", "--mode", "all", "--max-examples", str(MAX_EXAMPLES),
        "--generation-deterministic", "--no-shrink", "--seed", "0", "--workers", "1",
        "--request-timeout", "10",
        "--report-dir", str(tmp_path / "report"),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path,
                         check=False)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
