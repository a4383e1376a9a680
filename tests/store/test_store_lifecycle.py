"""A connection's life (``store.lifecycle``), walked through its table on both backends: every
allowed transition happens and tells whom the table says; every other (status, event) pair is
refused, changing nothing and telling nobody."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from store import ConnectionStatus, Store, StoreError, lifecycle, utcnow
from store.lifecycle import TRANSITIONS, Event, TransitionRefused


def _connection_in(store: Store, status: ConnectionStatus, n: int) -> str:
    conn = store.create_connection("Acme", "a@acme.test", invite_token_hash=f"h-{n}",
                                   invite_expires_at=utcnow() + timedelta(days=7))
    # A raw write (tests and repairs only): it checks nothing and tells nobody.
    store.update_connection(conn.connection_id, status=status)
    return conn.connection_id


def _events_of(store: Store, connection_id: str) -> list[str]:
    return [e.type for e in store.list_webhook_events(connection_id=connection_id)]


def test_every_pair_of_status_and_event_follows_the_table(store: Store) -> None:
    table = {(t.source, t.event): t for t in TRANSITIONS}
    pairs = list(itertools.product(ConnectionStatus, Event))
    for n, (status, event) in enumerate(pairs):
        cid = _connection_in(store, status, n)
        assert _events_of(store, cid) == []
        found = table.get((status, event))
        if found is None:
            with pytest.raises(TransitionRefused, match=f"is {status.value}: {event.value} is "
                                                        "not allowed"):
                lifecycle.apply(store, cid, event, status_reason="ignored")
            assert store.get_connection(cid).status == status
            assert store.get_connection(cid).status_reason is None
            assert _events_of(store, cid) == []
            continue
        moved = lifecycle.apply(store, cid, event, status_reason="why")
        assert (moved.status, moved.status_reason) == (found.target, "why")
        assert store.get_connection(cid) == moved
        told = [found.tells.value] if found.tells and found.target != status else []
        assert _events_of(store, cid) == told, (status, event)
    assert len(table) < len(pairs)  # some pairs are refused


def test_the_table_tells_the_webhook_subscribers_what_conventions_name() -> None:
    told = {t.target: t.tells for t in TRANSITIONS if t.tells is not None}
    assert {k.value: v.value for k, v in told.items()} == {
        "connected": "connection.connected",
        "needs_reconnection": "connection.needs_reconnection",
        "disconnected": "connection.disconnected",
        "purged": "connection.purged",
    }


def test_the_event_carries_the_connection_as_written(store: Store) -> None:
    cid = _connection_in(store, ConnectionStatus.LINK_OPENED, 0)
    lifecycle.apply(store, cid, Event.CONFIRM, tenant_id="t-1", organisation_name="Acme Ltd")
    (event,) = store.list_webhook_events(connection_id=cid)
    assert '"organisation_name":"Acme Ltd"' in event.body
    assert '"status":"connected"' in event.body


def test_the_status_is_the_tables_not_the_callers(store: Store) -> None:
    cid = _connection_in(store, ConnectionStatus.INVITED, 0)
    with pytest.raises(StoreError, match="pass the event"):
        lifecycle.apply(store, cid, Event.OPEN_LINK, status="connected")
    with pytest.raises(StoreError, match="no connection"):
        lifecycle.apply(store, "con_missing", Event.OPEN_LINK)
    with pytest.raises(ValueError, match="bogus"):
        lifecycle.apply(store, cid, "bogus")


def test_a_purge_under_way_is_never_undone_by_a_late_change(store: Store) -> None:
    cid = _connection_in(store, ConnectionStatus.CONNECTED, 0)
    lifecycle.apply(store, cid, Event.PURGE_REQUESTED)
    for late in (Event.CONFIRM, Event.ACCESS_LOST, Event.DISCONNECT, Event.PURGE_REQUESTED):
        with pytest.raises(TransitionRefused):
            lifecycle.apply(store, cid, late)
    assert store.get_connection(cid).status == "purging"


def test_a_refused_grant_moves_its_connected_organisations_on(store: Store) -> None:
    grant = store.add_grant({"access_token": "a", "refresh_token": "r", "expires_in": 1800},
                            client_id="CID")
    on_grant = _connection_in(store, ConnectionStatus.CONNECTED, 0)
    store.update_connection(on_grant, grant_id=grant.grant_id, tenant_id="t-1")
    elsewhere = _connection_in(store, ConnectionStatus.CONNECTED, 1)
    assert lifecycle.grant_refused(store, grant.grant_id, "invalid_grant") == ["t-1"]
    assert store.get_grant(grant.grant_id).status == "invalid"
    assert store.get_connection(on_grant).status == "needs_reconnection"
    assert _events_of(store, on_grant) == ["connection.needs_reconnection"]
    assert store.get_connection(elsewhere).status == "connected"


def test_no_product_code_sets_a_status_but_through_the_table() -> None:
    """``update_connection(status=…)`` is a raw write for tests and repairs: the product names an
    event (``store.lifecycle.apply``), so who is told is never skipped."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    wrong = []
    for package in ("connector", "store", "auth_server", "pipelines", "tools", "bench"):
        for path in sorted((root / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("update_connection", "update_connections")
                        and any(k.arg == "status" for k in node.keywords)):
                    wrong.append(f"{path.relative_to(root)}:{node.lineno}")
    assert wrong == []
