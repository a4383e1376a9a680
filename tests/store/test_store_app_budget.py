"""The app's budget of Xero calls in the store, on SQLite and PostgreSQL: leases never add up to
more than the limit in a window, even taken by many processes at once; what a holder does not use
goes back when it settles; a lease nobody settles (its holder killed) counts no longer than its
hold and a window; a pause after Xero's 429 stops every taker until it ends."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from connector.budget import LocalLedger
from store import Store, open_store

WINDOW = 2.0
HOLD = 0.5


def test_leases_stop_at_the_limit_and_say_when_room_comes_back(store: Store) -> None:
    first = store.take_app_calls(4, limit=10, window=WINDOW, hold=HOLD)
    second = store.take_app_calls(4, limit=10, window=WINDOW, hold=HOLD)
    third = store.take_app_calls(4, limit=10, window=WINDOW, hold=HOLD)
    assert (first.calls, second.calls, third.calls) == (4, 4, 2)  # the last gets what is left
    assert len({first.lease_id, second.lease_id, third.lease_id}) == 3
    refused = store.take_app_calls(1, limit=10, window=WINDOW, hold=HOLD)
    assert refused.calls == 0
    assert refused.lease_id is None
    assert 0 < refused.wait <= WINDOW + HOLD
    assert store.app_calls_counted() == 10


@pytest.mark.slow  # waits out a window
def test_settling_gives_back_the_unused_calls_and_counts_the_used_from_their_last_use(
    store: Store,
) -> None:
    lease = store.take_app_calls(10, limit=10, window=WINDOW, hold=HOLD)
    assert lease.lease_id is not None
    store.settle_app_calls(lease.lease_id, 3, 0.0, window=WINDOW)
    assert store.app_calls_counted() == 3
    assert store.take_app_calls(10, limit=10, window=WINDOW, hold=HOLD).calls == 7
    # The settled 3 count a window after their last use; the unsettled 7 a hold longer.
    time.sleep(WINDOW + 0.1)
    assert store.app_calls_counted() == 7
    time.sleep(HOLD)
    assert store.app_calls_counted() == 0
    unused = store.take_app_calls(5, limit=10, window=WINDOW, hold=HOLD)
    assert unused.lease_id is not None
    store.settle_app_calls(unused.lease_id, 0, 0.0, window=WINDOW)
    assert store.app_calls_counted() == 0


@pytest.mark.slow  # waits out a hold and a window
def test_a_lease_nobody_settles_counts_no_longer_than_its_hold_and_a_window(store: Store) -> None:
    assert store.take_app_calls(10, limit=10, window=WINDOW, hold=HOLD).calls == 10  # "killed"
    assert store.take_app_calls(1, limit=10, window=WINDOW, hold=HOLD).calls == 0
    time.sleep(WINDOW + HOLD + 0.1)
    assert store.take_app_calls(10, limit=10, window=WINDOW, hold=HOLD).calls == 10


def test_a_pause_after_xeros_429_stops_every_taker_until_it_ends(store: Store) -> None:
    store.pause_app_calls(0.6)
    store.pause_app_calls(0.2)  # a shorter pause does not cut the longer one short
    refused = store.take_app_calls(1, limit=10, window=WINDOW, hold=HOLD)
    assert refused.calls == 0
    assert 0.3 < refused.wait <= 0.6
    time.sleep(0.7)
    assert store.take_app_calls(1, limit=10, window=WINDOW, hold=HOLD).calls == 1


def _take_many(url: str, home: str, key: str | None, rounds: int,
               results: multiprocessing.Queue) -> None:
    import os

    if key:
        os.environ["XERO_ELT_SECRET_KEY"] = key
    store = open_store(home, url=url)
    granted = 0
    for _ in range(rounds):
        granted += store.take_app_calls(3, limit=50, window=30.0, hold=5.0).calls
    store.close()
    results.put(granted)


def test_processes_taking_at_once_never_get_more_than_the_limit_together(
    store_url: str, store: Store, tmp_path: Path
) -> None:
    import os

    ctx = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_take_many,
                         args=(store_url, str(tmp_path / "home"),
                               os.environ.get("XERO_ELT_SECRET_KEY"), 15, results))
             for _ in range(4)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    granted = [results.get(timeout=5) for _ in procs]
    assert sum(granted) == 50  # 4 x 15 x 3 asked for; exactly the limit granted
    assert store.app_calls_counted() == 50


def test_the_in_process_ledger_keeps_the_same_rules() -> None:
    now = [0.0]
    ledger = LocalLedger(clock=lambda: now[0])
    lease = ledger.take_app_calls(8, limit=10, window=WINDOW, hold=HOLD)
    assert ledger.take_app_calls(8, limit=10, window=WINDOW, hold=HOLD).calls == 2
    assert lease.lease_id is not None
    ledger.settle_app_calls(lease.lease_id, 5, 0.1, window=WINDOW)
    assert ledger.counted() == 7
    now[0] = 0.1 + WINDOW + 0.01  # the settled calls are free; the unsettled 2 still count
    assert ledger.counted() == 2
    now[0] = WINDOW + HOLD + 0.01
    assert ledger.counted() == 0
    ledger.pause_app_calls(1.0)
    assert ledger.take_app_calls(1, limit=10, window=WINDOW, hold=HOLD).calls == 0
