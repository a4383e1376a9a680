"""`xero-elt run` end to end against the sandbox: exit codes, the JSON summary, the bookkeeping
tables. (A run SIGKILLed at ten exact points, then rerun and compared row for row with a clean
run's tables, is tests/hardening/test_kill_rerun.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb
import pytest

from pipelines.cli import main
from sandbox.handle import SandboxHandle, XeroGrant
from store import Store, open_store
from tests.connector.conftest import connect_tenants

ROOT = Path(__file__).parents[2]
ENTITY_TABLES = ("suppliers", "accounts", "tax_rates", "tracking_categories", "tracking_options")


def configure(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxHandle, app: dict[str, Any],
              db: Path) -> dict[str, str]:
    """Point dlt config at the sandbox and the DuckDB file; the environment for subprocesses."""
    env = {**sandbox.dlt_env(app), "DESTINATION__DUCKDB__CREDENTIALS": str(db),
           "SOURCES__XERO__BACKOFF_SECONDS": "0.05", "SOURCES__XERO__MAX_BACKOFF_SECONDS": "0.5"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env}


@pytest.fixture
def connected(
    sandbox: SandboxHandle, xero_app: dict[str, Any], xero_grant: XeroGrant, tmp_home: Path,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> Store:
    """Both sandbox organisations connected in the store; runs load into tmp_path/x.duckdb."""
    configure(monkeypatch, sandbox, xero_app, tmp_path / "x.duckdb")
    store = open_store(tmp_home)
    connect_tenants(store, xero_grant, sandbox)
    return store


def run_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = main(["run", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def query(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_full_run_exits_0_with_a_summary_and_bookkeeping_tables(
    connected: Store, sandbox: SandboxHandle, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, doc = run_json(capsys)
    assert code == 0, doc
    assert doc["outcome"] == "ok"
    orgs = {o["tenant_id"]: o for o in doc["organisations"]}
    assert set(orgs) == set(sandbox.tenant_ids())
    counts = {t["tenantId"]: t["counts"] for t in sandbox.tenants()}
    for tenant_id, org in orgs.items():
        entities = org["entities"]
        assert entities["suppliers"]["rows_loaded"] == counts[tenant_id]["suppliers"]
        assert entities["accounts"]["rows_loaded"] == counts[tenant_id]["accounts"]
        assert all(e["outcome"] == "ok" for e in entities.values())
        assert org["api_calls"] == 4  # one page of suppliers + one call per other entity
    db = tmp_path / "x.duckdb"
    runs = query(db, "select tenant_id, entity, outcome, rows_loaded, api_calls "
                     "from xero.sync_runs")
    assert {(r[0], r[1]) for r in runs} == {(t, e) for t in orgs for e in ENTITY_TABLES}
    assert all(r[2] == "ok" for r in runs)
    conns = query(db, "select tenant_id, status, last_synced_at from xero.connections")
    assert {(c[0], c[1]) for c in conns} == {(t, "connected") for t in orgs}
    assert all(c[2] is not None for c in conns)
    columns = {r[0] for r in query(db, "select column_name from information_schema.columns "
                                       "where table_name = 'connections'")}
    assert not {c for c in columns if "token" in c or "hash" in c or "secret" in c}
    for conn in connected.list_connections():
        assert conn.sync_state == "synced"
        assert conn.last_sync_outcome == "ok"


def test_one_organisation_disconnected_at_xero_is_partial_exit_3(
    connected: Store, sandbox: SandboxHandle, xero_app: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    gone, kept = sandbox.tenant_ids()
    sandbox.disconnect(gone, xero_app["client_id"])
    code, doc = run_json(capsys)
    assert code == 3
    assert doc["outcome"] == "partial"
    orgs = {o["tenant_id"]: o for o in doc["organisations"]}
    assert orgs[kept]["outcome"] == "ok"
    assert orgs[gone]["outcome"] == "failed"
    assert orgs[gone]["error"]
    status = {c.tenant_id: c.status for c in connected.list_connections()}
    assert status[gone] == "disconnected"
    assert status[kept] == "connected"


def test_revoked_grant_fails_every_organisation_exit_1(
    connected: Store, sandbox: SandboxHandle, xero_app: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
) -> None:
    grant = connected.list_grants()[0]
    import httpx

    httpx.post(sandbox.revocation_url, data={"token": grant.refresh_token},
               auth=(xero_app["client_id"], xero_app["client_secret"])).raise_for_status()
    code, doc = run_json(capsys)
    assert code == 1
    assert doc["outcome"] == "failed"
    assert {c.status for c in connected.list_connections()} == {"needs_reconnection"}
    captured = capsys.readouterr()
    assert grant.refresh_token not in captured.err + captured.out


def test_named_tenant_and_entities_only(
    connected: Store, sandbox: SandboxHandle, capsys: pytest.CaptureFixture[str],
) -> None:
    first = sandbox.tenant_ids()[0]
    code, doc = run_json(capsys, "--tenant", first, "--entities", "accounts,tax_rates")
    assert code == 0
    assert [o["tenant_id"] for o in doc["organisations"]] == [first]
    assert set(doc["organisations"][0]["entities"]) == {"accounts", "tax_rates"}
