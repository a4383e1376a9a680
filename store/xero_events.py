"""Xero's webhooks in: the events the auth server received, and what became of each.

The receiver (``auth_server/xero_webhooks.py``) stores a verified payload's events in one
transaction before it answers 200; duplicates (the same tenant, resource, event date and type:
Xero retries a delivery it thinks failed) become one row. A targeted run
(``xero-elt run --webhook-events``) reads the pending CONTACT events of its organisations and
marks them ``processed`` only after its load committed; events of organisations that are not
connected, and of categories we do not load, are ``ignored`` and never acted on.

A small name/value table keeps the receiver's health: the last intent-to-receive handshake and
the last event received.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from store.records import from_text, to_text, utcnow

CONTACT = "CONTACT"
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_TYPES = frozenset({"CREATE", "UPDATE", "DELETE"})
_CATEGORY = re.compile(r"[A-Z_]{1,40}")


class XeroEventStatus(StrEnum):
    """Where an inbound event stands."""

    PENDING = "pending"
    PROCESSED = "processed"
    """Read by a targeted run whose load committed."""
    IGNORED = "ignored"
    """Not ours to act on: an organisation we do not have connected, or a category we do not
    load (invoices, …)."""


@dataclass(frozen=True)
class XeroEvent:
    """One inbound event as stored (the natural key is the first four fields)."""

    tenant_id: str
    resource_id: str
    event_date: datetime
    event_type: str
    category: str
    received_at: datetime
    status: str
    processed_at: datetime | None = None


@dataclass(frozen=True)
class WebhookHealth:
    """What ``xero-elt status`` and the admin page show about Xero's webhooks."""

    last_handshake_at: datetime | None
    last_event_at: datetime | None
    pending: int
    oldest_pending_at: datetime | None
    last_processed_at: datetime | None
    last_lag_seconds: float | None
    """Received to loaded, for the event processed last."""

    def summary(self, now: datetime | None = None) -> dict[str, Any]:
        """JSON-ready, with the oldest pending event's age."""
        now = now or utcnow()
        age = (now - self.oldest_pending_at).total_seconds() if self.oldest_pending_at else None
        return {
            "last_handshake_at": to_text(self.last_handshake_at),
            "last_event_at": to_text(self.last_event_at),
            "pending": self.pending,
            "oldest_pending_age_s": round(age, 1) if age is not None else None,
            "last_processed_at": to_text(self.last_processed_at),
            "last_lag_s": round(self.last_lag_seconds, 1)
            if self.last_lag_seconds is not None else None,
        }


def parse_event(raw: Any, received_at: datetime) -> XeroEvent | None:
    """An event of a verified payload, or None when it is not one Xero would send (it is then
    left out; the rest of the payload is kept)."""
    if not isinstance(raw, dict):
        return None
    tenant, resource = raw.get("tenantId"), raw.get("resourceId")
    event_type, category = raw.get("eventType"), raw.get("eventCategory")
    if not (isinstance(tenant, str) and _UUID.fullmatch(tenant)
            and isinstance(resource, str) and _UUID.fullmatch(resource)
            and isinstance(event_type, str) and event_type in _TYPES
            and isinstance(category, str) and _CATEGORY.fullmatch(category)):
        return None
    when = _event_date(raw.get("eventDateUtc"))
    if when is None:
        return None
    status = XeroEventStatus.PENDING if category == CONTACT else XeroEventStatus.IGNORED
    return XeroEvent(tenant_id=tenant, resource_id=resource.lower(), event_date=when,
                     event_type=event_type, category=category, received_at=received_at,
                     status=status.value)


def _event_date(value: Any) -> datetime | None:
    """``eventDateUtc`` (``2024-06-21T01:15:39.902``, UTC without a zone) as an aware time."""
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _event(row: Mapping[str, Any]) -> XeroEvent:
    return XeroEvent(
        tenant_id=row["tenant_id"], resource_id=row["resource_id"],
        event_date=from_text(row["event_date"]),  # type: ignore[arg-type]
        event_type=row["event_type"], category=row["category"],
        received_at=from_text(row["received_at"]),  # type: ignore[arg-type]
        status=row["status"], processed_at=from_text(row["processed_at"]),
    )


