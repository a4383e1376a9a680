"""Calls made to Xero per organisation per UTC day, kept across runs and processes.

The daily call budget (``daily_call_budget``) must hold across all of a day's runs, whichever
destination they load, so the count lives beside the credential store, not in dlt state (which is
per pipeline): ``DailyUsage(store)`` counts in the store's ``api_usage`` table, shared by every
machine on a PostgreSQL store; ``DailyUsage(home)`` in ``XERO_ELT_HOME/usage.sqlite3``, this
machine only.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from connector.store.sqlite import connect_wal

if TYPE_CHECKING:
    from connector.store import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_usage (
    tenant_id TEXT NOT NULL,
    day TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
)
"""


def today() -> str:
    """The current UTC day as ``YYYY-MM-DD`` (freezegun-friendly)."""
    return datetime.now(UTC).strftime("%Y-%m-%d")


class DailyUsage:
    """A counter of API calls per (tenant, UTC day); safe across threads and processes."""

    def __init__(self, where: Path | str | Store) -> None:
        self._store: Store | None = None
        self._local = threading.local()
        self._handles: list[sqlite3.Connection] = []
        self._handles_lock = threading.Lock()
        if isinstance(where, Path | str):
            self.path: Path | None = Path(where) / "usage.sqlite3"
            self._db().execute(_SCHEMA)
        else:
            self._store, self.path = where, None

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # One handle per thread; close() may run on another thread, after they are done.
            assert self.path is not None  # only the file form has a database of its own
            db = connect_wal(self.path, synchronous="NORMAL", check_same_thread=False)
            self._local.db = db
            with self._handles_lock:
                self._handles.append(db)
        return db

    def used(self, tenant_id: str, day: str | None = None) -> int:
        """Calls counted for the organisation on ``day`` (default today)."""
        if self._store is not None:
            return self._store.api_calls(tenant_id, day or today())
        row = self._db().execute(
            "SELECT calls FROM api_usage WHERE tenant_id=? AND day=?", (tenant_id, day or today())
        ).fetchone()
        return int(row[0]) if row else 0

    def record(self, tenant_id: str, calls: int = 1) -> int:
        """Add calls for today; returns today's total."""
        day = today()
        if self._store is not None:
            return self._store.count_api_calls(tenant_id, day, calls)
        db = self._db()
        db.execute(
            "INSERT INTO api_usage (tenant_id, day, calls) VALUES (?, ?, ?) "
            "ON CONFLICT (tenant_id, day) DO UPDATE SET calls = calls + excluded.calls",
            (tenant_id, day, calls),
        )
        return self.used(tenant_id, day)

    def close(self) -> None:
        """Close every thread's handle (call it once the threads using the counter are done)."""
        with self._handles_lock:
            handles, self._handles = self._handles, []
        for db in handles:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        self._local = threading.local()


__all__ = ["DailyUsage", "today"]
