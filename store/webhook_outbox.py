"""The webhook outbox: which connection changes are reported, and the queries of its table.

An event is decided by comparing a connection before and after an update
(``events_for_change``) and is inserted in the *same* transaction as that update
(``Store.update_connection``), so a change is never reported that did not happen, and never
happens unreported. The auth server's delivery worker (``auth_server/webhook_delivery.py``)
claims due events, posts them and records each attempt here.

An event's ``body`` is the exact JSON that is signed and sent, fixed when the event is written:
a retry or a replay sends the same bytes with a fresh timestamp. It carries the connection's
public fields only, never a token or an invite link.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from store.records import Connection, StoreError, from_text, to_text, utcnow

if TYPE_CHECKING:
    from store.sql import Row, Transaction


class EventType(StrEnum):
    """The webhook event types (CONVENTIONS.md, "The auth server's API and webhooks")."""

    CONNECTED = "connection.connected"
    NEEDS_RECONNECTION = "connection.needs_reconnection"
    DISCONNECTED = "connection.disconnected"
    PURGED = "connection.purged"
    FIRST_SYNC_COMPLETED = "sync.first_completed"
    SYNC_FAILED = "sync.failed"
    PURGE_FAILED = "purge.failed"


class DeliveryStatus(StrEnum):
    """Where an event's delivery stands."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    """Retried for the whole window without a 2xx; ``xero-elt webhooks replay`` sends it again."""


PUBLIC_CONNECTION_FIELDS = (
    "connection_id", "company", "email", "status", "status_reason", "tenant_id",
    "organisation_name", "invited_at", "invite_expires_at", "link_opened_at", "connected_at",
    "disconnected_at", "sync_state", "last_synced_at", "last_sync_rows", "last_sync_outcome",
    "purged_at", "purged_by", "language",
)


def events_for_change(old: Connection, new: Connection) -> list[EventType]:
    """The sync events an update from ``old`` to ``new`` reports (usually none); a status
    change's event is the transition table's (``store.lifecycle``)."""
    events: list[EventType] = []
    if old.last_synced_at is None and new.last_synced_at is not None:
        events.append(EventType.FIRST_SYNC_COMPLETED)
    if new.sync_state == "failed" and old.sync_state != "failed":
        events.append(EventType.SYNC_FAILED)
    return events


def connection_payload(conn: Connection) -> dict[str, Any]:
    """A connection's public fields as JSON-ready data (what the API and webhooks show)."""
    data: dict[str, Any] = {}
    for name in PUBLIC_CONNECTION_FIELDS:
        value = getattr(conn, name)
        data[name] = to_text(value) if isinstance(value, datetime) else value
    return data


# What a purged connection's events keep of it: who it was to the platform, and nothing of the
# organisation (its name, tenant id, the invited company and person).
_FORGOTTEN_FIELDS = {"company": "", "email": "", "tenant_id": None, "organisation_name": None,
                     "status_reason": None}


