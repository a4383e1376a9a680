"""The embedded backend: one SQLite file in ``XERO_ELT_HOME`` (``store.sqlite3``).

Every write is one ``BEGIN IMMEDIATE`` transaction (a process's own writers take turns on a
thread lock first), so a crash or a full disk leaves the previous row intact; WAL mode lets
readers run beside a writer; several processes on one machine share the file safely. The grant
lock is a thread lock plus an ``flock`` on a file per grant, which the kernel releases when the
holder dies. Not for several machines: use PostgreSQL there.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from connector.sqlite_files import BUSY_TIMEOUT_SECONDS, connect_wal, retry_locked
from store import migrations
from store.base import Row, Store
from store.keys import fernet, key_from_env, load_or_create_key_file
from store.records import LockBusy, StoreError, to_text, utcnow

DB_NAME = "store.sqlite3"


class _SqliteTransaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._db.execute(sql, tuple(params)).rowcount

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return self._db.execute(sql, tuple(params)).fetchall()


class SqliteStore(Store):
    """The store in one SQLite file (default ``XERO_ELT_HOME/store.sqlite3``).

    Args:
        home: the local state folder (outbox, run lock, dlt's working dirs).
        path: the database file; default ``home/store.sqlite3``. Its key file (when there is no
            ``XERO_ELT_SECRET_KEY``) and grant locks live beside it, so every process that
            opens the file finds the same ones.
        secret_key: the Fernet key; default ``XERO_ELT_SECRET_KEY``, else the 0600 key file.
    """

    backend = "sqlite"

    def __init__(
        self, home: Path | str, *, path: Path | str | None = None, secret_key: str | None = None
    ) -> None:
        self.home = Path(home)
        self.path = Path(path) if path is not None else self.home / DB_NAME
        self.where = str(self.path)
        try:
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._locks = self.path.parent / "locks"
            self._locks.mkdir(exist_ok=True, mode=0o700)
            key = key_from_env(secret_key) or load_or_create_key_file(self.path.parent)
        except OSError as exc:
            raise StoreError(f"cannot prepare the store in {self.home}: {exc.strerror}") from None
        super().__init__(fernet(key))
        self._local = threading.local()
        self._thread_locks: dict[str, threading.Lock] = {}
        self._thread_locks_guard = threading.Lock()
        # This process's writers queue on a thread lock (woken the moment it is free) rather
        # than in SQLite's busy handler, which polls with sleeps growing to 100 ms: in a burst
        # of 50 customers some writers lost every race for 2 s (bench/burst.py: p99 11x p50).
        # Writers in other processes still meet the busy handler.
        self._write_lock = threading.Lock()
        if self._needs_migration():
            self._migrate()

    def __repr__(self) -> str:
        return f"SqliteStore({self.where!r})"

    # -- plumbing -------------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = connect_wal(self.path, synchronous="FULL")
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys=ON")
            # Deleted and overwritten rows are zeroed in the file, not left in free space: a
            # purge must not leave an organisation's name readable in store.sqlite3.
            db.execute("PRAGMA secure_delete=ON")
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
            self._local.db = db
        return db

    def _begin(self) -> sqlite3.Connection:
        """This thread's handle, inside a new immediate transaction."""
        db = self._db()
        retry_locked(lambda: db.execute("BEGIN IMMEDIATE"))
        return db

    def _migrate(self) -> None:
        """Apply the missing schema steps; BEGIN IMMEDIATE makes concurrent openers take turns."""
        with self._write() as tx:
            tx.execute(migrations.MIGRATIONS_TABLE)
            applied = {int(r["version"]) for r in
                       self._db().execute("SELECT version FROM store_migrations").fetchall()}
            for step in migrations.pending(applied, self.where):
                for statement in step.statements(self.backend):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO store_migrations (version, name, applied_at) VALUES (?,?,?)",
                    (step.version, step.name, to_text(utcnow())),
                )

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        if getattr(self._local, "shared", None) is not None:  # already inside one
            yield
            return
        with self._write() as tx:
            self._local.shared = tx
            try:
                yield
            finally:
                self._local.shared = None

    @contextlib.contextmanager
    def _write(self) -> Iterator[_SqliteTransaction]:
        shared = getattr(self._local, "shared", None)
        if shared is not None:  # inside together(): that transaction commits (or rolls back)
            try:
                yield shared
            except sqlite3.Error as exc:
                raise StoreError(f"could not write to the store {self.where}: {exc}") from None
            return
        # The same bound as SQLite's busy timeout, which this wait used to be.
        if not self._write_lock.acquire(timeout=BUSY_TIMEOUT_SECONDS):
            raise StoreError(f"cannot open the store {self.where}: another writer held it for "
                             f"{BUSY_TIMEOUT_SECONDS:.0f} s")
        try:
            try:
                db = self._begin()
            except sqlite3.Error as exc:
                raise StoreError(f"cannot open the store {self.where}: {exc}") from None
            try:
                yield _SqliteTransaction(db)
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise StoreError(f"could not write to the store {self.where}: {exc}") from None
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        finally:
            self._write_lock.release()

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        try:
            return self._db().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"could not read the store {self.where}: {exc}") from None

    def reclaim_space(self) -> None:
        """Copy the write-ahead log into the file and empty it, so the old page images it
        holds (with a purged organisation's rows) are gone too."""
        try:
            retry_locked(lambda: self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)"))
        except sqlite3.Error as exc:
            raise StoreError(f"could not checkpoint the store {self.where}: {exc}") from None

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- the grant lock -------------------------------------------------------------------------

    @contextlib.contextmanager
    def grant_lock(self, grant_id: str, timeout: float = 60.0) -> Iterator[None]:
        self._check_grant_id(grant_id)
        with self._thread_locks_guard:
            tlock = self._thread_locks.setdefault(grant_id, threading.Lock())
        if not tlock.acquire(timeout=timeout):
            raise StoreError(f"timed out after {timeout:.0f}s waiting for grant {grant_id}")
        try:
            path = self._locks / f"grant-{grant_id}.lock"
            with open(path, "a+b") as fh:
                deadline = time.monotonic() + timeout
                while True:
                    try:
                        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        if time.monotonic() > deadline:
                            raise StoreError(
                                f"timed out after {timeout:.0f}s waiting for grant {grant_id}"
                            ) from None
                        time.sleep(0.02)
                try:
                    yield
                finally:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        finally:
            tlock.release()

    # -- run locks --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def exclusive(self, names: Sequence[str], wait: float | None = None) -> Iterator[None]:
        """An ``flock`` per name beside the store file: every process that opens this store
        sees them, and the kernel drops them when the holder dies (SIGKILL included)."""
        paths = [self._locks / f"run-{hashlib.sha256(n.encode()).hexdigest()[:24]}.lock"
                 for n in names]
        deadline = time.monotonic() + (wait or 0.0)
        with contextlib.ExitStack() as held:
            while True:
                busy = _try_flocks(held, paths)
                if busy is None:
                    break
                held.close()
                if time.monotonic() >= deadline:
                    raise LockBusy(names[busy])
                time.sleep(0.2)
            yield


def _try_flocks(held: contextlib.ExitStack, paths: Sequence[Path]) -> int | None:
    """Take each file's flock without waiting, kept on ``held``; the index of a busy one."""
    for index, path in enumerate(paths):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        held.callback(os.close, fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return index
        held.callback(fcntl.flock, fd, fcntl.LOCK_UN)
    return None
