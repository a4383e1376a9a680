"""`xero-elt purge`: one organisation's rows, dlt state and tokens go; the other's stay."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from connector.store import Store
from pipelines.purge import purge
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


def _state_mentions(w: Warehouse, tenant_id: str) -> bool:
    pipeline = w.pipeline()
    pipeline.sync_destination()
    return tenant_id in json.dumps(pipeline.state.get("sources", {}), default=str)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest) -> Warehouse:
    return request.getfixturevalue(f"{request.param}_warehouse")  # type: ignore[no-any-return]


def test_purge_removes_one_organisation_everywhere_and_leaves_the_other(
        warehouse: Warehouse, connected_store: Store) -> None:
    warehouse.run_ok()
    gone, kept = connected_store.list_connections(statuses=["connected"])[:2]
    assert gone.tenant_id
    assert kept.tenant_id
    kept_before = _rows_of(warehouse, kept.tenant_id)
    assert sum(_rows_of(warehouse, gone.tenant_id).values()) > 0
    assert any(t.startswith("suppliers__") for t in _tenant_tables(warehouse))  # child tables
    assert "sync_runs" in _tenant_tables(warehouse)
    assert _state_mentions(warehouse, gone.tenant_id)

    report = purge(gone.connection_id, destinations=[warehouse.destination],
                   dataset=warehouse.dataset)

    assert sum(report[warehouse.destination].values()) > 0
    assert set(_rows_of(warehouse, gone.tenant_id).values()) == {0}
    assert _rows_of(warehouse, kept.tenant_id) == kept_before
    assert not _state_mentions(warehouse, gone.tenant_id)
    assert _state_mentions(warehouse, kept.tenant_id)
    record = connected_store.get_connection(gone.connection_id)
    assert (record.status, record.grant_id, record.tenant_id) == ("purged", None, gone.tenant_id)
    assert next(e.type for e in connected_store.list_webhook_events(
        connection_id=gone.connection_id)) == "connection.purged"
    # The grant is shared with the organisation that stays: neither revoked nor deleted.
    assert connected_store.get_grant(kept.grant_id).status == "active"  # type: ignore[arg-type]

    # A later run loads the other organisation and leaves the purged one out; only the
    # `connections` table (written from the store) shows its record, status purged.
    warehouse.run_ok()
    after = _rows_of(warehouse, gone.tenant_id)
    assert after.pop("connections") == 1
    assert set(after.values()) == {0}
    assert warehouse.query("SELECT status FROM {ds}.connections WHERE tenant_id = %s",
                           gone.tenant_id) == [("purged",)]


def test_purge_asks_first_and_refuses_without_a_terminal(connected_store: Store) -> None:
    conn = connected_store.list_connections(statuses=["connected"])[0]
    done = subprocess.run([sys.executable, "-m", "pipelines", "purge", "--connection",
                           conn.connection_id], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert done.returncode == 2
    assert "--yes" in done.stderr
    assert connected_store.get_connection(conn.connection_id).status == "connected"
