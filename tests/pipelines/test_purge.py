"""`xero-elt purge`: one organisation goes from everywhere we put it; the other stays whole.

"Everywhere" is searched as an attacker would: every schema of the destination (the staging
dataset and dlt's state copies, decompressed, included), every file under ``XERO_ELT_HOME``
(the store's SQLite file and its log, dlt's pipelines folder, our logs, run history and outbox),
for the tenant id, the organisation's name and one of its suppliers' names.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from auth_server import mail
from auth_server.first_sync import FirstSync
from auth_server.settings import AuthServerSettings
from pipelines.purge import purge
from pipelines.runlocks import organisation_locks
from sandbox.handle import SandboxHandle
from store import Connection, Store, open_store
from tests.pipelines.conftest import Warehouse

# Subprocesses, daemons or fresh interpreters: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _tenant_tables(w: Warehouse) -> list[str]:
    rows = w.query("SELECT DISTINCT c.table_name FROM information_schema.columns c"
                   " JOIN information_schema.tables t ON t.table_schema = c.table_schema"
                   " AND t.table_name = c.table_name WHERE c.table_schema = %s"
                   " AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'",
                   w.dataset)
    return sorted(str(t) for (t,) in rows)


def _rows_of(w: Warehouse, tenant_id: str) -> dict[str, int]:
    return {t: int(w.query(f"SELECT count(*) FROM {{ds}}.{t} WHERE tenant_id = %s",  # noqa: S608
                           tenant_id)[0][0]) for t in _tenant_tables(w)}


def _found_in_destination(w: Warehouse, needles: list[str]) -> list[str]:
    """Where any needle occurs in any text column of any table of any schema of the
    destination, dlt's state copies decompressed. (On PostgreSQL, the schemas this dataset's
    pipeline writes: the test database is shared with other tests' datasets and Dagster's
    run storage.)"""
    from dlt.common.versioned_state import decompress_state

    found = []
    ours = (w.dataset, f"{w.dataset}_staging")
    with w.pipeline().sql_client() as client:
        columns = client.execute_sql(
            "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t ON t.table_schema = c.table_schema"
            " AND t.table_name = c.table_name WHERE t.table_type = 'BASE TABLE'"
            " AND c.table_schema NOT IN ('information_schema', 'pg_catalog')"
            " AND c.table_schema NOT LIKE 'pg_%%'"
            " AND lower(c.data_type) IN ('varchar', 'text', 'character varying', 'json',"
            " 'jsonb')")
        tables: dict[tuple[str, str], list[str]] = {}
        for schema, table, column in columns:
            if w.destination == "duckdb" or schema in ours:
                tables.setdefault((schema, table), []).append(column)
        for (schema, table), names in sorted(tables.items()):
            qualified = f'"{schema}"."{table}"'
            if table == "_dlt_pipeline_state":
                rows = client.execute_sql(f"SELECT state FROM {qualified}")  # noqa: S608
                for (blob,) in rows or []:
                    text = json.dumps(decompress_state(blob), default=str)
                    found += [f"{schema}.{table}.state: {n}" for n in needles if n in text]
                continue
            where = " OR ".join(f'CAST("{c}" AS TEXT) LIKE %s' for c in names)
            for needle in needles:
                hits = client.execute_sql(f"SELECT count(*) FROM {qualified} WHERE {where}",  # noqa: S608
                                          *[f"%{needle}%"] * len(names))
                if hits[0][0]:
                    found.append(f"{schema}.{table}: {needle}")
    return found


def _found_in_files(home: Path, needles: list[str]) -> list[str]:
    """Files under ``home`` whose bytes hold any needle."""
    found = []
    for path in sorted(p for p in home.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.relative_to(home)}: {n}" for n in needles if n.encode() in data]
    return found


def _schemas(w: Warehouse) -> set[str]:
    return {str(s) for (s,) in w.query("SELECT DISTINCT table_schema FROM "
                                       "information_schema.tables")}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest) -> Warehouse:
    return request.getfixturevalue(f"{request.param}_warehouse")  # type: ignore[no-any-return]


def _leave_traces(store: Store, conn: Connection) -> None:
    """What the auth server leaves about a connection: its invite email in the outbox, and the
    first sync's log (a real first sync: ``python -m pipelines run --tenant T``)."""
    settings = AuthServerSettings()
    msg = mail.build_invite_email(settings, company=conn.company, email=conn.email,
                                  link="http://127.0.0.1:1/invite/abc",
                                  expires_at=datetime.now(UTC) + timedelta(days=7))
    mail.write_to_outbox(msg, store.home / "outbox", name_hint=conn.connection_id)
    first = FirstSync(store)
    first.start(conn)
    first.join(300)


