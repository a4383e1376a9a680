"""`xero-elt run` end to end against the sandbox: exit codes, the JSON summary, the bookkeeping
tables, and a run killed at any moment (SIGKILL) that the next run completes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connector.store import Store
from pipelines.cli import main
from tests.connector.conftest import connect_tenants
from tests.sandbox_handle import SandboxHandle, XeroGrant, make_grant

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
    store = Store(tmp_home)
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


def _table_contents(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Every data table's rows, minus dlt's load bookkeeping, sorted: comparable across runs."""
    skip = {"_dlt_load_id", "_dlt_id", "_dlt_parent_id", "_dlt_root_id", "deleted_at"}
    out = {}
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema='xero' "
            "and table_type = 'BASE TABLE' and table_name not like '\\_dlt%' escape '\\' "
            "and table_name not in ('sync_runs', 'connections')").fetchall()]
        for table in tables:
            cols = [r[0] for r in con.execute(
                "select column_name from information_schema.columns where table_schema='xero' "
                "and table_name=? order by column_name", [table]).fetchall() if r[0] not in skip]
            select = ", ".join(f'"{c}"' for c in cols)
            sql = f'select {select} from xero."{table}"'  # noqa: S608 - catalog names
            out[table] = sorted(con.execute(sql).fetchall(), key=repr)
    return out


@pytest.mark.slow
def test_sigkill_at_any_moment_then_rerun_equals_a_clean_run(
    sandbox_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    big = sandbox_factory(suppliers=3000, rate_limits=False, latency_ms=20)
    big.reset()
    app = big.create_app(["http://127.0.0.1:8765/callback"], name="kill test")
    clean_db = tmp_path / "clean.duckdb"

    def home_for(name: str) -> Store:
        store = Store(tmp_path / name)
        connect_tenants(store, make_grant(big, app), big)
        return store

    def run(store: Store, db: Path) -> subprocess.Popen[str]:
        env = configure(monkeypatch, big, app, db)
        env["XERO_ELT_HOME"] = str(store.home)
        return subprocess.Popen([sys.executable, "-m", "pipelines", "run"], env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    clean = run(home_for("clean"), clean_db)
    started = time.monotonic()
    assert clean.wait(180) == 0, clean.stderr.read() if clean.stderr else ""
    duration = time.monotonic() - started
    expected = _table_contents(clean_db)
    assert expected["suppliers"]

    kills = 0
    # Spread the kills over a full load: start-up, extract, normalize and load.
    for i, fraction in enumerate((0.25, 0.5, 0.75, 0.95)):
        store, killed_db = home_for(f"killed-{i}"), tmp_path / f"killed-{i}.duckdb"
        proc = run(store, killed_db)
        time.sleep(duration * fraction)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(60)
        # Xero changed nothing meanwhile; the next run must finish or undo what was left.
        rerun = run(store, killed_db)
        assert rerun.wait(180) == 0, rerun.stderr.read() if rerun.stderr else ""
        assert _table_contents(killed_db) == expected, f"after a kill at {fraction:.0%}"
    assert kills >= 3
