"""The credential and connection store on both backends: encryption at rest, atomic writes,
single-flight locks, and the flows any auth server replica can pick up."""

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
from freezegun import freeze_time

from connector.usage import DailyUsage
from store import ConnectionStatus, Store, StoreError, open_store

TOKENS = {
    "access_token": "eyJ-access-secret",
    "refresh_token": "refresh-secret-1",
    "expires_in": 1800,
    "scope": "openid offline_access accounting.settings.read",
    "token_type": "Bearer",
}


def raw_store_bytes(store: Store) -> bytes:
    """Everything the store wrote, as the database keeps it."""
    if store.backend == "sqlite":
        return b"".join(p.read_bytes() for p in store.path.parent.glob("store.sqlite3*"))
    rows = store._read("SELECT * FROM grants") + store._read("SELECT * FROM flows")
    return b"".join(bytes(v) if isinstance(v, memoryview) else str(v).encode()
                    for row in rows for v in row.values())


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
    store.set_grant_status(grant.grant_id, "invalid", "invalid_grant")
    assert [g.status for g in store.list_grants()] == ["invalid"]
    with pytest.raises(StoreError, match="no grant"):
        store.save_rotated_tokens("grt_missing", TOKENS)


def test_tokens_are_encrypted_at_rest_and_hidden_from_repr(store: Store) -> None:
    grant = store.add_grant(TOKENS, client_id="CID")
    store.put_flow("f1", {"verifier": "pkce-verifier-secret"},
                   expires_at=datetime.now(UTC) + timedelta(minutes=5))
    raw = raw_store_bytes(store)
    assert b"grt_" in raw  # the dump did read the rows
    for secret in (b"refresh-secret-1", b"eyJ-access-secret", b"pkce-verifier-secret"):
        assert secret not in raw
    assert "secret" not in repr(grant)


def test_sqlite_key_file_is_private_and_the_env_key_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    open_store(tmp_path / "a").add_grant(TOKENS, client_id="CID")
    assert stat.S_IMODE((tmp_path / "a" / "secret.key").stat().st_mode) == 0o600
    monkeypatch.setenv("XERO_ELT_SECRET_KEY", Fernet.generate_key().decode())
    open_store(tmp_path / "b").add_grant(TOKENS, client_id="CID")
    assert not (tmp_path / "b" / "secret.key").exists()


def test_wrong_key_is_a_clear_error(store_url: str, tmp_path: Path) -> None:
    open_store(tmp_path / "home", url=store_url).add_grant(TOKENS, client_id="CID")
    other = open_store(tmp_path / "home", url=store_url,
                       secret_key=Fernet.generate_key().decode())
    with pytest.raises(StoreError, match="not the one it was written with"):
        other.list_grants()


def test_token_response_without_refresh_token_is_rejected(store: Store) -> None:
    with pytest.raises(StoreError, match="refresh_token"):
        store.add_grant({"access_token": "x", "expires_in": 1800}, client_id="CID")


def test_connection_lifecycle(store: Store) -> None:
    expires = datetime.now(UTC) + timedelta(days=7)
    conn = store.create_connection("Acme", "a@acme.test", invite_token_hash="h1",
                                   invite_expires_at=expires)
    assert conn.status == ConnectionStatus.INVITED
    assert store.find_connection_by_invite_hash("h1") == conn
    assert store.find_connection_by_invite_hash("h2") is None
    grant = store.add_grant(TOKENS, client_id="CID")
    updated = store.update_connection(
        conn.connection_id, status="connected", tenant_id="t1", organisation_name="Acme Ltd",
        grant_id=grant.grant_id, connected_at=datetime.now(UTC), last_sync_rows=7,
    )
    assert updated.status == "connected"
    assert updated.last_sync_rows == 7
    assert store.connections_for_tenant("t1") == [updated]
    assert store.list_connections(["connected"]) == [updated]
    assert store.list_connections(["invited"]) == []
    with pytest.raises(ValueError, match="bogus"):
        store.update_connection(conn.connection_id, status="bogus")
    with pytest.raises(StoreError, match="unknown connection fields"):
        store.update_connection(conn.connection_id, password="x")
    with pytest.raises(StoreError, match="no connection"):
        store.update_connection("con_missing", status="expired")
    with pytest.raises(StoreError):  # invite hashes are unique
        store.create_connection("Other", "o@acme.test", invite_token_hash="h1",
                                invite_expires_at=expires)


