"""The credential and connection store, shared by the auth server and the connector.

One SQLite database in ``XERO_ELT_HOME`` (default ``./.xero-elt``) holds:

- grants: one per Xero consent, i.e. one refresh-token chain. Tokens are encrypted at rest with
  Fernet; the key comes from ``XERO_ELT_SECRET_KEY`` or a generated 0600 key file beside the
  database.
- connections: one record per invite; once a company is confirmed it carries the organisation.
- flows: short-lived, encrypted state of OAuth flows in progress (PKCE verifier, state, …).

Why SQLite: every write is one transaction, so a crash or a full disk leaves the previous row
intact (atomicity we would otherwise build from temp files and renames), and several processes
(cron runs, the auth server) can share it safely. WAL mode lets readers run beside a writer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import json
import os
import secrets
import sqlite3
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

HOME_ENV = "XERO_ELT_HOME"
KEY_ENV = "XERO_ELT_SECRET_KEY"
DEFAULT_HOME = ".xero-elt"
DB_NAME = "store.sqlite3"
KEY_FILE = "secret.key"


class StoreError(Exception):
    """The store could not read or write (missing record, bad key, full disk, …)."""


class ConnectionStatus(StrEnum):
    """Where a connection stands; the values are the ones the `connections` table shows."""

    INVITED = "invited"
    LINK_OPENED = "link_opened"
    INCOMPLETE = "incomplete"
    CONNECTED = "connected"
    NEEDS_RECONNECTION = "needs_reconnection"
    DISCONNECTED = "disconnected"
    EXPIRED = "expired"


class GrantStatus(StrEnum):
    """Whether a grant's refresh token can still be used."""

    ACTIVE = "active"
    INVALID = "invalid"
    REVOKED = "revoked"


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (freezegun-friendly)."""
    return datetime.now(UTC)


def default_home() -> Path:
    """The local state folder: ``XERO_ELT_HOME`` or ``./.xero-elt``."""
    return Path(os.environ.get(HOME_ENV) or DEFAULT_HOME)


@dataclass(frozen=True)
class Grant:
    """One Xero consent's tokens. ``repr`` never shows a token."""

    grant_id: str
    client_id: str
    xero_user_id: str | None
    auth_event_id: str | None
    scopes: str
    access_token: str = dataclasses.field(repr=False)
    access_expires_at: datetime
    refresh_token: str = dataclasses.field(repr=False)
    refreshed_at: datetime
    status: str
    status_reason: str | None
    created_at: datetime

    def refresh_token_expires_at(self, idle_days: int = 60) -> datetime:
        """When Xero forgets the refresh token if it is not used before then."""
        return self.refreshed_at + timedelta(days=idle_days)


@dataclass(frozen=True)
class Connection:
    """An invite and, once a company is confirmed, the organisation it connected."""

    connection_id: str
    company: str
    email: str
    status: str
    status_reason: str | None
    invite_token_hash: str | None = dataclasses.field(repr=False)
    invite_expires_at: datetime | None
    invited_at: datetime
    link_opened_at: datetime | None
    tenant_id: str | None
    organisation_name: str | None
    xero_connection_id: str | None
    grant_id: str | None
    connected_at: datetime | None
    disconnected_at: datetime | None
    last_synced_at: datetime | None
    last_sync_rows: int | None
    last_sync_outcome: str | None
    sync_state: str | None
    updated_at: datetime


