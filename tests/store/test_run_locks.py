"""The store's run locks (``Store.exclusive``): exclusive across holders, all or none, waiting
when asked, and gone when their holder is killed — on SQLite and on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from store import LockBusy, Store, open_store

# Subprocesses, daemons or fresh interpreters: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow

HOLDER = """
import sys, time
from store import open_store
store = open_store(sys.argv[1], url=sys.argv[2])
with store.exclusive(["organisation:a"]):
    print("held", flush=True)
    time.sleep(60)
"""


def test_a_held_lock_is_busy_for_every_other_holder(store: Store, tmp_path: Path,
                                                    store_url: str) -> None:
    other = open_store(tmp_path / "home", url=store_url)
    with store.exclusive(["organisation:a"]):
        with pytest.raises(LockBusy) as busy:
            with other.exclusive(["organisation:a"]):
                pass
        assert busy.value.name == "organisation:a"
        with other.exclusive(["organisation:b"]):
            pass  # another organisation is free
    with other.exclusive(["organisation:a"]):
        pass  # released on exit
    other.close()


def test_all_or_none_a_busy_name_leaves_the_others_free(store: Store, tmp_path: Path,
                                                       store_url: str) -> None:
    other = open_store(tmp_path / "home", url=store_url)
    with store.exclusive(["organisation:b"]):
        with pytest.raises(LockBusy), other.exclusive(["organisation:a", "organisation:b"]):
            pass
        with store.exclusive(["organisation:a"]):
            pass  # `a` was given back when `b` was found busy
    other.close()


def test_wait_takes_the_lock_once_the_holder_lets_go(store: Store, tmp_path: Path,
                                                     store_url: str) -> None:
    other = open_store(tmp_path / "home", url=store_url)
    released = threading.Event()

    def hold() -> None:
        with store.exclusive(["organisation:a"]):
            released.wait(5)
            time.sleep(0.5)

    holder = threading.Thread(target=hold)
    holder.start()
    time.sleep(0.3)
    released.set()
    started = time.monotonic()
    with other.exclusive(["organisation:a"], wait=10):
        waited = time.monotonic() - started
    holder.join()
    assert 0.2 < waited < 5
    other.close()


def test_a_killed_holder_leaves_no_lock_behind(store: Store, tmp_path: Path,
                                               store_url: str) -> None:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path / "home"), store_url],
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2])
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(LockBusy), store.exclusive(["organisation:a"]):
            pass
    finally:
        proc.kill()
        proc.wait()
    with store.exclusive(["organisation:a"], wait=10):
        pass
