"""Starting and stopping the sandbox: the first line, clean exit on SIGTERM/SIGINT, the in-process
API, and how long 100,000 suppliers take to start (measured, reported, not asserted)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from sandbox.app import start_sandbox
from sandbox.handle import REPO_ROOT, SandboxHandle, make_grant, start_sandbox_process


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_first_line_then_clean_exit_on_signal(sig: signal.Signals) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--suppliers", "20", "--tenants", "1"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = process.stdout.readline().decode()
        assert re.fullmatch(r"sandbox listening on http://127\.0\.0\.1:\d+\n", line)
        url = line.split()[-1]
        assert httpx.get(f"{url}/_sandbox/clock").status_code == 200
        process.send_signal(sig)
        assert process.wait(timeout=10) == 0
        assert process.stderr.read() == b""
    finally:
        process.kill()
        process.wait()


def test_bad_arguments_exit_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--suppliers", "-5"],
        cwd=REPO_ROOT,
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert b"--suppliers" in result.stderr


def test_in_process_sandbox_for_benchmarks() -> None:
    with start_sandbox(tenants=1, suppliers=30, latency_ms=50) as running:
        handle = SandboxHandle(running.url)
        grant = make_grant(handle, handle.create_app())
        started = time.monotonic()
        response = httpx.get(
            f"{running.url}/api.xro/2.0/Accounts", headers=grant.headers(grant.tenant_ids[0])
        )
        assert response.status_code == 200
        assert time.monotonic() - started >= 0.05  # --latency-ms
        handle.close()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{running.url}/_sandbox/clock", timeout=2)


@pytest.mark.slow
def test_startup_with_100000_suppliers_is_seconds() -> None:
    process = start_sandbox_process(suppliers=100_000, rate_limits=False)
    try:
        handle = SandboxHandle(process.url)
        grant = make_grant(handle, handle.create_app())
        tenant = grant.tenant_ids[0]
        assert handle.tenants()[0]["counts"]["suppliers"] == 100_000
        # Over 100,000 contacts a supplier filter is HighVolumeException (test_high_volume.py);
        # this test times the slowest page, so it lifts the threshold.
        handle.settings(high_volume_threshold=1_000_000)
        started = time.monotonic()
        with httpx.Client(base_url=process.url, timeout=60) as client:
            last = client.get(
                "/api.xro/2.0/Contacts",
                params={
                    "page": 100,
                    "pageSize": 1000,
                    "where": "IsSupplier==true",
                    "includeArchived": "true",
                },
                headers=grant.headers(tenant),
            )
        page_seconds = time.monotonic() - started
        assert last.status_code == 200
        assert len(last.json()["Contacts"]) == 1000
        print(
            f"\nsandbox --suppliers 100000: started in {process.startup_seconds:.2f} s; "
            f"page 100 of 1000 in {page_seconds:.2f} s"
        )
        handle.close()
    finally:
        assert process.stop() == 0