_DATETIME_FIELDS = {
    "access_expires_at", "refreshed_at", "created_at", "invite_expires_at", "invited_at",
    "link_opened_at", "connected_at", "disconnected_at", "last_synced_at", "updated_at",
}
_CONNECTION_FIELDS = [f.name for f in dataclasses.fields(Connection)]
_UPDATABLE_CONNECTION_FIELDS = frozenset(_CONNECTION_FIELDS) - {"connection_id"}

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grants (
    grant_id TEXT PRIMARY KEY,
    client_id TEXT NOT NULL,
    xero_user_id TEXT,
    auth_event_id TEXT,
    scopes TEXT NOT NULL,
    access_token_enc BLOB NOT NULL,
    access_expires_at TEXT NOT NULL,
    refresh_token_enc BLOB NOT NULL,
    refreshed_at TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS connections (
    connection_id TEXT PRIMARY KEY,
    company TEXT NOT NULL,
    email TEXT NOT NULL,
    status TEXT NOT NULL,
    status_reason TEXT,
    invite_token_hash TEXT UNIQUE,
    invite_expires_at TEXT,
    invited_at TEXT NOT NULL,
    link_opened_at TEXT,
    tenant_id TEXT,
    organisation_name TEXT,
    xero_connection_id TEXT,
    grant_id TEXT REFERENCES grants(grant_id),
    connected_at TEXT,
    disconnected_at TEXT,
    last_synced_at TEXT,
    last_sync_rows INTEGER,
    last_sync_outcome TEXT,
    sync_state TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS connections_tenant ON connections(tenant_id);
CREATE TABLE IF NOT EXISTS flows (
    flow_id TEXT PRIMARY KEY,
    data_enc BLOB NOT NULL,
    expires_at TEXT NOT NULL
);
"""


def _to_text(value: datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def _from_text(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _load_key(home: Path, secret_key: str | None) -> bytes:
    """The Fernet key: given, from the environment, or from (a newly generated) 0600 key file."""
    key = secret_key or os.environ.get(KEY_ENV)
    if key:
        return key.encode()
    path = home / KEY_FILE
    if not path.exists():
        new_key = Fernet.generate_key()
        # O_EXCL: two processes starting at once must not each write a different key.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "wb") as fh:
                fh.write(new_key)
                fh.flush()
                os.fsync(fh.fileno())
            return new_key
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise StoreError(f"key file {path} is readable by others (mode {mode:o}); chmod 600 it")
    # A racing creator may not have written the key yet.
    for _ in range(50):
        data = path.read_bytes().strip()
        if data:
            return data
        time.sleep(0.01)
    raise StoreError(f"key file {path} is empty")


class Store:
    """Grants, connections and in-flight OAuth flows, in one SQLite file.

    Safe to share between threads (one SQLite connection per thread) and processes.
    """

    def __init__(self, home: Path | str | None = None, *, secret_key: str | None = None) -> None:
        self.home = Path(home) if home is not None else default_home()
        try:
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
            (self.home / "locks").mkdir(exist_ok=True, mode=0o700)
            key = _load_key(self.home, secret_key)
            self._fernet = Fernet(key)
        except OSError as exc:
            raise StoreError(f"cannot prepare the store in {self.home}: {exc.strerror}") from None
        except ValueError:
            raise StoreError(f"the key ({KEY_ENV} or {KEY_FILE}) is not a Fernet key") from None
        self.path = self.home / DB_NAME
        self._local = threading.local()
        self._thread_locks: dict[str, threading.Lock] = {}
        self._thread_locks_guard = threading.Lock()
        try:
            # executescript manages its own transaction; CREATE … IF NOT EXISTS is idempotent.
            self._db().executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None

    # -- plumbing -------------------------------------------------------------------------------

    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            with contextlib.suppress(OSError):
                os.chmod(self.path, 0o600)
            self._local.db = db
        return db

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One immediate transaction: all of it lands, or none of it (full disk included)."""
        try:
            db = self._db()
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from None
        try:
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise StoreError(f"could not write to the store {self.path}: {exc}") from None
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._db().execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"could not read the store {self.path}: {exc}") from None

    def _encrypt(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def _decrypt(self, blob: bytes) -> str:
        try:
            return self._fernet.decrypt(blob).decode()
        except InvalidToken:
            raise StoreError(
                f"cannot decrypt a secret in {self.path}: the key ({KEY_ENV} or {KEY_FILE}) "
                "is not the one it was written with"
            ) from None

    def close(self) -> None:
        """Close this thread's database handle."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    # -- grants ---------------------------------------------------------------------------------

    def _grant(self, row: sqlite3.Row) -> Grant:
        return Grant(
            grant_id=row["grant_id"],
            client_id=row["client_id"],
            xero_user_id=row["xero_user_id"],
            auth_event_id=row["auth_event_id"],
            scopes=row["scopes"],
            access_token=self._decrypt(row["access_token_enc"]),
            access_expires_at=_from_text(row["access_expires_at"]),  # type: ignore[arg-type]
            refresh_token=self._decrypt(row["refresh_token_enc"]),
            refreshed_at=_from_text(row["refreshed_at"]),  # type: ignore[arg-type]
            status=row["status"],
            status_reason=row["status_reason"],
            created_at=_from_text(row["created_at"]),  # type: ignore[arg-type]
        )

    @staticmethod
    def _token_fields(token_response: dict[str, Any], now: datetime) -> tuple[str, str, datetime]:
        try:
            access = str(token_response["access_token"])
            refresh = str(token_response["refresh_token"])
            expires_in = int(token_response.get("expires_in", 1800))
        except (KeyError, TypeError, ValueError):
            keys = sorted(token_response) if isinstance(token_response, dict) else []
            raise StoreError(
                f"token response lacks access_token/refresh_token/expires_in (keys: {keys})"
            ) from None
        return access, refresh, now + timedelta(seconds=expires_in)

    def add_grant(
        self,
        token_response: dict[str, Any],
        *,
        client_id: str,
        xero_user_id: str | None = None,
        auth_event_id: str | None = None,
        now: datetime | None = None,
    ) -> Grant:
        """Store a new grant from Xero's token response (which must carry a refresh token)."""
        now = now or utcnow()
        access, refresh, expires_at = self._token_fields(token_response, now)
        grant_id = "grt_" + secrets.token_hex(8)
        with self._write() as db:
            db.execute(
                "INSERT INTO grants VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    grant_id, client_id, xero_user_id, auth_event_id,
                    str(token_response.get("scope", "")),
                    self._encrypt(access), _to_text(expires_at), self._encrypt(refresh),
                    _to_text(now), GrantStatus.ACTIVE.value, None, _to_text(now),
                ),
            )
        return self.get_grant(grant_id)

    def get_grant(self, grant_id: str) -> Grant:
        """The grant, tokens decrypted; StoreError if there is none."""
        rows = self._read("SELECT * FROM grants WHERE grant_id = ?", (grant_id,))
        if not rows:
            raise StoreError(f"no grant {grant_id!r} in the store")
        return self._grant(rows[0])

    def list_grants(self) -> list[Grant]:
        """Every grant, oldest first."""
        return [self._grant(r) for r in self._read("SELECT * FROM grants ORDER BY created_at")]

    def save_rotated_tokens(
        self, grant_id: str, token_response: dict[str, Any], *, now: datetime | None = None
    ) -> Grant:
        """Replace a grant's tokens with the ones a refresh returned, atomically."""
        now = now or utcnow()
        access, refresh, expires_at = self._token_fields(token_response, now)
        with self._write() as db:
            cur = db.execute(
                "UPDATE grants SET access_token_enc=?, access_expires_at=?, refresh_token_enc=?,"
                " refreshed_at=?, scopes=COALESCE(?, scopes), status=?, status_reason=NULL"
                " WHERE grant_id=?",
                (
                    self._encrypt(access), _to_text(expires_at), self._encrypt(refresh),
                    _to_text(now), token_response.get("scope"), GrantStatus.ACTIVE.value,
                    grant_id,
                ),
            )
            if cur.rowcount != 1:
                raise StoreError(f"no grant {grant_id!r} in the store")
        return self.get_grant(grant_id)

    def set_grant_status(self, grant_id: str, status: str, reason: str | None = None) -> None:
        """Mark a grant active, invalid (Xero said invalid_grant) or revoked."""
        GrantStatus(status)
        with self._write() as db:
            cur = db.execute(
                "UPDATE grants SET status=?, status_reason=? WHERE grant_id=?",
                (status, reason, grant_id),
            )
            if cur.rowcount != 1:
                raise StoreError(f"no grant {grant_id!r} in the store")

    @contextlib.contextmanager
    def grant_lock(self, grant_id: str, timeout: float = 60.0) -> Iterator[None]:
        """Hold the grant exclusively, across threads and processes, while refreshing it.

        Xero rotates refresh tokens on every use: two refreshes of one grant at once burn it.
        """
        if not grant_id or "/" in grant_id or grant_id.startswith("."):
            raise StoreError(f"bad grant id {grant_id!r}")
        with self._thread_locks_guard:
            tlock = self._thread_locks.setdefault(grant_id, threading.Lock())
        if not tlock.acquire(timeout=timeout):
            raise StoreError(f"timed out after {timeout:.0f}s waiting for grant {grant_id}")
        try:
            path = self.home / "locks" / f"grant-{grant_id}.lock"
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

    # -- connections ----------------------------------------------------------------------------

    @staticmethod
    def _connection(row: sqlite3.Row) -> Connection:
        values = {
            name: (_from_text(row[name]) if name in _DATETIME_FIELDS else row[name])
            for name in _CONNECTION_FIELDS
        }
        return Connection(**values)

    def create_connection(
        self,
        company: str,
        email: str,
        *,
        invite_token_hash: str,
        invite_expires_at: datetime,
        now: datetime | None = None,
    ) -> Connection:
        """A new invite, status ``invited``."""
        now = now or utcnow()
        connection_id = "con_" + secrets.token_hex(6)
        with self._write() as db:
            db.execute(
                "INSERT INTO connections (connection_id, company, email, status,"
                " invite_token_hash, invite_expires_at, invited_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (
                    connection_id, company, email, ConnectionStatus.INVITED.value,
                    invite_token_hash, _to_text(invite_expires_at), _to_text(now), _to_text(now),
                ),
            )
        return self.get_connection(connection_id)

    def get_connection(self, connection_id: str) -> Connection:
        """The connection; StoreError if there is none."""
        rows = self._read("SELECT * FROM connections WHERE connection_id = ?", (connection_id,))
        if not rows:
            raise StoreError(f"no connection {connection_id!r} in the store")
        return self._connection(rows[0])

    def find_connection_by_invite_hash(self, token_hash: str) -> Connection | None:
        """The connection whose current invite link has this token hash, if any."""
        rows = self._read(
            "SELECT * FROM connections WHERE invite_token_hash = ?", (token_hash,)
        )
        return self._connection(rows[0]) if rows else None

    def list_connections(self, statuses: Iterable[str] | None = None) -> list[Connection]:
        """Connections, oldest invite first, optionally only those with the given statuses."""
        rows = self._read("SELECT * FROM connections ORDER BY invited_at, connection_id")
        wanted = set(statuses) if statuses is not None else None
        conns = [self._connection(r) for r in rows]
        return [c for c in conns if wanted is None or c.status in wanted]

    def connections_for_tenant(self, tenant_id: str) -> list[Connection]:
        """Every connection record that names this organisation."""
        rows = self._read(
            "SELECT * FROM connections WHERE tenant_id = ? ORDER BY invited_at", (tenant_id,)
        )
        return [self._connection(r) for r in rows]

    def update_connection(self, connection_id: str, **fields: Any) -> Connection:
        """Change some fields of a connection (``updated_at`` follows) and return it."""
        unknown = set(fields) - _UPDATABLE_CONNECTION_FIELDS
        if unknown:
            raise StoreError(f"unknown connection fields: {sorted(unknown)}")
        if "status" in fields:
            fields["status"] = ConnectionStatus(fields["status"]).value
        fields.setdefault("updated_at", utcnow())
        names = sorted(fields)
        values = [
            _to_text(fields[n]) if n in _DATETIME_FIELDS else fields[n] for n in names
        ]
        assignments = ", ".join(f"{n} = ?" for n in names)
        with self._write() as db:
            cur = db.execute(
                f"UPDATE connections SET {assignments} WHERE connection_id = ?",  # noqa: S608
                (*values, connection_id),
            )
            if cur.rowcount != 1:
                raise StoreError(f"no connection {connection_id!r} in the store")
        return self.get_connection(connection_id)

    # -- OAuth flows in progress ----------------------------------------------------------------

    def put_flow(self, flow_id: str, data: dict[str, Any], *, expires_at: datetime) -> None:
        """Keep a flow's state (encrypted) until it expires."""
        blob = self._encrypt(json.dumps(data, default=str))
        with self._write() as db:
            db.execute("DELETE FROM flows WHERE expires_at < ?", (_to_text(utcnow()),))
            db.execute(
                "INSERT OR REPLACE INTO flows VALUES (?,?,?)",
                (flow_id, blob, _to_text(expires_at)),
            )

    def get_flow(self, flow_id: str) -> dict[str, Any] | None:
        """A flow's state, or None when unknown or expired."""
        rows = self._read("SELECT * FROM flows WHERE flow_id = ?", (flow_id,))
        if not rows or _from_text(rows[0]["expires_at"]) < utcnow():  # type: ignore[operator]
            return None
        result: dict[str, Any] = json.loads(self._decrypt(rows[0]["data_enc"]))
        return result

    def delete_flow(self, flow_id: str) -> None:
        """Forget a flow."""
        with self._write() as db:
            db.execute("DELETE FROM flows WHERE flow_id = ?", (flow_id,))