def test_writes_together_land_together(store: Store) -> None:
    expires = datetime.now(UTC) + timedelta(days=7)
    conn = store.create_connection("Acme", "a@acme.test", invite_token_hash="h1",
                                   invite_expires_at=expires)
    with store.together():
        opened = store.update_connection(conn.connection_id, status="link_opened")
        store.put_flow("visit", {"connection_id": conn.connection_id}, expires_at=expires)
    assert opened.status == "link_opened"
    assert store.get_flow("visit") == {"connection_id": conn.connection_id}

    def three_writes_the_last_failing() -> None:
        with store.together():
            store.update_connection(conn.connection_id, status="expired")
            store.put_flow("other", {}, expires_at=expires)
            store.create_connection("Again", "b@acme.test", invite_token_hash="h1",  # not unique
                                    invite_expires_at=expires)

    with pytest.raises(StoreError):
        three_writes_the_last_failing()
    if store.backend == "sqlite":  # one transaction there: none of it landed
        assert store.get_connection(conn.connection_id).status == "link_opened"
        assert store.get_flow("other") is None


def test_flows_expire_and_only_one_deleter_wins(store: Store) -> None:
    store.put_flow("f1", {"verifier": "v"}, expires_at=datetime.now(UTC) + timedelta(minutes=5))
    store.put_flow("f2", {"verifier": "w"}, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert store.get_flow("f1") == {"verifier": "v"}
    assert store.get_flow("f2") is None
    store.put_flow("f1", {"verifier": "v2"}, expires_at=datetime.now(UTC) + timedelta(minutes=5))
    assert store.get_flow("f1") == {"verifier": "v2"}  # replaced, not duplicated
    assert store.delete_flow("f1") is True
    assert store.delete_flow("f1") is False
    assert store.get_flow("f1") is None


def _race_to_delete(stores: list[Store], flow_id: str) -> list[bool]:
    start = threading.Barrier(len(stores))
    wins: list[bool] = []

    def take(s: Store) -> None:
        start.wait()
        wins.append(s.delete_flow(flow_id))

    threads = [threading.Thread(target=take, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return wins


def test_racing_deletes_of_one_flow_have_one_winner(store_url: str, tmp_path: Path) -> None:
    """Two auth servers taking one OAuth state: the store decides, not a process's lock."""
    store = open_store(tmp_path / "home", url=store_url)
    stores = [open_store(tmp_path / "home", url=store_url) for _ in range(6)]
    for round_ in range(5):
        flow_id = f"state:{round_}"
        store.put_flow(flow_id, {"n": round_}, expires_at=datetime.now(UTC) + timedelta(minutes=5))
        assert sorted(_race_to_delete(stores, flow_id)) == [False] * 5 + [True]


def test_a_value_put_once_is_the_first_writers_for_everyone(store_url: str,
                                                            tmp_path: Path) -> None:
    stores = [open_store(tmp_path / "home", url=store_url) for _ in range(6)]
    start = threading.Barrier(len(stores))
    kept: list[dict] = []
    expires = datetime.now(UTC) + timedelta(days=1)

    def put(s: Store, n: int) -> None:
        start.wait()
        kept.append(s.put_flow_once("server:key", {"n": n}, expires_at=expires))

    threads = [threading.Thread(target=put, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert len(kept) == 6
    assert len({k["n"] for k in kept}) == 1
    assert stores[0].get_flow("server:key") == kept[0]


def test_connections_come_in_invite_order_whole_seconds_included(store: Store) -> None:
    """A time on the second and one just after it sort in time order, as text, under any
    collation: every stored time has one shape (a collation that skips punctuation would put
    ``12:00:00+00:00`` after ``12:00:00.500000+00:00`` if the first lacked its microseconds)."""
    base = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
    expires = base + timedelta(days=7)
    for n, offset in enumerate([timedelta(microseconds=500_000), timedelta(0),
                                timedelta(seconds=-1)]):
        store.create_connection(f"C{n}", "c@x.test", invite_token_hash=f"h{n}",
                                invite_expires_at=expires, now=base + offset)
    assert [c.company for c in store.list_connections()] == ["C2", "C1", "C0"]
    stored = [r["invited_at"] for r in store._read("SELECT invited_at FROM connections")]
    assert {len(text) for text in stored} == {len("2026-05-01T12:00:00.000000+00:00")}


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


def _hold_lock(home: str, url: str, key: str | None,
               ready: multiprocessing.synchronize.Event, seconds: float) -> None:
    with open_store(home, url=url, secret_key=key).grant_lock("g1"):
        ready.set()
        time.sleep(seconds)


def test_grant_lock_is_exclusive_across_processes(store: Store, store_url: str,
                                                  tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    key = os.environ.get("XERO_ELT_SECRET_KEY")
    proc = ctx.Process(target=_hold_lock, args=(str(tmp_path / "other-home"), store_url, key,
                                                ready, 1.0))
    proc.start()
    assert ready.wait(30)
    started = time.monotonic()
    with store.grant_lock("g1"):
        waited = time.monotonic() - started
    proc.join()
    assert waited > 0.5
    # Two stores in one process hold separate handles, like two processes would.
    with open_store(tmp_path / "home", url=store_url).grant_lock("g1"), \
            pytest.raises(StoreError, match="timed out"):
        with open_store(tmp_path / "home", url=store_url).grant_lock("g1", timeout=0.2):
            pass


def test_bad_grant_ids_are_refused_by_the_lock(store: Store) -> None:
    for bad in ("", "../etc", ".hidden"):
        with pytest.raises(StoreError, match="bad grant id"), store.grant_lock(bad):
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


def test_a_transaction_failing_halfway_lands_nothing(store: Store) -> None:
    grant = store.add_grant(TOKENS, client_id="CID")

    def crash_halfway() -> None:
        with store._write() as tx:
            tx.execute("UPDATE grants SET status = ? WHERE grant_id = ?",
                       ("revoked", grant.grant_id))
            raise RuntimeError("crash between two statements")

    with pytest.raises(RuntimeError):
        crash_halfway()
    assert store.get_grant(grant.grant_id).status == "active"


def test_sqlite_store_files_are_private(tmp_path: Path) -> None:
    store = open_store(tmp_path / "home")
    store.add_grant(TOKENS, client_id="CID")
    mode = stat.S_IMODE(os.stat(store.path).st_mode)
    assert mode & 0o077 == 0


def test_open_store_follows_the_configured_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``open_store(home)`` opens the store the URL names, with ``home`` as its local folder."""
    monkeypatch.setenv("XERO_ELT_STORE_URL", f"sqlite:///{tmp_path / 'elsewhere.sqlite3'}")
    store = open_store(tmp_path / "home")
    assert isinstance(store, Store)
    assert store.path == tmp_path / "elsewhere.sqlite3"
    assert store.home == tmp_path / "home"


def test_daily_api_calls_are_counted_in_the_store_for_every_machine(
    store: Store, store_url: str, tmp_path: Path
) -> None:
    here, there = DailyUsage(store), DailyUsage(open_store(tmp_path / "other-home", url=store_url))
    with freeze_time("2026-03-01 23:59:00"):
        assert here.record("t-1", 3) == 3
        assert there.record("t-1") == 4  # another machine, the same count
        assert there.used("t-2") == 0
    with freeze_time("2026-03-02 00:00:30"):
        assert here.used("t-1") == 0  # a new UTC day
        assert here.used("t-1", "2026-03-01") == 4
