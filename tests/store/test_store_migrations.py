"""Schema migrations: a store written by the release before migrations opens and loses nothing;
both backends apply missing steps once, in order, even when several processes open at once."""

from __future__ import annotations

import shutil
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from store import Store, StoreError, open_store
from store import migrations as store_migrations
from tests.store.fixtures.make_v0_store import FIXTURE_KEY, NOW

FIXTURE = Path(__file__).parent / "fixtures" / "store-v0.sqlite3"
ALL_STEPS = [step.version for step in store_migrations.STEPS]


def applied(store: Store) -> list[int]:
    return [int(r["version"]) for r in
            store._read("SELECT version FROM store_migrations ORDER BY version")]


def test_a_store_file_from_before_migrations_opens_migrates_and_loses_nothing(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(FIXTURE, home / "store.sqlite3")

    store = open_store(home, secret_key=FIXTURE_KEY)

    assert applied(store) == ALL_STEPS == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    grants = {g.client_id + ":" + g.refresh_token: g for g in store.list_grants()}
    assert set(grants) == {"CID-v0:v0-refresh-1", "CID-v0:v0-refresh-2"}
    first, second = grants["CID-v0:v0-refresh-1"], grants["CID-v0:v0-refresh-2"]
    assert first.access_token == "v0-access-1"
    assert (first.xero_user_id, first.auth_event_id) == ("user-1", "event-1")
    assert first.scopes == "openid offline_access accounting.settings.read"
    assert first.access_expires_at == NOW + timedelta(seconds=1800)
    assert first.refreshed_at == first.created_at == NOW
    assert (first.status, second.status, second.status_reason) == ("active", "invalid",
                                                                  "invalid_grant")
    by_company = {c.company: c for c in store.list_connections()}
    assert set(by_company) == {"Acme", "Beta"}
    acme, beta = by_company["Acme"], by_company["Beta"]
    assert (acme.company, acme.status, acme.tenant_id, acme.organisation_name) == (
        "Acme", "connected", "tenant-acme", "Acme Ltd")
    assert (acme.grant_id, acme.xero_connection_id, acme.last_sync_rows) == (
        first.grant_id, "xc-1", 42)
    assert (acme.connected_at, acme.last_synced_at, acme.sync_state) == (NOW, NOW, "synced")
    assert store.find_connection_by_invite_hash("hash-acme") == acme
    assert (beta.company, beta.email, beta.status) == ("Beta", "b@beta.test", "invited")
    assert (acme.language, beta.language) == (None, None)  # step 8: the browser decides
    assert store.get_flow("server:csrf-key") == {"key": "k" * 86}
    indexes = {r["name"] for r in store._read("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "flows_expires" in indexes
    # and it goes on working: a rotation lands, a reopen applies nothing twice
    store.save_rotated_tokens(first.grant_id, {"access_token": "a2", "refresh_token": "r2"})
    again = open_store(home, secret_key=FIXTURE_KEY)
    assert applied(again) == ALL_STEPS
    assert again.get_grant(first.grant_id).refresh_token == "r2"
    assert again.count_api_calls("tenant-acme", "2026-11-30", 3) == 3  # step 3's table


def test_an_older_schema_gains_the_new_steps_with_its_data(
    store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as old_release:  # a release that knew only step 1
        old_release.setattr(store_migrations, "STEPS", store_migrations.STEPS[:1])
        old_release.setattr(store_migrations, "LATEST", 1)
        old = open_store(tmp_path / "home", url=store_url)
        assert applied(old) == [1]
        grant = old.add_grant({"access_token": "a", "refresh_token": "r"}, client_id="CID")
        old.close()

    new = open_store(tmp_path / "home", url=store_url)

    assert applied(new) == ALL_STEPS
    assert new.get_grant(grant.grant_id).refresh_token == "r"


def test_a_store_from_a_newer_release_is_refused(store: Store, store_url: str,
                                                 tmp_path: Path) -> None:
    with store._write() as tx:
        tx.execute("INSERT INTO store_migrations (version, name, applied_at) VALUES (?,?,?)",
                   (99, "from the future", datetime.now(UTC).isoformat()))
    with pytest.raises(StoreError, match="schema version 99, newer than this xero-elt"):
        open_store(tmp_path / "home", url=store_url)


def test_stores_opened_at_once_migrate_once(store_url: str, tmp_path: Path) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def open_one() -> None:
        start.wait()
        try:
            open_store(tmp_path / "home", url=store_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    assert applied(open_store(tmp_path / "home", url=store_url)) == ALL_STEPS


@pytest.mark.postgres
def test_postgres_tables_live_in_schema_xero_elt(postgres_url: str, secret_key: str,
                                                  tmp_path: Path) -> None:
    store = open_store(tmp_path / "home", url=postgres_url)
    rows = store._read("SELECT table_schema, table_name FROM information_schema.tables"
                       " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')")
    assert {(r["table_schema"], r["table_name"]) for r in rows} == {
        ("xero_elt", name)
        for name in ("grants", "connections", "flows", "store_migrations", "api_usage",
                     "api_keys", "webhook_events", "xero_events", "xero_webhook_health", "jobs",
                     "xero_app_budget", "xero_app_pause", "schedule_overrides", "entity_reads")
    }
