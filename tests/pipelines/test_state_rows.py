"""dlt's state copies in the destination: pruned after every run, read back only when the
destination is ahead of the local state, and still restored on a fresh machine."""

from __future__ import annotations

import shutil

import pytest

from pipelines import state_rows
from sandbox.handle import SandboxHandle
from tests.pipelines.conftest import Warehouse

# Full loads into a warehouse: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _copies(warehouse: Warehouse) -> int:
    return warehouse.query("SELECT count(*) FROM {ds}._dlt_pipeline_state")[0][0]


def _supplier_cursor_rows(warehouse: Warehouse) -> int:
    return warehouse.query("SELECT count(*) FROM {ds}.suppliers")[0][0]


def _change_a_supplier(sandbox: SandboxHandle, warehouse: Warehouse) -> None:
    tenant, contact = warehouse.query(
        "SELECT tenant_id, contact_id FROM {ds}.suppliers ORDER BY contact_id LIMIT 1")[0]
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="update", id=contact,
                   fields={"Name": f"Renamed {contact[:8]}"})


def test_runs_keep_only_the_newest_state_copies(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle,
) -> None:
    for _ in range(4):
        duckdb_warehouse.run_ok()
        sandbox.advance(120)  # every run moves the cursors (beside the data, not in the state)
    assert 1 <= _copies(duckdb_warehouse) <= state_rows.KEEP


def test_the_local_state_is_current_after_a_run_and_behind_when_the_destination_moved_on(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle,
) -> None:
    duckdb_warehouse.run_ok()
    pipeline = duckdb_warehouse.pipeline()
    assert state_rows.local_state_is_current(pipeline)

    # another machine's run: its own working directory, the same destination
    home = duckdb_warehouse.store.home / "pipelines"
    kept = duckdb_warehouse.store.home / "pipelines-before"
    shutil.copytree(home, kept)
    sandbox.advance(120)
    _change_a_supplier(sandbox, duckdb_warehouse)
    duckdb_warehouse.run_ok()
    shutil.rmtree(home)
    shutil.move(kept, home)  # this machine's older working folder is back
    # The other machine's run moved the cursors, which live beside the data, not in dlt's
    # state: the state it restores from is no newer than this machine's.
    assert state_rows.local_state_is_current(duckdb_warehouse.pipeline())

    # so the next run reads nothing twice
    report = duckdb_warehouse.run_ok()
    suppliers = [o for o in report.summary["organisations"] if o.get("rows_loaded")]
    assert suppliers == [], report.summary


def test_a_fresh_machine_restores_the_state_from_the_destination(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle,
) -> None:
    duckdb_warehouse.run_ok()
    loaded = _supplier_cursor_rows(duckdb_warehouse)
    assert loaded > 0
    shutil.rmtree(duckdb_warehouse.store.home / "pipelines")
    pipeline = duckdb_warehouse.pipeline()
    assert not state_rows.local_state_is_current(pipeline)
    sandbox.advance(120)
    report = duckdb_warehouse.run_ok()
    assert sum(o.get("rows_loaded") or 0 for o in report.summary["organisations"]) == 0, (
        "the restored cursors read nothing again")


@pytest.mark.parametrize("keep", [1])
def test_prune_never_deletes_the_newest_copy(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch,
    keep: int,
) -> None:
    monkeypatch.setattr(state_rows, "KEEP", keep)
    duckdb_warehouse.run_ok()
    sandbox.advance(120)
    duckdb_warehouse.run_ok()
    assert _copies(duckdb_warehouse) == 1
    newest = duckdb_warehouse.query(
        "SELECT max(version) FROM {ds}._dlt_pipeline_state")[0][0]
    assert newest == duckdb_warehouse.pipeline().state["_state_version"]