class XeroEventQueries:
    """The inbound events' queries, mixed into ``Store`` (which supplies ``_read``/``_write``)."""

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Mapping[str, Any]]:
        raise NotImplementedError

    def _write(self) -> Any:
        raise NotImplementedError

    def receive_xero_events(self, events: Sequence[XeroEvent], *, handshake: bool,
                            now: datetime | None = None) -> int:
        """Keep a verified payload's events (duplicates once) and note the receipt (an
        intent-to-receive ``handshake``, or events) in one transaction; returns how many events
        were new."""
        now = now or utcnow()
        added = 0
        with self._write() as tx:
            for e in events:
                added += tx.execute(
                    "INSERT INTO xero_events (tenant_id, resource_id, event_date, event_type,"
                    " category, received_at, status) VALUES (?,?,?,?,?,?,?)"
                    " ON CONFLICT (tenant_id, resource_id, event_date, event_type) DO NOTHING",
                    (e.tenant_id, e.resource_id, to_text(e.event_date), e.event_type,
                     e.category, to_text(e.received_at), e.status))
            name = "last_handshake_at" if handshake else "last_event_at"
            tx.execute(
                "INSERT INTO xero_webhook_health (name, value) VALUES (?, ?)"
                " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                (name, to_text(now)))
        return added

    def pending_xero_event_tenants(self) -> list[str]:
        """Organisations with pending events, the longest waiting first."""
        rows = self._read(
            "SELECT tenant_id, MIN(received_at) AS oldest FROM xero_events WHERE status = ?"
            " GROUP BY tenant_id ORDER BY oldest", (XeroEventStatus.PENDING.value,))
        return [r["tenant_id"] for r in rows]

    def pending_xero_events(self, tenant_id: str, limit: int = 100_000) -> list[XeroEvent]:
        """An organisation's pending events, in the order they were received."""
        rows = self._read(
            "SELECT * FROM xero_events WHERE tenant_id = ? AND status = ?"
            " ORDER BY received_at, resource_id LIMIT ?",
            (tenant_id, XeroEventStatus.PENDING.value, int(limit)))
        return [_event(r) for r in rows]

    def finish_xero_events(self, events: Sequence[XeroEvent], status: str, *,
                           now: datetime | None = None) -> int:
        """Mark pending events processed (after the load committed) or ignored; returns how
        many changed (an event already finished is left as it is)."""
        final = XeroEventStatus(status)
        now_text = to_text(now or utcnow())
        changed = 0
        with self._write() as tx:
            for e in events:
                changed += tx.execute(
                    "UPDATE xero_events SET status = ?, processed_at = ? WHERE tenant_id = ?"
                    " AND resource_id = ? AND event_date = ? AND event_type = ? AND status = ?",
                    (final.value, now_text, e.tenant_id, e.resource_id, to_text(e.event_date),
                     e.event_type, XeroEventStatus.PENDING.value))
        return changed

    def ignore_xero_events(self, tenant_id: str, *, now: datetime | None = None) -> int:
        """Mark every pending event of an organisation ignored (it is not connected)."""
        with self._write() as tx:
            return int(tx.execute(
                "UPDATE xero_events SET status = ?, processed_at = ?"
                " WHERE tenant_id = ? AND status = ?",
                (XeroEventStatus.IGNORED.value, to_text(now or utcnow()), tenant_id,
                 XeroEventStatus.PENDING.value)))

    def prune_xero_events(self, before: datetime) -> int:
        """Forget finished events received before ``before`` (keep them longer than Xero
        retries a delivery, about a day, or a late retry would count as new)."""
        with self._write() as tx:
            return int(tx.execute(
                "DELETE FROM xero_events WHERE status <> ? AND received_at < ?",
                (XeroEventStatus.PENDING.value, to_text(before))))

    def list_xero_events(self, tenant_id: str | None = None,
                         limit: int = 1000) -> list[XeroEvent]:
        """Events, the latest received first (tests, troubleshooting)."""
        where, params = ("WHERE tenant_id = ? ", [tenant_id]) if tenant_id else ("", [])
        rows = self._read(
            f"SELECT * FROM xero_events {where}"  # noqa: S608 (a fixed clause, bound values)
            "ORDER BY received_at DESC, resource_id LIMIT ?", (*params, int(limit)))
        return [_event(r) for r in rows]

    def xero_webhook_health(self) -> WebhookHealth:
        """Last handshake, last event, pending count and lag."""
        marks = {r["name"]: from_text(r["value"])
                 for r in self._read("SELECT name, value FROM xero_webhook_health")}
        pending = self._read(
            "SELECT COUNT(*) AS n, MIN(received_at) AS oldest FROM xero_events"
            " WHERE status = ?", (XeroEventStatus.PENDING.value,))
        last = self._read(
            "SELECT received_at, processed_at FROM xero_events WHERE status = ?"
            " ORDER BY processed_at DESC, received_at LIMIT 1",
            (XeroEventStatus.PROCESSED.value,))
        lag = processed = None
        if last:
            processed = from_text(last[0]["processed_at"])
            received = from_text(last[0]["received_at"])
            if processed and received:
                lag = (processed - received).total_seconds()
        return WebhookHealth(
            last_handshake_at=marks.get("last_handshake_at"),
            last_event_at=marks.get("last_event_at"),
            pending=int(pending[0]["n"]) if pending else 0,
            oldest_pending_at=from_text(pending[0]["oldest"]) if pending else None,
            last_processed_at=processed, last_lag_seconds=lag,
        )


__all__ = ["CONTACT", "WebhookHealth", "XeroEvent", "XeroEventQueries", "XeroEventStatus",
           "parse_event"]
