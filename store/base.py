"""The store's one interface, and everything the two backends share.

``Store`` holds the queries (the same SQL runs on SQLite and PostgreSQL), encryption and record
mapping. A backend supplies four things: a read (``_read``), a write transaction (``_write``),
the cross-process grant lock (``grant_lock``) and ``close``. Statements use ``?`` placeholders;
the PostgreSQL backend turns them into ``%s``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from store import migrations
from store.api_keys import ApiKeyQueries
from store.app_budget import AppBudgetQueries
from store.jobs import JobQueries
from store.keys import KEY_ENV, KEY_FILE
from store.records import (
    CONNECTION_FIELDS,
    DATETIME_FIELDS,
    UPDATABLE_CONNECTION_FIELDS,
    Connection,
    ConnectionStatus,
    Grant,
    GrantStatus,
    StoreError,
    from_text,
    to_text,
    utcnow,
)
from store.schedules import ScheduleQueries
from store.sql import Row, Transaction
from store.webhook_outbox import (
    EventType,
    WebhookOutboxQueries,
    events_for_change,
    insert_events,
)
from store.xero_events import XeroEventQueries


class Store(ApiKeyQueries, WebhookOutboxQueries, XeroEventQueries, JobQueries, AppBudgetQueries,
            ScheduleQueries, ABC):
    """Grants, connections, in-flight flows and daily API-call counts; safe across threads and
    processes (and machines, on PostgreSQL). Open one with ``open_store()``.

    Attributes:
        backend: ``sqlite`` or ``postgres``.
        home: the local state folder (``XERO_ELT_HOME``): outbox, run lock, dlt's working dirs.
            With PostgreSQL it stays per machine; only the store is shared.
        where: the store's location for messages (a path, or a URL without its password).
    """

    backend: str
    home: Path
    where: str

    def __init__(self, fernet: Fernet) -> None:
        self._fernet = fernet

    # -- what a backend supplies ----------------------------------------------------------------

    @abstractmethod
    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        """Rows of one query (StoreError on failure)."""

    @abstractmethod
    def _write(self) -> contextlib.AbstractContextManager[Transaction]:
        """One transaction: all of it lands, or none of it (StoreError on failure)."""

    def together(self) -> contextlib.AbstractContextManager[None]:
        """The writes inside share one transaction where the backend can (SQLite: one commit,
        one fsync, for a request that writes twice); all land or none. By default each write
        stays its own transaction."""
        return contextlib.nullcontext()

    @abstractmethod
    def grant_lock(
        self, grant_id: str, timeout: float = 60.0
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the grant exclusively, across threads, processes and machines, while refreshing.

        Xero rotates refresh tokens on every use: two refreshes of one grant at once burn it.
        Raises StoreError after ``timeout`` seconds of waiting.
        """

    @abstractmethod
    def exclusive(
        self, names: Sequence[str], wait: float | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Hold every lock of ``names`` (all or none) across processes, and machines on
        PostgreSQL; they die with their holder, so a killed run never leaves one stuck.

        For the run locks (``pipelines/runlocks.py``): one per organisation, one per dataset's
        loads. Raises ``LockBusy`` naming a lock another holder keeps past ``wait`` seconds
        (None or 0: do not wait).
        """

    @abstractmethod
    def close(self) -> None:
        """Release the database handles this store keeps (SQLite: this thread's)."""

    def _needs_migration(self) -> bool:
        """Whether schema steps are missing (a read, so opening a current store writes nothing).

        Raises StoreError when the store is from a newer release.
        """
        try:
            rows = self._read("SELECT version FROM store_migrations")
        except StoreError:
            return True  # no migrations table yet: a new store, or one from before migrations
        return bool(migrations.pending({int(r["version"]) for r in rows}, self.where))

    # -- encryption -----------------------------------------------------------------------------

    def _encrypt(self, value: str) -> bytes:
        return self._fernet.encrypt(value.encode())

    def _decrypt(self, blob: bytes | memoryview) -> str:
        try:
            return self._fernet.decrypt(bytes(blob)).decode()
        except InvalidToken:
            raise StoreError(
                f"cannot decrypt a secret in {self.where}: the key ({KEY_ENV} or {KEY_FILE}) "
                "is not the one it was written with"
            ) from None

    @staticmethod
    def _check_grant_id(grant_id: str) -> None:
        if not grant_id or "/" in grant_id or grant_id.startswith("."):
            raise StoreError(f"bad grant id {grant_id!r}")

    # -- grants ---------------------------------------------------------------------------------

    def _grant(self, row: Row) -> Grant:
        return Grant(
            grant_id=row["grant_id"],
            client_id=row["client_id"],
            xero_user_id=row["xero_user_id"],
            auth_event_id=row["auth_event_id"],
            scopes=row["scopes"],
            access_token=self._decrypt(row["access_token_enc"]),
            access_expires_at=from_text(row["access_expires_at"]),  # type: ignore[arg-type]
            refresh_token=self._decrypt(row["refresh_token_enc"]),
            refreshed_at=from_text(row["refreshed_at"]),  # type: ignore[arg-type]
            status=row["status"],
            status_reason=row["status_reason"],
            created_at=from_text(row["created_at"]),  # type: ignore[arg-type]
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
        with self._write() as tx:
            tx.execute(
                "INSERT INTO grants (grant_id, client_id, xero_user_id, auth_event_id, scopes,"
                " access_token_enc, access_expires_at, refresh_token_enc, refreshed_at, status,"
                " status_reason, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    grant_id, client_id, xero_user_id, auth_event_id,
                    str(token_response.get("scope", "")),
                    self._encrypt(access), to_text(expires_at), self._encrypt(refresh),
                    to_text(now), GrantStatus.ACTIVE.value, None, to_text(now),
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
        rows = self._read("SELECT * FROM grants ORDER BY created_at, grant_id")
        return [self._grant(r) for r in rows]

    def save_rotated_tokens(
        self, grant_id: str, token_response: dict[str, Any], *, now: datetime | None = None
    ) -> Grant:
        """Replace a grant's tokens with the ones a refresh returned, atomically (committed
        before this returns, so the new access token is never used before its rotation lands)."""
        now = now or utcnow()
        access, refresh, expires_at = self._token_fields(token_response, now)
        with self._write() as tx:
            changed = tx.execute(
                "UPDATE grants SET access_token_enc=?, access_expires_at=?, refresh_token_enc=?,"
                " refreshed_at=?, scopes=COALESCE(?, scopes), status=?, status_reason=NULL"
                " WHERE grant_id=?",
                (
                    self._encrypt(access), to_text(expires_at), self._encrypt(refresh),
                    to_text(now), token_response.get("scope"), GrantStatus.ACTIVE.value,
                    grant_id,
                ),
            )
            if changed != 1:
                raise StoreError(f"no grant {grant_id!r} in the store")
        return self.get_grant(grant_id)

    def set_grant_status(self, grant_id: str, status: str, reason: str | None = None) -> None:
        """Mark a grant active, invalid (Xero said invalid_grant) or revoked."""
        GrantStatus(status)
        with self._write() as tx:
            changed = tx.execute(
                "UPDATE grants SET status=?, status_reason=? WHERE grant_id=?",
                (status, reason, grant_id),
            )
            if changed != 1:
                raise StoreError(f"no grant {grant_id!r} in the store")

    def delete_grant_if_unused(self, grant_id: str) -> bool:
        """Delete a grant (its tokens) when no connection record refers to it; True if deleted."""
        with self._write() as tx:
            return tx.execute(
                "DELETE FROM grants WHERE grant_id = ? AND NOT EXISTS"
                " (SELECT 1 FROM connections WHERE grant_id = ?)", (grant_id, grant_id)) == 1

    # -- connections ----------------------------------------------------------------------------

    @staticmethod
    def _connection(row: Row) -> Connection:
        values = {
            name: (from_text(row[name]) if name in DATETIME_FIELDS else row[name])
            for name in CONNECTION_FIELDS
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
        language: str | None = None,
    ) -> Connection:
        """A new invite, status ``invited`` (``language``: its pages' and email's, if chosen)."""
        now = now or utcnow()
        connection_id = "con_" + secrets.token_hex(6)
        with self._write() as tx:
            tx.execute(
                "INSERT INTO connections (connection_id, company, email, status,"
                " invite_token_hash, invite_expires_at, invited_at, updated_at, language)"
                " VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    connection_id, company, email, ConnectionStatus.INVITED.value,
                    invite_token_hash, to_text(invite_expires_at), to_text(now), to_text(now),
                    language,
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
        rows = self._read("SELECT * FROM connections WHERE invite_token_hash = ?", (token_hash,))
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
            "SELECT * FROM connections WHERE tenant_id = ? ORDER BY invited_at, connection_id",
            (tenant_id,),
        )
        return [self._connection(r) for r in rows]

    def update_connection(self, connection_id: str, **fields: Any) -> Connection:
        """Change some fields of a connection (``updated_at`` follows) and return it.

        A connection's status changes through ``store.lifecycle.apply`` (the transition table,
        and who is told); ``status`` here is a raw write that checks nothing and tells nobody
        (tests and repairs). A sync worth a webhook (first sync done, sync failed) puts its
        event in the outbox in the same transaction. The update is a compare-and-set on
        ``updated_at``, retried, so the before/after that decides the events is exact even with
        writers racing.
        """
        fields = self._connection_fields(fields)
        while True:
            row = self._connection_row(connection_id)
            with self._write() as tx:
                changed = self._set_connection(tx, row, fields)
            if changed:
                return self.get_connection(connection_id)

    def _connection_row(self, connection_id: str) -> Row:
        """The connection's row as stored; StoreError if there is none."""
        rows = self._read("SELECT * FROM connections WHERE connection_id = ?", (connection_id,))
        if not rows:
            raise StoreError(f"no connection {connection_id!r} in the store")
        return rows[0]

    def update_connections(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        """``update_connection`` for many connections (connection id -> fields) in one
        transaction: a run over 1,000 organisations otherwise commits (and syncs) 1,000 times
        to mark them syncing and again to record the outcome. Same compare-and-set and events;
        one that another writer changed meanwhile is then updated on its own."""
        prepared = {cid: self._connection_fields(dict(f)) for cid, f in changes.items()}
        ids = sorted(prepared)
        rows: dict[str, Row] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self._read(
                    f"SELECT * FROM connections WHERE connection_id IN ({marks})",  # noqa: S608
                    chunk):
                rows[row["connection_id"]] = row
        again = [cid for cid in ids if cid not in rows]  # raises StoreError below
        if rows:
            with self._write() as tx:
                again += [cid for cid in ids if cid in rows
                          and not self._set_connection(tx, rows[cid], prepared[cid])]
        for cid in again:
            self.update_connection(cid, **prepared[cid])

    @staticmethod
    def _connection_fields(fields: dict[str, Any]) -> dict[str, Any]:
        """Checked fields of a connection update, ``updated_at`` set."""
        unknown = set(fields) - UPDATABLE_CONNECTION_FIELDS
        if unknown:
            raise StoreError(f"unknown connection fields: {sorted(unknown)}")
        if "status" in fields:
            fields["status"] = ConnectionStatus(fields["status"]).value
        fields.setdefault("updated_at", utcnow())
        return fields

    def _set_connection(self, tx: Transaction, row: Row, fields: dict[str, Any],
                        status_events: Iterable[EventType] = ()) -> bool:
        """Compare-and-set one connection from ``row`` (as read) to ``fields``, with its sync
        events and ``status_events`` (``store.lifecycle`` says which); False if it changed
        since it was read."""
        old = self._connection(row)
        new = dataclasses.replace(old, **fields)
        names = sorted(fields)
        values = [to_text(fields[n]) if n in DATETIME_FIELDS else fields[n] for n in names]
        # Column names come from UPDATABLE_CONNECTION_FIELDS, never from input.
        assignments = ", ".join(f"{n} = ?" for n in names)
        changed = tx.execute(
            f"UPDATE connections SET {assignments}"  # noqa: S608
            " WHERE connection_id = ? AND updated_at = ?",
            (*values, row["connection_id"], row["updated_at"]),
        )
        if changed == 1:
            insert_events(tx, new, [*status_events, *events_for_change(old, new)],
                          utcnow())
        return changed == 1

    def forget_organisation(self, connection_id: str, tenant_id: str | None) -> None:
        """Remove what the store holds about a purged organisation, except the connection's
        audit record (see ``pipelines/purge.py``): Xero's events and the call counts of the
        tenant, and, in every webhook event of the connection, the organisation's fields
        (the events stay, so their delivery history does)."""
        from store.webhook_outbox import forget_connection_in_events

        rows = self._read("SELECT event_id, body FROM webhook_events WHERE connection_id = ?",
                          (connection_id,))
        with self._write() as tx:
            if tenant_id:
                tx.execute("DELETE FROM xero_events WHERE tenant_id = ?", (tenant_id,))
                tx.execute("DELETE FROM api_usage WHERE tenant_id = ?", (tenant_id,))
                tx.execute("DELETE FROM entity_reads WHERE tenant_id = ?", (tenant_id,))
            tx.execute("DELETE FROM schedule_overrides WHERE connection_id = ?",
                       (connection_id,))
            for event_id, body in forget_connection_in_events(rows):
                tx.execute("UPDATE webhook_events SET body = ? WHERE event_id = ?",
                           (body, event_id))

    def reclaim_space(self) -> None:
        """Make deleted rows unreadable where the backend keeps old pages in a local file
        (SQLite's write-ahead log); PostgreSQL's own VACUUM does this for its files."""

    # -- OAuth flows, browser and admin sessions ------------------------------------------------

    def put_flow(self, flow_id: str, data: dict[str, Any], *, expires_at: datetime) -> None:
        """Keep a flow's state (encrypted) until it expires."""
        blob = self._encrypt(json.dumps(data, default=str))
        with self._write() as tx:
            tx.execute("DELETE FROM flows WHERE expires_at < ?", (to_text(utcnow()),))
            tx.execute(
                "INSERT INTO flows (flow_id, data_enc, expires_at) VALUES (?,?,?)"
                " ON CONFLICT (flow_id) DO UPDATE"
                " SET data_enc = excluded.data_enc, expires_at = excluded.expires_at",
                (flow_id, blob, to_text(expires_at)),
            )

    def put_flow_once(
        self, flow_id: str, data: dict[str, Any], *, expires_at: datetime
    ) -> dict[str, Any]:
        """Keep ``data`` unless the flow already exists; returns the state kept.

        For values every server must agree on (the CSRF key): of servers starting together on
        a new store, the first writer wins and the others adopt its value.
        """
        blob = self._encrypt(json.dumps(data, default=str))
        with self._write() as tx:
            tx.execute("DELETE FROM flows WHERE expires_at < ?", (to_text(utcnow()),))
            tx.execute(
                "INSERT INTO flows (flow_id, data_enc, expires_at) VALUES (?,?,?)"
                " ON CONFLICT (flow_id) DO NOTHING",
                (flow_id, blob, to_text(expires_at)),
            )
        kept = self.get_flow(flow_id)
        if kept is None:
            raise StoreError(f"flow {flow_id!r} vanished as it was written")
        return kept

    def get_flow(self, flow_id: str) -> dict[str, Any] | None:
        """A flow's state, or None when unknown or expired."""
        rows = self._read("SELECT * FROM flows WHERE flow_id = ?", (flow_id,))
        if not rows or from_text(rows[0]["expires_at"]) < utcnow():  # type: ignore[operator]
            return None
        result: dict[str, Any] = json.loads(self._decrypt(rows[0]["data_enc"]))
        return result

    def take_flow(self, flow_id: str) -> dict[str, Any] | None:
        """A flow's state, removed: of callers racing for it (threads, processes, machines)
        exactly one gets it — the one whose delete removed the row. None when unknown or
        expired."""
        data = self.get_flow(flow_id)
        if data is None or not self.delete_flow(flow_id):
            return None
        return data

    def swap_flow(
        self, flow_id: str, data: dict[str, Any], *, expires_at: datetime
    ) -> dict[str, Any] | None:
        """Store a flow's state and return the live state it replaced (None if none).

        A compare-and-set on the encrypted blob (unique per write), retried when another
        writer got in between: of racing writers, each sees what the previous one wrote.
        """
        blob = self._encrypt(json.dumps(data, default=str))
        while True:
            rows = self._read("SELECT * FROM flows WHERE flow_id = ?", (flow_id,))
            with self._write() as tx:
                if rows:
                    changed = tx.execute(
                        "UPDATE flows SET data_enc = ?, expires_at = ?"
                        " WHERE flow_id = ? AND data_enc = ?",
                        (blob, to_text(expires_at), flow_id, rows[0]["data_enc"]),
                    )
                else:
                    changed = tx.execute(
                        "INSERT INTO flows (flow_id, data_enc, expires_at) VALUES (?,?,?)"
                        " ON CONFLICT (flow_id) DO NOTHING",
                        (flow_id, blob, to_text(expires_at)),
                    )
            if changed == 1:
                break
        if not rows or from_text(rows[0]["expires_at"]) < utcnow():  # type: ignore[operator]
            return None
        previous: dict[str, Any] = json.loads(self._decrypt(rows[0]["data_enc"]))
        return previous

    def delete_flow(self, flow_id: str) -> bool:
        """Forget a flow; True when this call deleted it.

        Of several callers racing to delete one flow (two servers taking one OAuth ``state``),
        exactly one gets True: the row lock of the delete decides, across machines too.
        """
        with self._write() as tx:
            return tx.execute("DELETE FROM flows WHERE flow_id = ?", (flow_id,)) == 1

    # -- API calls per organisation per UTC day -------------------------------------------------

    def api_calls(self, tenant_id: str, day: str) -> int:
        """Calls counted for the organisation on ``day`` (``YYYY-MM-DD``, UTC)."""
        rows = self._read("SELECT calls FROM api_usage WHERE tenant_id = ? AND day = ?",
                          (tenant_id, day))
        return int(rows[0]["calls"]) if rows else 0

    def count_api_calls(self, tenant_id: str, day: str, calls: int = 1) -> int:
        """Add calls to the organisation's count for ``day``; returns the new total."""
        self.count_api_calls_many({(tenant_id, day): calls})
        return self.api_calls(tenant_id, day)

    def count_api_calls_many(self, counts: Mapping[tuple[str, str], int],
                             received: Mapping[tuple[str, str], int] | None = None) -> None:
        """Add calls (and bytes received) per (tenant id, day), all in one transaction (one
        commit for a run's organisations, not one per call)."""
        received = received or {}
        with self._write() as tx:
            for tenant_id, day in sorted(set(counts) | set(received)):  # one lock order
                key = (tenant_id, day)
                tx.execute(
                    "INSERT INTO api_usage (tenant_id, day, calls, bytes_received)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id, day) DO UPDATE"
                    " SET calls = api_usage.calls + excluded.calls,"
                    " bytes_received = api_usage.bytes_received + excluded.bytes_received",
                    (tenant_id, day, counts.get(key, 0), received.get(key, 0)),
                )

    def bytes_received_by_day(self, since: str) -> dict[str, dict[str, int]]:
        """Bytes received from Xero per organisation and UTC day, from ``since`` (a day,
        ``YYYY-MM-DD``) on: {tenant id: {day: bytes}}."""
        rows = self._read("SELECT tenant_id, day, bytes_received FROM api_usage WHERE day >= ?",
                          (since,))
        found: dict[str, dict[str, int]] = {}
        for row in rows:
            found.setdefault(row["tenant_id"], {})[row["day"]] = int(row["bytes_received"])
        return found
