"""Calls made to Xero (and bytes received) per organisation per UTC day, kept across runs and
processes.

The daily call budget (``daily_call_budget``) must hold across all of a day's runs, whichever
destination they load, so the count lives beside the credential store, not in dlt state (which is
per pipeline): ``DailyUsage(store)`` counts in the app store's ``api_usage`` table, shared by every
machine on a PostgreSQL store; ``DailyUsage(home)`` in ``XERO_ELT_HOME/usage.sqlite3``, this
machine only.

A run's client counts with ``flush_every`` set: calls are added up in memory and written at
most that often (and on ``flush``/``close``), all organisations in one transaction. A write per
call is a synced commit each (~5 ms), taken one at a time: at 4,000 calls a run (1,000
organisations, no change) that alone was ~20 s. A killed run loses at most the last
``flush_every`` seconds of its count; an organisation is read by one run at a time (its run
lock), and a session reads the count once, when it starts, so no run decides on a stale one.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from connector.sqlite_files import connect_wal, retry_locked


class CallCountStore(Protocol):
    """Somewhere else to keep the counts: the app's store (its ``api_usage`` table) is one."""

    def api_calls(self, tenant_id: str, day: str) -> int:
        """Calls stored for the organisation on ``day``."""
        ...

    def count_api_calls_many(self, counts: Mapping[tuple[str, str], int],
                             received: Mapping[tuple[str, str], int] | None = None) -> None:
        """Add ``counts`` (and bytes ``received``) per (tenant, day) in one transaction."""
        ...

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_usage (
    tenant_id TEXT NOT NULL,
    day TEXT NOT NULL,
    calls INTEGER NOT NULL DEFAULT 0,
    bytes_received INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, day)
)
"""


def today() -> str:
    """The current UTC day as ``YYYY-MM-DD`` (freezegun-friendly)."""
    return datetime.now(UTC).strftime("%Y-%m-%d")


class DailyUsage:
    """A counter of API calls per (tenant, UTC day); safe across threads and processes.

    Args:
        where: the store (its ``api_usage`` table) or a folder for ``usage.sqlite3``.
        flush_every: seconds between writes of the counts recorded meanwhile (0: each
            ``record`` writes at once).
    """

    def __init__(self, where: Path | str | CallCountStore, *, flush_every: float = 0.0) -> None:
        self._store: CallCountStore | None = None
        self._local = threading.local()
        self._handles: list[sqlite3.Connection] = []
        self._handles_lock = threading.Lock()
        self._flush_every = flush_every
        self._pending: dict[tuple[str, str], int] = {}
        self._pending_bytes: dict[tuple[str, str], int] = {}
        self._pending_lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._flushed_at = time.monotonic()
        if isinstance(where, Path | str):
            self.path: Path | None = Path(where) / "usage.sqlite3"
            db = self._db()
            db.execute(_SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(api_usage)")}
            if "bytes_received" not in columns:  # a file from before bytes were counted
                with contextlib.suppress(sqlite3.OperationalError):  # another process did it
                    db.execute("ALTER TABLE api_usage ADD COLUMN bytes_received INTEGER "
                               "NOT NULL DEFAULT 0")
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
        """Calls counted for the organisation on ``day`` (default today), unwritten ones too."""
        day = day or today()
        with self._pending_lock:
            pending = self._pending.get((tenant_id, day), 0)
        return self._stored(tenant_id, day) + pending

    def _stored(self, tenant_id: str, day: str) -> int:
        if self._store is not None:
            return self._store.api_calls(tenant_id, day)
        row = self._db().execute(
            "SELECT calls FROM api_usage WHERE tenant_id=? AND day=?", (tenant_id, day)
        ).fetchone()
        return int(row[0]) if row else 0

    def record(self, tenant_id: str, calls: int = 1) -> int:
        """Add calls for today; returns today's total."""
        day = today()
        if not self._flush_every:
            self._write({(tenant_id, day): calls})
            return self._stored(tenant_id, day)
        with self._pending_lock:
            key = (tenant_id, day)
            self._pending[key] = self._pending.get(key, 0) + calls
            total = self._pending[key]
            due = time.monotonic() - self._flushed_at >= self._flush_every
        if due:
            self.flush(wait=False)
        return total  # this run's unwritten calls: the exact total would cost a read per call

    def record_bytes(self, tenant_id: str, received: int) -> None:
        """Add bytes received today (written with the calls)."""
        key = (tenant_id, today())
        if not self._flush_every:
            self._write({}, {key: received})
            return
        with self._pending_lock:
            self._pending_bytes[key] = self._pending_bytes.get(key, 0) + received

    def flush(self, *, wait: bool = True) -> None:
        """Write the counts recorded since the last flush (``wait=False``: unless another
        thread is writing them right now)."""
        if not self._flush_lock.acquire(blocking=wait):
            return
        try:
            with self._pending_lock:
                batch = dict(self._pending)
                received, self._pending_bytes = self._pending_bytes, {}
            if batch or received:
                try:
                    self._write(batch, received)
                except BaseException:
                    with self._pending_lock:  # kept for the next flush
                        for key, count in received.items():
                            self._pending_bytes[key] = self._pending_bytes.get(key, 0) + count
                    raise
            with self._pending_lock:
                # Counted twice (stored and pending) for a moment rather than not at all.
                for key, calls in batch.items():
                    left = self._pending.get(key, 0) - calls
                    if left > 0:
                        self._pending[key] = left
                    else:
                        self._pending.pop(key, None)
                self._flushed_at = time.monotonic()
        finally:
            self._flush_lock.release()

    def _write(self, counts: Mapping[tuple[str, str], int],
               received: Mapping[tuple[str, str], int] | None = None) -> None:
        """Add ``counts`` (and bytes ``received``) per (tenant, day), in one transaction."""
        received = received or {}
        if self._store is not None:
            self._store.count_api_calls_many(counts, received)
            return
        db = self._db()
        retry_locked(lambda: db.execute("BEGIN IMMEDIATE"))
        try:
            db.executemany(
                "INSERT INTO api_usage (tenant_id, day, calls, bytes_received) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, day) DO UPDATE SET "
                "calls = calls + excluded.calls, "
                "bytes_received = bytes_received + excluded.bytes_received",
                [(tenant, day, counts.get((tenant, day), 0), received.get((tenant, day), 0))
                 for tenant, day in sorted(set(counts) | set(received))],
            )
            db.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def close(self) -> None:
        """Write what is pending, then close every thread's handle (call it once the threads
        using the counter are done)."""
        self.flush()
        with self._handles_lock:
            handles, self._handles = self._handles, []
        for db in handles:
            with contextlib.suppress(sqlite3.Error):
                db.close()
        self._local = threading.local()


__all__ = ["CallCountStore", "DailyUsage", "today"]
