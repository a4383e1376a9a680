"""`xero-elt store copy --to URL` (issue 24, point 4): the configured store copied into another,
SQLite to PostgreSQL and back, tokens re-encrypted with the target's key, twice a no-op, and the
refusals (a key missing or wrong, the store itself, a conflicting row), each writing nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from store import Store, lifecycle, open_store, utcnow
from store.copy import (
    COPIED,
    NOT_COPIED,
    TARGET_KEY_ENV,
    CopyConflict,
    CopyRefused,
    copy_store,
    open_target,
    target_key,
)
from store.token_provider import access_token_for
from store.xero_events import XeroEvent
from tests.connector.conftest import connect_tenants, sandbox_settings
from tests.sandbox_handle import REPO_ROOT, SandboxHandle, XeroGrant

DIRECTIONS = [
    pytest.param(("sqlite", "postgres"), marks=pytest.mark.postgres, id="sqlite-to-postgres"),
    pytest.param(("postgres", "sqlite"), marks=pytest.mark.postgres, id="postgres-to-sqlite"),
]


def fill(store: Store) -> str:
    """A row in every copied table (a flow too, which stays behind); returns the API key."""
    now = utcnow()
    grant = store.add_grant({"access_token": "at-secret-1", "refresh_token": "rt-secret-1",
                             "expires_in": 1800, "scope": "offline_access"}, client_id="app")
    conn = store.create_connection("Kauri Bay", "a@example.test", invite_token_hash="hash-1",
                                   invite_expires_at=now + timedelta(days=7), language="en")
    lifecycle.apply(store, conn.connection_id, lifecycle.Event.OPEN_LINK)
    lifecycle.apply(store, conn.connection_id, lifecycle.Event.CONFIRM, tenant_id="tenant-1",
                    organisation_name="Kauri Bay Trading Ltd", grant_id=grant.grant_id,
                    connected_at=now)
    store.create_connection("Harbour Supplies", "b@example.test", invite_token_hash="hash-2",
                            invite_expires_at=now + timedelta(days=7))
    _, key = store.create_api_key("platform", "write")
    store.count_api_calls("tenant-1", now.strftime("%Y-%m-%d"), 7)
    store.receive_xero_events([XeroEvent("tenant-1", "contact-1", now, "UPDATE", "CONTACT", now,
                                         "pending")], handshake=False)
    store.open_job("sync", conn.connection_id, requested_by="test")
    store.set_schedule(conn.connection_id, {"suppliers": 1})
    store.record_entity_reads("xero_duckdb_xero", {("tenant-1", "suppliers"): now})
    store.put_flow("visit-1", {"step": "consent"}, expires_at=now + timedelta(hours=1))
    return key


def rows(store: Store, table: str) -> list[dict[str, Any]]:
    """A table's rows as plain values, in key order (BYTEA read as bytes)."""
    out = [{k: bytes(v) if isinstance(v, memoryview) else v for k, v in dict(r).items()}
           for r in store._read(f"SELECT * FROM {table}")]  # noqa: S608
    return sorted(out, key=lambda r: [str(r[c]) for c in sorted(r)])


def everything(store: Store) -> dict[str, list[dict[str, Any]]]:
    return {t.name: rows(store, t.name) for t in COPIED}


@pytest.fixture
def keys(monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    """The source's key (``XERO_ELT_SECRET_KEY``) and the target's, different."""
    source_key, target = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("XERO_ELT_SECRET_KEY", source_key)
    monkeypatch.delenv(TARGET_KEY_ENV, raising=False)
    return source_key, target


def url_of(backend: str, request: pytest.FixtureRequest, tmp_path: Path, name: str) -> str:
    if backend == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / name / 'store.sqlite3'}"


