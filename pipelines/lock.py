"""The run lock: one `xero-elt run` at a time per XERO_ELT_HOME.

An advisory `flock` on ``XERO_ELT_HOME/run.lock``: the kernel drops it when the holder dies
(SIGKILL included), so a crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path


class LockHeld(Exception):
    """Another run holds the lock (exit code 75)."""


@contextlib.contextmanager
def run_lock(home: Path, wait: float | None = None) -> Iterator[None]:
    """Hold the run lock; raise LockHeld at once, or after `wait` seconds of waiting."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / "run.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + (wait or 0.0)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockHeld(_describe_holder(path)) from None
                time.sleep(0.2)
        _write_holder(fd)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _write_holder(fd: int) -> None:
    """Note who holds the lock, for the message other runs print. Best effort: on a full disk
    the flock still excludes other runs, and the run itself reports the disk problem."""
    holder = f"{os.getpid()} {datetime.now(UTC).isoformat(timespec='seconds')}\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder.encode(), 0)
    except OSError:
        pass


def _describe_holder(path: Path) -> str:
    try:
        pid, started = path.read_text().split()[:2]
    except (OSError, ValueError):
        return f"another xero-elt run holds {path}"
    return f"another xero-elt run (pid {pid}, started {started}) holds {path}"
