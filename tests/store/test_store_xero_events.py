"""Xero's inbound webhook events in the store, on both backends: one row per (tenant, resource,
event date, type), pending until a targeted run finishes them, ignored ones never pending, and
the health marks."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from store import Store
from store.xero_events import XeroEvent, parse_event

TENANT = str(uuid.uuid4())


def raw(contact_id: str, when: datetime, *, category: str = "CONTACT",
        event_type: str = "UPDATE", tenant_id: str = TENANT) -> dict[str, str]:
    return {"resourceId": contact_id, "tenantId": tenant_id, "eventCategory": category,
            "eventType": event_type, "eventDateUtc": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]}


def parsed(item: dict[str, str], received: datetime) -> XeroEvent:
    event = parse_event(item, received)
    assert event is not None
    return event


def test_events_are_deduplicated_finished_once_and_counted(store: Store) -> None:
    t0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
    contact = str(uuid.uuid4())
    first = [parsed(raw(contact, t0), t0), parsed(raw(contact, t0), t0),
             parsed(raw(contact, t0, event_type="CREATE"), t0),
             parsed(raw(str(uuid.uuid4()), t0, category="INVOICE"), t0)]
    assert store.receive_xero_events(first, handshake=False, now=t0) == 3
    assert store.receive_xero_events(first[:1], handshake=False, now=t0) == 0  # a retry
    pending = store.pending_xero_events(TENANT)
    assert sorted(e.event_type for e in pending) == ["CREATE", "UPDATE"]  # the invoice: ignored
    assert store.pending_xero_event_tenants() == [TENANT]
    health = store.xero_webhook_health()
    assert (health.pending, health.oldest_pending_at, health.last_event_at) == (2, t0, t0)
    assert health.last_handshake_at is None

    done = t0 + timedelta(seconds=4)
    assert store.finish_xero_events(pending, "processed", now=done) == 2
    assert store.finish_xero_events(pending, "processed", now=done) == 0
    health = store.xero_webhook_health()
    assert (health.pending, health.last_processed_at, health.last_lag_seconds) == (0, done, 4.0)
    assert store.pending_xero_event_tenants() == []
    store.receive_xero_events([parsed(raw(str(uuid.uuid4()), done), done)], handshake=False,
                              now=done)
    assert store.prune_xero_events(done) == 3  # the finished ones; the new pending one stays
    assert [e.status for e in store.list_xero_events()] == ["pending"]


def test_unknown_organisations_are_ignored_and_handshakes_noted(store: Store) -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    stranger = str(uuid.uuid4())
    store.receive_xero_events([parsed(raw(str(uuid.uuid4()), now, tenant_id=stranger), now)],
                              handshake=False, now=now)
    assert store.ignore_xero_events(stranger, now=now) == 1
    assert [e.status for e in store.list_xero_events(stranger)] == ["ignored"]
    store.receive_xero_events([], handshake=True, now=now)
    assert store.xero_webhook_health().last_handshake_at == now


def test_malformed_events_are_left_out() -> None:
    now = datetime.now(UTC)
    good = raw(str(uuid.uuid4()), now)
    for bad in ({**good, "resourceId": "1 OR 1=1"}, {**good, "eventType": "EXPLODE"},
                {**good, "eventDateUtc": "yesterday"}, {**good, "tenantId": None}, "text"):
        assert parse_event(bad, now) is None
    assert parse_event(good, now) is not None