def forget_connection_in_events(rows: Iterable[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(event id, body) for each event body that names the organisation, with those fields
    cleared; bodies that do not are left out."""
    changed = []
    for row in rows:
        body = json.loads(row["body"])
        conn = body.get("data", {}).get("connection")
        if not isinstance(conn, dict):
            continue
        new = {**conn, **{k: v for k, v in _FORGOTTEN_FIELDS.items() if k in conn}}
        if new != conn:
            body["data"]["connection"] = new
            changed.append((row["event_id"], json.dumps(body, separators=(",", ":"),
                                                        sort_keys=True)))
    return changed


@dataclass(frozen=True)
class WebhookEvent:
    """One outbox row."""

    event_id: str
    type: str
    connection_id: str
    created_at: datetime
    body: str
    status: str
    attempts: int
    next_attempt_at: datetime
    last_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None
    delivered_at: datetime | None

    def summary(self) -> dict[str, Any]:
        """The row without its body, JSON-ready (``xero-elt webhooks list --json``)."""
        return {
            "event_id": self.event_id, "type": self.type, "connection_id": self.connection_id,
            "created_at": to_text(self.created_at), "status": self.status,
            "attempts": self.attempts, "next_attempt_at": to_text(self.next_attempt_at),
            "last_attempt_at": to_text(self.last_attempt_at), "last_status": self.last_status,
            "last_error": self.last_error, "delivered_at": to_text(self.delivered_at),
        }


def _event(row: Row) -> WebhookEvent:
    return WebhookEvent(
        event_id=row["event_id"], type=row["type"], connection_id=row["connection_id"],
        created_at=from_text(row["created_at"]),  # type: ignore[arg-type]
        body=row["body"], status=row["status"], attempts=int(row["attempts"]),
        next_attempt_at=from_text(row["next_attempt_at"]),  # type: ignore[arg-type]
        last_attempt_at=from_text(row["last_attempt_at"]), last_status=row["last_status"],
        last_error=row["last_error"], delivered_at=from_text(row["delivered_at"]),
    )


def insert_events(tx: Transaction, conn: Connection, types: Iterable[EventType],
                  now: datetime) -> None:
    """Add events about ``conn`` (its state after the change) inside the caller's transaction."""
    for event_type in types:
        event_id = "evt_" + secrets.token_hex(12)
        body = json.dumps({
            "id": event_id, "type": event_type.value, "created_at": to_text(now),
            "data": {"connection": connection_payload(conn)},
        }, separators=(",", ":"), sort_keys=True)
        tx.execute(
            "INSERT INTO webhook_events (event_id, type, connection_id, created_at, body, status,"
            " attempts, next_attempt_at) VALUES (?,?,?,?,?,?,?,?)",
            (event_id, event_type.value, conn.connection_id, to_text(now), body,
             DeliveryStatus.PENDING.value, 0, to_text(now)),
        )


class WebhookOutboxQueries:
    """The outbox's queries, mixed into ``Store`` (which supplies ``_read`` and ``_write``)."""

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Mapping[str, Any]]:
        raise NotImplementedError

    def _write(self) -> Any:
        raise NotImplementedError

    def list_webhook_events(self, *, status: str | None = None, connection_id: str | None = None,
                            limit: int = 100) -> list[WebhookEvent]:
        """Events, newest first, optionally of one delivery status or connection."""
        where, params = [], []
        if status is not None:
            where.append("status = ?")
            params.append(DeliveryStatus(status).value)
        if connection_id is not None:
            where.append("connection_id = ?")
            params.append(connection_id)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(
            f"SELECT * FROM webhook_events{clause}"  # noqa: S608 (fixed clauses, bound values)
            " ORDER BY created_at DESC, event_id DESC LIMIT ?", (*params, int(limit)))
        return [_event(r) for r in rows]

    def get_webhook_event(self, event_id: str) -> WebhookEvent:
        """One event; StoreError if there is none."""
        rows = self._read("SELECT * FROM webhook_events WHERE event_id = ?", (event_id,))
        if not rows:
            raise StoreError(f"no webhook event {event_id!r} in the store")
        return _event(rows[0])

    def claim_due_webhook_events(self, *, lease_seconds: float, limit: int = 20,
                                 now: datetime | None = None) -> list[WebhookEvent]:
        """Pending events due now, each leased to this caller for ``lease_seconds``.

        Of workers on several servers sharing the store, exactly one claims an event (the
        lease is a compare-and-set); a worker that dies mid-delivery lets its lease lapse and
        another sends the event again (receivers dedupe on the event id).
        """
        now = now or utcnow()
        rows = self._read(
            "SELECT * FROM webhook_events WHERE status = ? AND next_attempt_at <= ?"
            " AND (claimed_until IS NULL OR claimed_until < ?)"
            " ORDER BY next_attempt_at, created_at LIMIT ?",
            (DeliveryStatus.PENDING.value, to_text(now), to_text(now), int(limit)))
        until = to_text(now + timedelta(seconds=lease_seconds))
        claimed = []
        for row in rows:
            with self._write() as tx:
                won = tx.execute(
                    "UPDATE webhook_events SET claimed_until = ? WHERE event_id = ?"
                    " AND status = ? AND (claimed_until IS NULL OR claimed_until < ?)",
                    (until, row["event_id"], DeliveryStatus.PENDING.value, to_text(now)))
            if won == 1:
                claimed.append(_event(row))
        return claimed

    def record_webhook_attempt(self, event_id: str, *, delivered: bool, status_code: int | None,
                               error: str | None, next_attempt_at: datetime | None,
                               now: datetime | None = None) -> None:
        """Note one delivery attempt; ``next_attempt_at`` None after a failure means give up."""
        now = now or utcnow()
        if delivered:
            status = DeliveryStatus.DELIVERED
        else:
            status = DeliveryStatus.PENDING if next_attempt_at else DeliveryStatus.FAILED
        with self._write() as tx:
            tx.execute(
                "UPDATE webhook_events SET status = ?, attempts = attempts + 1,"
                " last_attempt_at = ?, last_status = ?, last_error = ?,"
                " next_attempt_at = COALESCE(?, next_attempt_at),"
                " delivered_at = ?, claimed_until = NULL WHERE event_id = ?",
                (status.value, to_text(now), status_code, (error or None) and error[:300],
                 to_text(next_attempt_at), to_text(now) if delivered else None, event_id))

    def replay_webhook_event(self, event_id: str, *, now: datetime | None = None) -> WebhookEvent:
        """Queue an event again (any status) for delivery now, its retry window restarted.

        The body, and so the event id, stay the same: receivers that already have it can tell.
        """
        now = now or utcnow()
        with self._write() as tx:
            changed = tx.execute(
                "UPDATE webhook_events SET status = ?, attempts = 0, next_attempt_at = ?,"
                " claimed_until = NULL, delivered_at = NULL,"
                " last_error = NULL WHERE event_id = ?",
                (DeliveryStatus.PENDING.value, to_text(now), event_id))
            if changed != 1:
                raise StoreError(f"no webhook event {event_id!r} in the store")
        return self.get_webhook_event(event_id)