def test_purge_removes_one_organisation_everywhere_and_leaves_the_other(
        warehouse: Warehouse, connected_store: Store, sandbox: SandboxHandle) -> None:
    warehouse.run_ok()
    gone, kept = connected_store.list_connections(statuses=["connected"])[:2]
    assert gone.tenant_id
    assert kept.tenant_id
    assert gone.organisation_name
    if warehouse.destination == "duckdb":
        _leave_traces(connected_store, gone)
    # A failing run leaves the organisation's errors in runs.jsonl and sync_runs too.
    sandbox.fault(kind="status", status=500, path="/api.xro/2.0/TaxRates",
                  tenant_id=gone.tenant_id, count=20)
    warehouse.run()
    sandbox.clear_faults()
    warehouse.run_ok(full_refresh=True)  # the merge's rows sit in the staging dataset now
    supplier = warehouse.query("SELECT name FROM {ds}.suppliers WHERE tenant_id = %s LIMIT 1",
                               gone.tenant_id)[0][0]
    needles = [gone.tenant_id, gone.organisation_name, supplier]
    assert f"{warehouse.dataset}_staging" in _schemas(warehouse)
    assert _found_in_destination(warehouse, needles), "the search must find what is there"
    assert _found_in_files(connected_store.home, needles)
    kept_before = _rows_of(warehouse, kept.tenant_id)
    # Each organisation's memory (supplier ids, hashes, last values) is a table beside its data.
    assert _rows_of(warehouse, gone.tenant_id)["_xero_memory"] > 0

    report = purge(gone.connection_id, destinations=[warehouse.destination],
                   dataset=warehouse.dataset, actor="test:purger")

    assert sum(report[warehouse.destination].values()) > 0
    assert any(t.endswith("(staging)") for t in report[warehouse.destination])
    assert _found_in_destination(warehouse, needles) == []
    assert _found_in_files(connected_store.home, needles) == []
    assert _rows_of(warehouse, kept.tenant_id) == kept_before
    assert _rows_of(warehouse, gone.tenant_id)["_xero_memory"] == 0
    record = connected_store.get_connection(gone.connection_id)
    assert (record.status, record.purged_by, record.grant_id, record.tenant_id,
            record.organisation_name, record.company) == ("purged", "test:purger", None, None,
                                                           None, "")
    assert record.purged_at is not None
    event = next(iter(connected_store.list_webhook_events(connection_id=gone.connection_id)))
    assert event.type == "connection.purged"
    assert json.loads(event.body)["data"]["connection"]["tenant_id"] is None
    # The grant is shared with the organisation that stays: neither revoked nor deleted.
    assert connected_store.get_grant(kept.grant_id).status == "active"  # type: ignore[arg-type]

    # The next run loads the other organisation and brings nothing of the purged one back; the
    # `connections` table keeps the audit record, with nothing of the organisation.
    warehouse.run_ok()
    assert _found_in_destination(warehouse, needles) == []
    assert _found_in_files(connected_store.home, needles) == []
    assert warehouse.query("SELECT status, tenant_id FROM {ds}.connections"
                           " WHERE connection_id = %s", gone.connection_id) == [("purged", None)]
    assert sum(_rows_of(warehouse, kept.tenant_id).values()) >= sum(kept_before.values())


