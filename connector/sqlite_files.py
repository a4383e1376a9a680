"""SQLite files of the connector's own: WAL mode, and retrying SQLite's "database is locked".

The daily call counter's ``usage.sqlite3`` (``connector.usage``) and the app's store
(``store.sqlite``) open their files the same way, through these two helpers.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

BUSY_TIMEOUT_SECONDS = 30.0


def retry_locked(action: Callable[[], object]) -> None:
    """Run ``action``, retrying SQLite's immediate "database is locked" answers.

    The busy timeout does not cover every wait: while a new file switches to WAL, or when a
    reader would have to upgrade, SQLite answers "locked" at once (to avoid deadlocks). Those are
    retried here, within the same timeout.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_SECONDS
    while True:
        try:
            action()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def connect_wal(path: Path, *, synchronous: str, check_same_thread: bool = True
                ) -> sqlite3.Connection:
    """A connection in autocommit mode with the file in WAL mode (also used by the usage file)."""
    db = sqlite3.connect(path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None,
                         check_same_thread=check_same_thread)
    try:
        retry_locked(lambda: db.execute("PRAGMA journal_mode=WAL"))
        db.execute(f"PRAGMA synchronous={synchronous}")
    except sqlite3.Error:
        db.close()
        raise
    return db


__all__ = ["BUSY_TIMEOUT_SECONDS", "connect_wal", "retry_locked"]
