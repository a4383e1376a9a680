"""One Xero budget for the app, across processes: three `xero-elt run` workers on one store, the
sandbox's app limit at 30 calls in a 6-second window (Xero's 10,000 a minute, in a tenth of the
time: 300 a minute). No 429 at all, and together they keep within 10% of the limit; a worker
killed (SIGKILL) while it holds budget leaks nothing: the two left still reach the limit.

Each worker is a machine of its own (its own XERO_ELT_HOME) on one store (the SQLite file, by
its URL), and loads two organisations of its own (`--tenant`), into a dataset of its own, with
small pages so the load takes many calls. Throughput is read from the sandbox's request log: the
calls in each 6-second window ending on a 0.25-second grid over the busy period, on average.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sandbox.handle import SandboxHandle, make_grant
from store import Store, open_store
from tests.conftest import SandboxFactory
from tests.connector.conftest import connect_tenants

# Several `xero-elt run` processes for most of a minute: `make test` runs it, `make test-fast`
# does not.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
LIMIT = 30
WINDOW = 6
WORKERS = 3


@pytest.fixture
def budget_sandbox(sandbox_factory: SandboxFactory) -> SandboxHandle:
    """Six organisations, the app limit at 30 calls in 6 seconds (per organisation: Xero's)."""
    sandbox = sandbox_factory(tenants=6, suppliers=120)
    sandbox.reset()
    sandbox.limits(app_minute=LIMIT, app_window_seconds=WINDOW)
    return sandbox


@pytest.fixture
def workers_env(budget_sandbox: SandboxHandle, tmp_home: Path, tmp_path: Path
                ) -> tuple[dict[str, str], Store]:
    """The environment of every worker (one store, the budget's settings) and the store, with
    the six organisations connected."""
    app = budget_sandbox.create_app(name="budget")
    grant = make_grant(budget_sandbox, app)
    store = open_store(tmp_home)
    connect_tenants(store, grant, budget_sandbox)
    env = {
        **os.environ,
        **budget_sandbox.dlt_env(app),
        "SOURCES__XERO__APP_CALLS_PER_MINUTE": str(LIMIT),
        "SOURCES__XERO__APP_WINDOW_SECONDS": str(WINDOW),
        "SOURCES__XERO__PAGE_SIZE": "5",
        "SOURCES__XERO__BACKOFF_SECONDS": "0.05",
        "SOURCES__XERO__MAX_BACKOFF_SECONDS": "0.5",
        "XERO_ELT_STORE_URL": f"sqlite:///{tmp_home / 'store.sqlite3'}",
    }
    env.pop("SOURCES__XERO__HISTORY", None)
    return env, store


def _start(env: dict[str, str], tmp_path: Path, n: int, tenants: list[str]) -> subprocess.Popen:
    home = tmp_path / f"machine{n}"
    home.mkdir(mode=0o700, exist_ok=True)
    worker_env = {**env, "XERO_ELT_HOME": str(home),
                  "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / f"load{n}.duckdb")}
    tenant_args = [arg for tenant in tenants for arg in ("--tenant", tenant)]
    return subprocess.Popen(
        [sys.executable, "-m", "pipelines", "run", "--destination", "duckdb",
         "--dataset", f"worker{n}", *tenant_args, "--json"],
        cwd=ROOT, env=worker_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _app_calls(sandbox: SandboxHandle) -> list[dict[str, Any]]:
    """The calls that count against the app's limit (the Accounting API and /connections)."""
    return [r for r in sandbox.requests()
            if r["path"].startswith("/api.xro/") or r["path"].startswith("/connections")]


def _seconds(call: dict[str, Any]) -> float:
    return datetime.fromisoformat(call["time"].replace("Z", "+00:00")).timestamp()


def _per_window(times: list[float], start: float, end: float) -> float:
    """Calls in the 6-second window ending at each point of a 0.25 s grid over [start, end],
    on average."""
    points = [start + i * 0.25 for i in range(int((end - start) / 0.25) + 1)]
    counts = [sum(1 for t in times if point - WINDOW < t <= point) for point in points]
    return sum(counts) / len(counts)


def _most_in_a_window(times: list[float]) -> int:
    """The most calls any 6-second window held (as the sandbox counts: a rolling window)."""
    return max(sum(1 for t in times if first <= t < first + WINDOW) for first in times)


def test_three_workers_share_the_app_limit_without_a_429_and_within_10_percent_of_it(
    budget_sandbox: SandboxHandle, workers_env: tuple[dict[str, str], Store], tmp_path: Path
) -> None:
    env, _store = workers_env
    tenants = budget_sandbox.tenant_ids()
    workers = [_start(env, tmp_path, n, tenants[2 * n:2 * n + 2]) for n in range(WORKERS)]
    for worker in workers:
        _out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-3000:]

    calls = _app_calls(budget_sandbox)
    assert [c for c in calls if c["status"] == 429] == [], budget_sandbox.limits()
    times = sorted(_seconds(c) for c in calls)
    assert _most_in_a_window(times) <= LIMIT
    # Busy: from a window after the first call until the first worker had nothing left to ask.
    last_by_worker = [max(_seconds(c) for c in calls if c.get("tenant_id") in
                          tenants[2 * n:2 * n + 2]) for n in range(WORKERS)]
    average = _per_window(times, times[0] + WINDOW, min(last_by_worker))
    print(f"{len(times)} calls over {times[-1] - times[0]:.1f}s; "
          f"{average:.1f} per {WINDOW}s window on average (limit {LIMIT})")
    assert average >= 0.9 * LIMIT


def test_a_worker_killed_while_it_holds_budget_leaks_nothing(
    budget_sandbox: SandboxHandle, workers_env: tuple[dict[str, str], Store], tmp_path: Path
) -> None:
    env, store = workers_env
    tenants = budget_sandbox.tenant_ids()
    victim = _start(env, tmp_path, 0, tenants[0:2])
    victims_tenants = tenants[0:2]
    # Killed once it has called Xero for a while, at a moment it holds a lease of the budget;
    # the other two start then, so all of their work is measured against what it left behind
    # (started together, a victim slow to start on a busy machine left them too little).
    deadline = time.monotonic() + 60
    held = []
    while time.monotonic() < deadline:
        if len([c for c in _app_calls(budget_sandbox)
                if c.get("tenant_id") in victims_tenants]) >= 3:
            held = store._read("SELECT calls FROM xero_app_budget WHERE holder LIKE ?",
                               (f"%:{victim.pid}",))
            if held:
                break
        time.sleep(0.01)
    assert held, "the worker never held a lease"
    victim.send_signal(signal.SIGKILL)
    killed_at = time.time()
    victim.wait(timeout=10)
    workers = [_start(env, tmp_path, n, tenants[2 * n:2 * n + 2]) for n in range(1, WORKERS)]
    for worker in workers:
        _out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err[-3000:]

    calls = _app_calls(budget_sandbox)
    assert [c for c in calls if c["status"] == 429] == [], budget_sandbox.limits()
    others = sorted(_seconds(c) for c in calls if c.get("tenant_id") not in victims_tenants)
    last_by_worker = [max(_seconds(c) for c in calls if c.get("tenant_id") in
                          tenants[2 * n:2 * n + 2]) for n in (1, 2)]
    # From a window (and a hold) after the kill: whatever the victim held has counted its time.
    start = killed_at + WINDOW + 1
    assert min(last_by_worker) > start + WINDOW, "too little work left after the kill to measure"
    average = _per_window(others, start, min(last_by_worker))
    print(f"after the kill: {average:.1f} per {WINDOW}s window on average (limit {LIMIT})")
    assert average >= 0.9 * LIMIT
