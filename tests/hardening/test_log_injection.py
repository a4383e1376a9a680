"""Organisation names come from Xero and end up in our logs and terminal output: a name with a
line break or a terminal escape must not forge a log line or drive the operator's terminal."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from sandbox.handle import SandboxHandle
from tests.hardening.conftest import ROOT, CliHome

pytestmark = pytest.mark.hardening

FORGED = "2026-01-01T00:00:00 INFO run 20260101T000000Z-000000: ok (9 organisation(s), 0.1 s)"
HOSTILE_NAME = f"Evil Ltd\n{FORGED}\n\x1b[2J\x1b]0;pwned\x07"


@pytest.fixture
def hostile_home(sandbox: SandboxHandle, xero_app: dict[str, Any],
                 make_home: Callable[..., CliHome]) -> CliHome:
    tenant_id = sandbox.tenant_ids()[0]
    sandbox.http.post(f"/_sandbox/tenants/{tenant_id}",
                      json={"name": HOSTILE_NAME}).raise_for_status()
    home = make_home(sandbox, xero_app)
    home.connect()
    return home


def _clean(text: str) -> None:
    assert "\x1b" not in text, repr(text[-500:])
    assert "\x07" not in text
    assert not any(line.strip() == FORGED for line in text.splitlines()), text[-2000:]


def test_a_hostile_organisation_name_cannot_forge_run_log_lines(hostile_home: CliHome) -> None:
    result = hostile_home.run()
    assert result.code == 0, result
    _clean(result.stderr)


def test_a_hostile_organisation_name_is_printed_safely_by_connections(
    hostile_home: CliHome,
) -> None:
    done = subprocess.run([sys.executable, "-m", "pipelines", "connections"], cwd=ROOT,
                          env=hostile_home.env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    _clean(done.stdout)
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    assert len(lines) == 1 + 2, done.stdout  # the header and one line per connection
