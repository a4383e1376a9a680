"""Many connections updated in one transaction (a run's 1,000 organisations), both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest

from store import Store, StoreError, utcnow


def _connected(store: Store, tenant: str) -> str:
    conn = store.create_connection(f"Org {tenant}", f"{tenant}@example.test",
                                   invite_token_hash=f"h-{tenant}",
                                   invite_expires_at=utcnow() + timedelta(days=7))
    store.update_connection(conn.connection_id, status="connected", tenant_id=tenant,
                            organisation_name=f"Org {tenant}")
    return conn.connection_id


def test_many_connections_change_at_once_with_their_events(store: Store) -> None:
    ids = [_connected(store, f"t-{n}") for n in range(3)]
    store.update_connections({cid: {"sync_state": "syncing"} for cid in ids})
    assert {store.get_connection(cid).sync_state for cid in ids} == {"syncing"}

    done = utcnow()
    store.update_connections({
        ids[0]: {"sync_state": "synced", "last_synced_at": done, "last_sync_rows": 5},
        ids[1]: {"sync_state": "failed", "last_sync_outcome": "failed"},
        ids[2]: {"sync_state": None},
    })

    first, second, third = (store.get_connection(cid) for cid in ids)
    assert (first.sync_state, first.last_sync_rows, first.last_synced_at) == ("synced", 5, done)
    assert (second.sync_state, second.last_sync_outcome) == ("failed", "failed")
    assert third.sync_state is None
    events = {(e.type, e.connection_id) for e in store.list_webhook_events()}
    assert ("sync.first_completed", ids[0]) in events
    assert ("sync.failed", ids[1]) in events
    assert not any(cid == ids[2] and kind.startswith("sync.") for kind, cid in events)


def test_an_unknown_connection_or_field_is_refused(store: Store) -> None:
    cid = _connected(store, "t-1")
    with pytest.raises(StoreError, match="unknown connection fields"):
        store.update_connections({cid: {"password": "x"}})
    with pytest.raises(StoreError, match="no connection"):
        store.update_connections({cid: {"sync_state": "syncing"}, "con_missing": {}})
    assert store.get_connection(cid).sync_state == "syncing"  # the known one still changed