def test_purge_asks_first_and_refuses_without_a_terminal(connected_store: Store) -> None:
    conn = connected_store.list_connections(statuses=["connected"])[0]
    done = subprocess.run([sys.executable, "-m", "pipelines", "purge", "--connection",
                           conn.connection_id], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert done.returncode == 2
    assert "--yes" in done.stderr
    assert connected_store.get_connection(conn.connection_id).status == "connected"


def _run_in_background(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "pipelines", "run", "--json", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def test_a_purge_that_overlaps_a_run_waits_for_it_and_the_run_loads_nothing_of_it(
        warehouse: Warehouse, connected_store: Store, sandbox: SandboxHandle) -> None:
    """The issue's race: a run under way (a slow Xero, --full-refresh), a purge a moment later.
    The purge waits for the run; the run sees `purging` before it loads and drops the
    organisation; nothing of it is left after both."""
    warehouse.run_ok()
    gone = connected_store.list_connections(statuses=["connected"])[0]
    assert gone.tenant_id
    sandbox.clear_requests()
    sandbox.fault(kind="slow", seconds=3, path="/api.xro/2.0/Contacts",
                  tenant_id=gone.tenant_id, count=1)
    run = _run_in_background("--destination", warehouse.destination, "--dataset",
                             warehouse.dataset, "--tenant", gone.tenant_id, "--full-refresh")
    _wait_for(lambda: sandbox.requests(path="/api.xro/2.0/Contacts", tenant_id=gone.tenant_id))

    purge(gone.connection_id, destinations=[warehouse.destination], dataset=warehouse.dataset,
          wait=120)

    out, err = run.communicate(timeout=120)
    summary = json.loads(out)
    assert run.returncode == 0, err
    assert summary["withdrawn"] == 1
    assert summary["organisations"] == []
    assert set(_rows_of(warehouse, gone.tenant_id).values()) <= {0}
    assert _found_in_destination(warehouse, [gone.tenant_id]) == []
    assert connected_store.get_connection(gone.connection_id).status == "purged"


def test_a_run_that_waits_behind_a_purge_leaves_the_organisation_out(
        warehouse: Warehouse, connected_store: Store) -> None:
    """The other order: the purge began first (and waits for the organisation's lock, held
    here as a run of it would); a run of every organisation started meanwhile loads the other
    organisation only, and the purge finishes once the lock is free."""
    gone, kept = connected_store.list_connections(statuses=["connected"])[:2]
    assert gone.tenant_id
    assert kept.tenant_id
    holder = open_store(connected_store.home)
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        with holder.exclusive(organisation_locks([gone.tenant_id or ""])):
            held.set()
            release.wait(60)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    purging = threading.Thread(target=purge, args=(gone.connection_id,), kwargs={
        "destinations": [warehouse.destination], "dataset": warehouse.dataset, "wait": 120})
    purging.start()
    _wait_for(lambda: connected_store.get_connection(gone.connection_id).status == "purging")

    report = warehouse.run_ok(wait=60)

    assert [o["tenant_id"] for o in report.summary["organisations"]] == [kept.tenant_id]
    release.set()
    thread.join(10)
    purging.join(120)
    assert connected_store.get_connection(gone.connection_id).status == "purged"
    assert set(_rows_of(warehouse, gone.tenant_id).values()) <= {0}
    assert sum(_rows_of(warehouse, kept.tenant_id).values()) > 0


def test_a_run_clears_a_pending_package_the_destination_refuses_for_good(
        duckdb_warehouse: Warehouse, caplog: pytest.LogCaptureFixture) -> None:
    """A package left behind that can never load (here: a job file mangled, as a purge or a
    disk killed halfway in an older release could leave one) must not stop every later run of
    every organisation: the next run drops it, says so, and loads as usual."""
    import dlt

    w = duckdb_warehouse
    w.run_ok()
    pipeline = w.pipeline()
    pipeline.extract(dlt.resource([{"tenant_id": "x", "n": 1}], name="left_behind"))
    pipeline.normalize()
    folder = Path(pipeline.working_dir) / "load" / "normalized"
    jobs = [p for p in folder.rglob("*") if p.is_file() and "left_behind" in p.name]
    assert jobs
    for job in jobs:
        job.write_bytes(b"this is not what the loader wrote\x00")

    report = w.run()

    assert report.exit_code == 0, report.summary
    assert "cannot be loaded, dropping it" in caplog.text
    assert not w.pipeline().list_normalized_load_packages()
    assert w.run_ok().exit_code == 0
