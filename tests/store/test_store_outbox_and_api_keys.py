"""The webhook outbox and API keys, on both backends."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from store import Store, StoreError, lifecycle, utcnow
from store.lifecycle import Event


def _invite(store: Store) -> str:
    conn = store.create_connection("Acme", "a@acme.test", invite_token_hash="h1",
                                   invite_expires_at=utcnow() + timedelta(days=7))
    return conn.connection_id


def test_status_changes_write_their_event_with_the_change(store: Store) -> None:
    cid = _invite(store)
    lifecycle.apply(store, cid, Event.OPEN_LINK)
    assert store.list_webhook_events() == []  # not an event anyone subscribes to

    lifecycle.apply(store, cid, Event.CONFIRM, tenant_id="t-1", organisation_name="Acme")
    store.update_connection(cid, sync_state="syncing")
    store.update_connection(cid, sync_state="synced", last_synced_at=utcnow())
    store.update_connection(cid, sync_state="failed", last_sync_outcome="failed")
    lifecycle.apply(store, cid, Event.ACCESS_LOST, status_reason="grant revoked")

    events = store.list_webhook_events()
    assert [e.type for e in reversed(events)] == [
        "connection.connected", "sync.first_completed", "sync.failed",
        "connection.needs_reconnection"]
    body = json.loads(events[0].body)
    assert body["id"] == events[0].event_id
    assert body["id"].startswith("evt_")
    assert body["data"]["connection"]["status_reason"] == "grant revoked"
    assert "invite_token_hash" not in body["data"]["connection"]
    assert all(e.status == "pending" for e in events)


def test_a_failed_update_writes_no_event(store: Store) -> None:
    cid = _invite(store)
    with pytest.raises(StoreError):
        lifecycle.apply(store, cid, Event.CONFIRM, grant_id="grt_missing")  # foreign key
    assert store.get_connection(cid).status == "invited"
    assert store.list_webhook_events() == []


def test_events_are_claimed_once_retried_and_replayed(store: Store) -> None:
    cid = _invite(store)
    lifecycle.apply(store, cid, Event.DISCONNECT)
    (event,) = store.claim_due_webhook_events(lease_seconds=60)
    assert store.claim_due_webhook_events(lease_seconds=60) == []  # leased

    later = utcnow() + timedelta(seconds=30)
    store.record_webhook_attempt(event.event_id, delivered=False, status_code=503,
                                 error="HTTP 503", next_attempt_at=later)
    assert store.claim_due_webhook_events(lease_seconds=60) == []  # not due yet
    (again,) = store.claim_due_webhook_events(lease_seconds=60, now=later)
    store.record_webhook_attempt(again.event_id, delivered=False, status_code=None,
                                 error="refused", next_attempt_at=None)
    failed = store.get_webhook_event(event.event_id)
    assert (failed.status, failed.attempts, failed.last_error) == ("failed", 2, "refused")

    replayed = store.replay_webhook_event(event.event_id)
    assert (replayed.status, replayed.attempts, replayed.body) == ("pending", 0, event.body)
    (third,) = store.claim_due_webhook_events(lease_seconds=60)
    store.record_webhook_attempt(third.event_id, delivered=True, status_code=200, error=None,
                                 next_attempt_at=None)
    assert store.get_webhook_event(event.event_id).status == "delivered"
    with pytest.raises(StoreError):
        store.replay_webhook_event("evt_nope")


def test_api_keys_are_kept_hashed_and_stop_working_when_revoked(store: Store) -> None:
    record, key = store.create_api_key("platform backend")
    assert len(key) >= 32
    assert key.startswith("xelt_")
    rows = store._read("SELECT * FROM api_keys")
    assert key not in json.dumps([dict(r) for r in rows], default=str)

    assert store.check_api_key(key).key_id == record.key_id  # type: ignore[union-attr]
    assert store.check_api_key(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert store.check_api_key("short") is None
    assert store.get_api_key(record.key_id).last_used_at is not None

    store.revoke_api_key(record.key_id)
    assert store.check_api_key(key) is None
    assert [k.active for k in store.list_api_keys()] == [False]
