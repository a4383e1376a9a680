"""The shared backend: PostgreSQL, tables in schema ``xero_elt``, for several machines.

The auth server's replicas and the workers on other machines share one database. Tokens are
encrypted with ``XERO_ELT_SECRET_KEY``, which must be the same everywhere (a per-machine key file
would make every machine's tokens unreadable to the others). The grant lock is a session-level
advisory lock on a connection of its own: PostgreSQL releases it when that session ends, so a
process killed while holding it leaves nothing stuck.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras

from store import migrations
from store.base import Row, Store
from store.keys import KEY_ENV, fernet, key_from_env
from store.records import LockBusy, StoreConfigError, StoreError, to_text, utcnow

SCHEMA = "xero_elt"
CONNECT_TIMEOUT_SECONDS = 10
# Sessions kept open between calls; the auth server starts a thread per request, so sessions
# are lent per call rather than held per thread.
MAX_IDLE_SESSIONS = 4
# Advisory lock keys are one bigint space per database; ours are derived from these names.
_MIGRATION_LOCK = "xero_elt.migrations"
_GRANT_LOCK = "xero_elt.grant:"
_RUN_LOCK = "xero_elt.run:"
_APP_BUDGET_LOCK = "xero_elt.app_budget"
# A run lock's session tells the server to probe an idle client, so the lock of a machine that
# vanished (no FIN, no RST) is freed within about a minute rather than after TCP's two hours.
_KEEPALIVES = {"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10,
               "keepalives_count": 3}


def advisory_key(name: str) -> int:
    """A stable signed 64-bit advisory lock key for ``name``."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class _PostgresTransaction:
    def __init__(self, cursor: psycopg2.extensions.cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        self._cursor.execute(sql.replace("?", "%s"), tuple(params))
        return int(self._cursor.rowcount)

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        self._cursor.execute(sql.replace("?", "%s"), tuple(params))
        return list(self._cursor.fetchall())


class PostgresStore(Store):
    """The store in a PostgreSQL database (schema ``xero_elt``).

    Args:
        dsn: ``postgresql://user:password@host:port/db``; the password may also come from
            ``PGPASSWORD`` or ``~/.pgpass``, or be absent under trust or peer auth.
        home: the local state folder of this machine (outbox, run lock, dlt's working dirs).
        where: the DSN without its password, for messages and ``repr``.
        secret_key: the Fernet key; default ``XERO_ELT_SECRET_KEY`` (required).
    """

    backend = "postgres"

    def __init__(
        self, dsn: str, *, home: Path | str, where: str, secret_key: str | None = None
    ) -> None:
        self.home = Path(home)
        self.where = where
        self._dsn = dsn
        key = key_from_env(secret_key)
        if key is None:
            raise StoreConfigError(
                f"a PostgreSQL store needs {KEY_ENV}, the same key on every machine "
                "(generate one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())')"
            )
        super().__init__(fernet(key))
        try:
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise StoreError(f"cannot prepare {self.home}: {exc.strerror}") from None
        self._idle: list[psycopg2.extensions.connection] = []
        self._idle_guard = threading.Lock()
        self._thread_locks: dict[str, threading.Lock] = {}
        self._thread_locks_guard = threading.Lock()
        if self._needs_migration():
            self._migrate()

    def __repr__(self) -> str:
        return f"PostgresStore({self.where!r})"

    # -- plumbing -------------------------------------------------------------------------------

    def _connect(self, **extra: Any) -> psycopg2.extensions.connection:
        """A new autocommit session with ``search_path`` on our schema."""
        try:
            db = psycopg2.connect(
                self._dsn, connect_timeout=CONNECT_TIMEOUT_SECONDS,
                options=f"-c search_path={SCHEMA}", application_name="xero-elt", **extra,
            )
        except psycopg2.Error as exc:
            raise StoreError(f"cannot connect to the store {self.where}: "
                             f"{self._first_line(exc)}") from None
        db.autocommit = True
        return db

    def _first_line(self, exc: BaseException) -> str:
        """The gist of a driver error, with the password taken out should it appear."""
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        password = urlsplit(self._dsn).password
        for form in {password, unquote(password or "")} - {None, ""}:
            text = text.replace(str(form), "***")
        return text

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg2.extensions.connection]:
        """A session for one call: an idle one, or a new one. A session that failed is closed
        rather than lent again (the server may have gone, or the transaction be broken)."""
        with self._idle_guard:
            db = self._idle.pop() if self._idle else None
        if db is None or db.closed:
            db = self._connect()
        try:
            yield db
        except BaseException:
            with contextlib.suppress(psycopg2.Error):
                db.close()
            raise
        with self._idle_guard:
            if len(self._idle) < MAX_IDLE_SESSIONS:
                self._idle.append(db)
                return
        db.close()

    def _migrate(self) -> None:
        """Apply the missing schema steps, one opener at a time (an advisory transaction lock)."""
        with self._write() as tx:
            tx.execute("SELECT pg_advisory_xact_lock(?)", (advisory_key(_MIGRATION_LOCK),))
            tx.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            tx.execute(migrations.MIGRATIONS_TABLE)
            applied = {int(r["version"]) for r in self._rows(tx, "SELECT version FROM "
                                                             "store_migrations")}
            for step in migrations.pending(applied, self.where):
                for statement in step.statements(self.backend):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO store_migrations (version, name, applied_at) VALUES (?,?,?)",
                    (step.version, step.name, to_text(utcnow())),
                )

    @staticmethod
    def _rows(tx: _PostgresTransaction, sql: str) -> list[Row]:
        tx.execute(sql)
        return list(tx._cursor.fetchall())

    @contextlib.contextmanager
    def _write(self) -> Iterator[_PostgresTransaction]:
        with self._session() as db:
            try:
                cursor = db.cursor(cursor_factory=psycopg2.extras.RealDictCursor)
                cursor.execute("BEGIN")
            except psycopg2.Error as exc:
                raise StoreError(f"cannot open the store {self.where}: "
                                 f"{self._first_line(exc)}") from None
            try:
                yield _PostgresTransaction(cursor)
                cursor.execute("COMMIT")
            except psycopg2.Error as exc:
                with contextlib.suppress(psycopg2.Error):
                    cursor.execute("ROLLBACK")
                raise StoreError(f"could not write to the store {self.where}: "
                                 f"{self._first_line(exc)}") from None
            except BaseException:
                with contextlib.suppress(psycopg2.Error):
                    cursor.execute("ROLLBACK")
                raise
            finally:
                with contextlib.suppress(psycopg2.Error):
                    cursor.close()

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        with self._session() as db:
            try:
                with db.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cursor:
                    cursor.execute(sql.replace("?", "%s"), tuple(params))
                    return list(cursor.fetchall())
            except psycopg2.Error as exc:
                raise StoreError(f"could not read the store {self.where}: "
                                 f"{self._first_line(exc)}") from None

    def close(self) -> None:
        """Close the idle sessions (sessions lent out close when they come back failing)."""
        with self._idle_guard:
            idle, self._idle = self._idle, []
        for db in idle:
            with contextlib.suppress(psycopg2.Error):
                db.close()

    # -- the app's budget of Xero calls (store/app_budget.py) -----------------------------------

    def _budget_turn(self, tx: _PostgresTransaction) -> float:
        """Takers of the app's budget queue on a transaction advisory lock; the clock is the
        server's, the one every machine shares."""
        tx.execute("SELECT pg_advisory_xact_lock(?)", (advisory_key(_APP_BUDGET_LOCK),))
        return float(tx.rows("SELECT EXTRACT(EPOCH FROM clock_timestamp())::float8 AS now")[0]
                     ["now"])

    # -- the grant lock -------------------------------------------------------------------------

    @contextlib.contextmanager
    def grant_lock(self, grant_id: str, timeout: float = 60.0) -> Iterator[None]:
        """An advisory lock on a session of its own, held only while the caller refreshes.

        Its own session, because the lock must not ride on a connection that other work of
        this thread uses (a reconnect there would drop it silently); and PostgreSQL frees a
        session's advisory locks when the session ends, which is what makes a killed holder
        harmless.
        """
        self._check_grant_id(grant_id)
        with self._thread_locks_guard:
            tlock = self._thread_locks.setdefault(grant_id, threading.Lock())
        # Threads of this process take turns here, so they wait without a session each.
        if not tlock.acquire(timeout=timeout):
            raise StoreError(f"timed out after {timeout:.0f}s waiting for grant {grant_id}")
        key = advisory_key(_GRANT_LOCK + grant_id)
        try:
            session = self._connect()
            try:
                with session.cursor() as cursor:
                    cursor.execute("SELECT set_config('lock_timeout', %s, false)",
                                   (f"{max(1, int(timeout * 1000))}ms",))
                    try:
                        cursor.execute("SELECT pg_advisory_lock(%s)", (key,))
                    except psycopg2.errors.LockNotAvailable:
                        raise StoreError(
                            f"timed out after {timeout:.0f}s waiting for grant {grant_id}"
                        ) from None
                    except psycopg2.Error as exc:
                        raise StoreError(f"cannot lock grant {grant_id} in {self.where}: "
                                         f"{self._first_line(exc)}") from None
                try:
                    yield
                finally:
                    # Released before this returns (closing alone frees it only once the server
                    # has seen the session end); if the unlock cannot be sent, the close frees it.
                    with contextlib.suppress(psycopg2.Error), session.cursor() as cursor:
                        cursor.execute("SELECT pg_advisory_unlock(%s)", (key,))
            finally:
                with contextlib.suppress(psycopg2.Error):
                    session.close()
        finally:
            tlock.release()

    # -- run locks --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def exclusive(self, names: Sequence[str], wait: float | None = None) -> Iterator[None]:
        """Session advisory locks, all on one session of their own (a run over 200
        organisations holds 200 locks, not 200 sessions); the server frees them when the
        session ends, so a killed or vanished holder leaves nothing stuck."""
        keys = [advisory_key(_RUN_LOCK + name) for name in names]
        session = self._connect(**_KEEPALIVES)
        try:
            deadline = time.monotonic() + (wait or 0.0)
            while True:
                busy = self._try_advisory_locks(session, keys)
                if busy is None:
                    break
                if time.monotonic() >= deadline:
                    raise LockBusy(names[busy])
                time.sleep(0.2)
            try:
                yield
            finally:
                with contextlib.suppress(psycopg2.Error), session.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock_all()")
        finally:
            with contextlib.suppress(psycopg2.Error):
                session.close()

    def _try_advisory_locks(
        self, session: psycopg2.extensions.connection, keys: Sequence[int]
    ) -> int | None:
        """Take every key or none; the index of the first busy one."""
        try:
            with session.cursor() as cursor:
                for index, key in enumerate(keys):
                    cursor.execute("SELECT pg_try_advisory_lock(%s)", (key,))
                    row = cursor.fetchone()
                    if not (row and row[0]):
                        cursor.execute("SELECT pg_advisory_unlock_all()")
                        return index
        except psycopg2.Error as exc:
            raise StoreError(f"cannot take a run lock in {self.where}: "
                             f"{self._first_line(exc)}") from None
        return None