@pytest.fixture
def urls(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(the source's URL, the target's), backends from the test's ``direction``."""
    source_backend, target_backend = request.node.callspec.params["direction"]
    return (url_of(source_backend, request, tmp_path, "src"),
            url_of(target_backend, request, tmp_path, "dst"))


@pytest.fixture
def pair(urls: tuple[str, str], tmp_path: Path, keys: tuple[str, str]) -> tuple[Store, str]:
    """(the source store, opened as usual, the target's URL)."""
    return open_store(tmp_path / "home", url=urls[0]), urls[1]


def test_every_table_of_the_schema_is_copied_or_left_for_a_reason(tmp_path: Path) -> None:
    # A migration that adds a table must decide here whether a move carries it.
    store = open_store(tmp_path, url=f"sqlite:///{tmp_path / 'store.sqlite3'}")
    tables = {r["name"] for r in store._read(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")}
    assert tables == {t.name for t in COPIED} | set(NOT_COPIED)
    assert not {t.name for t in COPIED} & set(NOT_COPIED)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_copy_carries_every_record_and_a_second_changes_nothing(
        direction: tuple[str, str], pair: tuple[Store, str], keys: tuple[str, str]) -> None:
    source, to = pair
    api_key = fill(source)
    target = open_target(to, key=keys[1])

    counts = {c.table: (c.copied, c.already_there) for c in copy_store(source, target)}

    assert counts == {"grants": (1, 0), "connections": (2, 0), "api_keys": (1, 0),
                      "api_usage": (1, 0), "webhook_events": (1, 0), "xero_events": (1, 0),
                      "xero_webhook_health": (1, 0), "jobs": (1, 0),
                      "schedule_overrides": (1, 0), "entity_reads": (1, 0)}
    copied = everything(target)
    for table, source_rows in everything(source).items():
        if table != "grants":
            assert copied[table] == source_rows, table
    # the tokens: the same when decrypted, encrypted with the target's key and not the source's
    (grant,) = source.list_grants()
    moved = target.get_grant(grant.grant_id)
    assert (moved.access_token, moved.refresh_token) == ("at-secret-1", "rt-secret-1")
    assert moved == grant
    blob = copied["grants"][0]["refresh_token_enc"]
    assert Fernet(keys[1].encode()).decrypt(blob) == b"rt-secret-1"
    assert b"rt-secret-1" not in blob
    # what a platform relies on keeps working on the target
    assert target.find_connection_by_invite_hash("hash-2") is not None
    assert [c.organisation_name for c in target.list_connections(["connected"])] == \
        ["Kauri Bay Trading Ltd"]
    assert rows(target, "flows") == []  # a running server's state stays behind

    again = {c.table: (c.copied, c.already_there) for c in copy_store(source, target)}

    assert again == {table: (0, copied + there) for table, (copied, there) in counts.items()}
    assert everything(target) == copied  # byte for byte: nothing was rewritten
    assert target.check_api_key(api_key) is not None  # (marks it used: the target lives on)


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_the_target_refreshes_the_copied_grant_at_xero(
        direction: tuple[str, str], pair: tuple[Store, str], keys: tuple[str, str],
        sandbox: SandboxHandle, xero_grant: XeroGrant, monkeypatch: pytest.MonkeyPatch) -> None:
    source, to = pair
    grant_id = connect_tenants(source, xero_grant, sandbox)
    target = open_target(to, key=keys[1])
    copy_store(source, target)
    target.close()
    # A run on the moved platform: the target opened as usual, its key now XERO_ELT_SECRET_KEY.
    monkeypatch.setenv("XERO_ELT_SECRET_KEY", keys[1])
    moved = open_store(source.home, url=to)
    before = moved.get_grant(grant_id)
    sandbox.advance(31 * 60)  # the access token has expired, and Xero's grace with it

    token = access_token_for(moved, sandbox_settings(sandbox, xero_grant), grant_id,
                             rejected=before.access_token)

    answer = httpx.get(sandbox.connections_url, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert sorted(c["tenantId"] for c in answer.json()) == sorted(xero_grant.tenant_ids)
    assert moved.get_grant(grant_id).refresh_token != before.refresh_token  # rotated, saved
    assert {c.tenant_id for c in moved.list_connections(["connected"])} == \
        set(xero_grant.tenant_ids)


def test_the_target_key_must_be_set_and_a_fernet_key() -> None:
    with pytest.raises(CopyRefused, match=f"{TARGET_KEY_ENV} is not set"):
        target_key({})
    with pytest.raises(CopyRefused, match="not a Fernet key") as refused:
        target_key({TARGET_KEY_ENV: "not-a-key-but-a-secret"})
    assert "not-a-key-but-a-secret" not in str(refused.value)
    good = Fernet.generate_key().decode()
    assert target_key({TARGET_KEY_ENV: good + "\n"}) == good


def test_a_sqlite_store_is_not_copied_into_itself(tmp_path: Path, keys: tuple[str, str]) -> None:
    source = open_store(tmp_path / "home", url=f"sqlite:///{tmp_path / 'a' / 'store.sqlite3'}")
    fill(source)
    (tmp_path / "b").symlink_to(tmp_path / "a")
    before = everything(source)
    # the same file, spelt another way
    target = open_target(str(tmp_path / "b" / ".." / "b" / "store.sqlite3"), key=keys[0])

    with pytest.raises(CopyRefused, match="is the configured store itself"):
        copy_store(source, target)
    assert everything(source) == before


@pytest.mark.postgres
def test_a_postgres_store_is_not_copied_into_itself(postgres_url: str,
                                                    keys: tuple[str, str]) -> None:
    source = open_store(Path("unused-home"), url=postgres_url)
    fill(source)
    before = everything(source)
    target = open_target(postgres_url + "?application_name=another", key=keys[1])

    with pytest.raises(CopyRefused, match="is the configured store itself"):
        copy_store(source, target)
    assert everything(source) == before


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_conflicting_row_stops_the_copy_before_anything_is_written(
        direction: tuple[str, str], pair: tuple[Store, str], keys: tuple[str, str]) -> None:
    source, to = pair
    fill(source)
    target = open_target(to, key=keys[1])
    copy_store(source, target)
    # The target lived on its own (a run refreshed the grant there); the source gained an invite.
    (grant,) = target.list_grants()
    target.save_rotated_tokens(grant.grant_id, {"access_token": "at-2", "refresh_token": "rt-2",
                                                "expires_in": 1800})
    source.create_connection("Late Invite", "c@example.test", invite_token_hash="hash-3",
                             invite_expires_at=utcnow() + timedelta(days=7))
    before = everything(target)

    with pytest.raises(CopyConflict) as conflict:
        copy_store(source, target)

    message = str(conflict.value)
    assert f"grants {grant.grant_id} (differs in access_expires_at, access_token_enc, " \
        "refresh_token_enc, refreshed_at)" in message
    assert "nothing was copied" in message
    assert not {"rt-2", "rt-secret-1"} & set(message.split())
    assert everything(target) == before  # the late invite did not land either


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_source_key_that_cannot_decrypt_refuses_and_writes_nothing(
        direction: tuple[str, str], urls: tuple[str, str], pair: tuple[Store, str],
        tmp_path: Path, keys: tuple[str, str]) -> None:
    source, to = pair
    fill(source)
    wrong = open_store(tmp_path / "home", url=urls[0],
                       secret_key=Fernet.generate_key().decode())
    target = open_target(to, key=keys[1])

    with pytest.raises(CopyRefused, match=r"source's key .* cannot decrypt grants grt_"):
        copy_store(wrong, target)
    assert all(not table_rows for table_rows in everything(target).values())


@pytest.mark.parametrize("direction", DIRECTIONS)
def test_a_target_key_that_cannot_read_the_targets_grants_refuses(
        direction: tuple[str, str], pair: tuple[Store, str], keys: tuple[str, str]) -> None:
    source, to = pair
    fill(source)
    copy_store(source, open_target(to, key=keys[1]))
    other = open_target(to, key=Fernet.generate_key().decode())

    with pytest.raises(CopyRefused, match=f"{TARGET_KEY_ENV} cannot decrypt grants"):
        copy_store(source, other)


def test_a_target_url_of_another_kind_is_refused(keys: tuple[str, str]) -> None:
    with pytest.raises(CopyRefused, match=r"--to: .* must start with sqlite:/// or postgresql://"):
        open_target("mysql://db/xero", key=keys[1])


# -- the command line -------------------------------------------------------------------------

def schema_exists(url: str) -> bool:
    import psycopg2

    with psycopg2.connect(url) as db, db.cursor() as cursor:
        cursor.execute("SELECT 1 FROM information_schema.schemata WHERE schema_name = 'xero_elt'")
        found = cursor.fetchone() is not None
    db.close()
    return found


def xero_elt(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pipelines", *args], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.postgres
@pytest.mark.slow  # three CLI processes
def test_the_command_copies_twice_and_refuses_clearly(postgres_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    source_key, target = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("XERO_ELT_", "SOURCES__"))}
    env.update({"PYTHONPATH": str(REPO_ROOT), "XERO_ELT_HOME": str(home),
                "RUNTIME__DLTHUB_TELEMETRY": "false", "XERO_ELT_SECRET_KEY": source_key})
    fill(open_store(home, secret_key=source_key))  # the default store: XERO_ELT_HOME's SQLite
    secrets = [source_key, target, "at-secret-1", "rt-secret-1"]

    missing = xero_elt("store", "copy", "--to", postgres_url, env=env)
    assert missing.returncode == 2, missing.stderr
    assert f"{TARGET_KEY_ENV} is not set" in missing.stderr
    assert not schema_exists(postgres_url)  # refused before the target was touched

    env[TARGET_KEY_ENV] = target
    first = xero_elt("store", "copy", "--to", postgres_url, env=env)
    second = xero_elt("store", "copy", "--to", postgres_url, env=env)
    itself = xero_elt("store", "copy", "--to", str(home / "store.sqlite3"), env=env)

    assert first.returncode == 0, first.stderr
    assert "grants:              copied 1, already there 0" in first.stdout
    assert "copied 11, already there 0 (from " in first.stdout
    assert second.returncode == 0, second.stderr
    assert "copied 0, already there 11 (from " in second.stdout
    assert itself.returncode == 2
    assert "is the configured store itself" in itself.stderr
    for result in (missing, first, second, itself):
        for secret in secrets:
            assert secret not in result.stdout + result.stderr
    moved = open_store(home, url=postgres_url, secret_key=target)
    assert moved.get_grant(moved.list_grants()[0].grant_id).refresh_token == "rt-secret-1"

