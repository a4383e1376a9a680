"""The credential and connection store: encryption at rest, atomic writes, single-flight locks."""

from __future__ import annotations

import multiprocessing
import os
import stat
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from connector.store import ConnectionStatus, Store, StoreError

TOKENS = {
    "access_token": "eyJ-access-secret",
    "refresh_token": "refresh-secret-1",
    "expires_in": 1800,
    "scope": "openid offline_access accounting.settings.read",
    "token_type": "Bearer",
}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "home")


def test_grant_round_trip_and_rotation(store: Store) -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    grant = store.add_grant(TOKENS, client_id="CID", auth_event_id="ev1", now=now)
    assert grant.access_token == "eyJ-access-secret"
    assert grant.access_expires_at == now + timedelta(seconds=1800)
    assert grant.status == "active"
    later = now + timedelta(minutes=25)
    rotated = store.save_rotated_tokens(
        grant.grant_id, {**TOKENS, "refresh_token": "refresh-secret-2"}, now=later
    )
    assert rotated.refresh_token == "refresh-secret-2"
    assert rotated.refreshed_at == later
    assert store.get_grant(grant.grant_id).refresh_token == "refresh-secret-2"


def test_tokens_are_encrypted_at_rest_and_hidden_from_repr(store: Store) -> None:
    grant = store.add_grant(TOKENS, client_id="CID")
    raw = b"".join(p.read_bytes() for p in store.home.glob("store.sqlite3*"))
    assert b"refresh-secret-1" not in raw
    assert b"eyJ-access-secret" not in raw
    assert "secret" not in repr(grant)
    key_file = store.home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600


def test_wrong_key_is_a_clear_error(tmp_path: Path) -> None:
    Store(tmp_path).add_grant(TOKENS, client_id="CID")
    other = Store(tmp_path, secret_key=Fernet.generate_key().decode())
    with pytest.raises(StoreError, match="not the one it was written with"):
        other.list_grants()


def test_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XERO_ELT_SECRET_KEY", Fernet.generate_key().decode())
    Store(tmp_path).add_grant(TOKENS, client_id="CID")
    assert not (tmp_path / "secret.key").exists()


def test_token_response_without_refresh_token_is_rejected(store: Store) -> None:
    with pytest.raises(StoreError, match="refresh_token"):
        store.add_grant({"access_token": "x", "expires_in": 1800}, client_id="CID")


def test_connection_lifecycle(store: Store) -> None:
    expires = datetime.now(UTC) + timedelta(days=7)
    conn = store.create_connection("Acme", "a@acme.test", invite_token_hash="h1",
                                   invite_expires_at=expires)
    assert conn.status == ConnectionStatus.INVITED
    assert store.find_connection_by_invite_hash("h1") == conn
    grant = store.add_grant(TOKENS, client_id="CID")
    updated = store.update_connection(
        conn.connection_id, status="connected", tenant_id="t1", organisation_name="Acme Ltd",
        grant_id=grant.grant_id, connected_at=datetime.now(UTC),
    )
    assert updated.status == "connected"
    assert store.connections_for_tenant("t1") == [updated]
    assert store.list_connections(["connected"]) == [updated]
    assert store.list_connections(["invited"]) == []
    with pytest.raises(ValueError, match="bogus"):
        store.update_connection(conn.connection_id, status="bogus")
    with pytest.raises(StoreError, match="unknown connection fields"):
        store.update_connection(conn.connection_id, password="x")


def test_flows_expire(store: Store) -> None:
    store.put_flow("f1", {"verifier": "v"}, expires_at=datetime.now(UTC) + timedelta(minutes=5))
    store.put_flow("f2", {"verifier": "w"}, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert store.get_flow("f1") == {"verifier": "v"}
    assert store.get_flow("f2") is None
    store.delete_flow("f1")
    assert store.get_flow("f1") is None


def test_grant_lock_is_exclusive_across_threads(store: Store) -> None:
    inside = 0
    overlaps = 0

    def work() -> None:
        nonlocal inside, overlaps
        with store.grant_lock("g1"):
            inside += 1
            if inside > 1:
                overlaps += 1
            time.sleep(0.01)
            inside -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == 0


def _hold_lock(home: str, ready: multiprocessing.synchronize.Event, seconds: float) -> None:
    with Store(home).grant_lock("g1"):
        ready.set()
        time.sleep(seconds)


def test_grant_lock_is_exclusive_across_processes(store: Store) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold_lock, args=(str(store.home), ready, 1.0))
    proc.start()
    assert ready.wait(20)
    started = time.monotonic()
    with store.grant_lock("g1"):
        waited = time.monotonic() - started
    proc.join()
    assert waited > 0.5
    # Two stores in one process hold separate file handles, like two processes would.
    with Store(store.home).grant_lock("g1"), pytest.raises(StoreError, match="timed out"):
        with Store(store.home).grant_lock("g1", timeout=0.1):
            pass


def test_failed_write_keeps_previous_tokens(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    grant = store.add_grant(TOKENS, client_id="CID")

    def boom(_value: str) -> bytes:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store, "_encrypt", boom)
    with pytest.raises(OSError, match="No space"):
        store.save_rotated_tokens(grant.grant_id, {**TOKENS, "refresh_token": "new"})
    monkeypatch.undo()
    assert store.get_grant(grant.grant_id).refresh_token == "refresh-secret-1"


def test_store_files_are_private(store: Store) -> None:
    store.add_grant(TOKENS, client_id="CID")
    mode = stat.S_IMODE(os.stat(store.path).st_mode)
    assert mode & 0o077 == 0
