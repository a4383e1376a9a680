"""This process's draw on the app's budget (``connector.budget.AppBudget``): threads share its
leases and never exceed the limit in any window; Xero's 429 ``appminute`` pauses every process
on the ledger for its Retry-After; ``X-AppMinLimit-Remaining`` at 0 makes this one wait; and a
real load through the client meets a 429 ``appminute``, records the pause and waits it out."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import pytest

from connector.budget import AppBudget, LocalLedger, counted_window
from sandbox.handle import SandboxHandle
from tests.connector.conftest import Loader

API = "/api.xro/2.0"


def _seconds(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _most_in_a_window(times: list[float], window: float) -> int:
    return max(sum(1 for t in times if first <= t < first + window) for first in times)


def test_threads_share_leases_and_never_exceed_the_limit_in_any_window() -> None:
    budget = AppBudget(LocalLedger(), limit=40, window=1.0, lease_calls=4)
    sent: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(20):
            budget.done(budget.acquire())
            with lock:
                sent.append(time.monotonic())

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    budget.close()
    assert len(sent) == 120
    assert _most_in_a_window(sent, counted_window(1.0)) <= 40
    # Three windows' worth: the first at once, then one a counted window later, and again.
    assert time.monotonic() - started < 3 * counted_window(1.0) + 1.0


def test_a_429_appminute_pauses_every_process_on_the_ledger() -> None:
    ledger = LocalLedger()
    here = AppBudget(ledger, limit=100, window=6.0)
    elsewhere = AppBudget(ledger, limit=100, window=6.0)  # another worker on the same store
    here.acquire()
    here.throttled(0.5)
    started = time.monotonic()
    elsewhere.acquire()
    assert time.monotonic() - started >= 0.45
    started = time.monotonic()
    here.acquire()  # its own pause has ended too
    assert time.monotonic() - started < 0.2


def test_x_appminlimit_remaining_at_zero_makes_this_process_wait_a_moment() -> None:
    budget = AppBudget(LocalLedger(), limit=100, window=6.0, lease_calls=10)
    budget.acquire()
    budget.observe({"X-AppMinLimit-Remaining": "0"})
    started = time.monotonic()
    budget.acquire()
    assert time.monotonic() - started >= 0.09  # a sixtieth of the window
    budget.observe({"X-AppMinLimit-Remaining": "not a number"})  # ignored


@pytest.mark.slow  # a whole load waiting out a Retry-After
def test_a_load_meeting_a_429_appminute_pauses_the_app_and_loses_nothing(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    tenant_a, tenant_b = sandbox.tenant_ids()
    sandbox.fault(kind="rate_limit", problem="appminute", path=f"{API}/Accounts",
                  tenant_id=tenant_a, count=1, retry_after=2)

    stats = loader.run()

    assert {e.outcome for e in stats.entries()} == {"ok"}
    assert loader.count("accounts") == sum(t["counts"]["accounts"] for t in sandbox.tenants())
    calls = sandbox.requests(path=API)
    refused = [c for c in calls if c["status"] == 429]
    assert len(refused) == 1
    # The whole app waited: no organisation's call reached Xero in the 2 s that followed
    # (beyond those already on their way when the 429 arrived).
    at = _seconds(refused[0]["time"])
    soon = [c for c in calls if 0 < _seconds(c["time"]) - at < 1.8]
    assert len(soon) <= 10, soon  # at most the two organisations' calls in flight
    assert any(c.get("tenant_id") == tenant_b for c in calls)
    assert loader.store._read("SELECT not_before FROM xero_app_pause")
