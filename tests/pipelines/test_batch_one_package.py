"""A per-organisation batch (what a Dagster run of several partitions executes) is one run
through one pipeline: one load package of data and one load turn for the whole batch, because
dlt's state holds nothing per organisation. Each organisation's cursors are memory rows beside
its data; cursors an older version kept in per-organisation pipelines' states move there on the
batch's first run without a reload; a purge takes them with the organisation's rows.
"""

from __future__ import annotations

import json
from typing import Any

from dlt.common.versioned_state import compress_state, decompress_state

from connector.memory import CURSORS_KEY, MEMORY_TABLE
from pipelines import exitcodes
from pipelines.destinations import resolve_target
from pipelines.layout import batch_pipeline_name, organisation_pipeline_name
from pipelines.purge import purge
from pipelines.runlocks import load_lock
from tests.pipelines.conftest import Warehouse
from tests.sandbox_handle import SandboxHandle

BATCH = {"layout": "per_organisation", "schedule": False}


def _loads(wh: Warehouse) -> set[str]:
    return {r[0] for r in wh.query("SELECT load_id FROM {ds}._dlt_loads WHERE status = 0")}


def _cursors(wh: Warehouse) -> dict[tuple[str, str], dict[str, Any]]:
    rows = wh.query(f"SELECT tenant_id, entity, last_values FROM {{ds}}.{MEMORY_TABLE} "  # noqa: S608
                    f"WHERE record_id = '{CURSORS_KEY}' AND load_id IN "
                    "(SELECT load_id FROM {ds}._dlt_loads WHERE status = 0) ORDER BY load_id")
    return {(t, e): json.loads(text) for t, e, text in rows}


def _newest_state(wh: Warehouse, name: str) -> tuple[dict[str, Any], int]:
    rows = wh.query("SELECT state FROM {ds}._dlt_pipeline_state WHERE pipeline_name = %s "
                    "ORDER BY version DESC LIMIT 1", name)
    return decompress_state(rows[0][0]), len(rows[0][0])


def test_a_batch_of_organisations_is_one_package_in_one_load_turn(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle, turns: list[str]
) -> None:
    wh = duckdb_warehouse
    tenants = sandbox.tenant_ids()
    assert len(tenants) >= 2
    first = wh.run_ok(tenants=tenants, **BATCH)
    assert {o["outcome"] for o in first.summary["organisations"]} == {"ok"}
    turns.clear()
    before = _loads(wh)

    report = wh.run_ok(tenants=tenants, **BATCH)

    target = resolve_target(wh.destination, wh.dataset)
    assert report.summary["pipeline"] == batch_pipeline_name(target)
    assert len({o["run_id"] for o in report.summary["organisations"]}) == 1
    # The data's package and the bookkeeping's, whatever the number of organisations.
    assert len(_loads(wh) - before) == 2
    # The pre-flight, the data's load, the bookkeeping's: three turns for the whole batch.
    assert turns == [load_lock(target)] * 3
    # dlt's state holds nothing per organisation; their cursors are beside their data.
    state, size = _newest_state(wh, batch_pipeline_name(target))
    text = json.dumps(state)
    assert not any(t in text for t in tenants)
    assert size < 4096
    cursors = _cursors(wh)
    assert {t for t, e in cursors if e == "suppliers"} == set(tenants)
    assert all(c.get("cursor") for (t, e), c in cursors.items() if e == "suppliers")


def test_an_organisation_another_run_holds_is_left_out_and_reported_locked(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle
) -> None:
    wh = duckdb_warehouse
    held, free = sandbox.tenant_ids()[:2]
    with wh.store.exclusive([f"organisation:{held}"]):
        report = wh.run(tenants=[held, free], **BATCH)
    assert report.exit_code == exitcodes.PARTIAL
    outcomes = {o["tenant_id"]: o["outcome"] for o in report.summary["organisations"]}
    assert outcomes == {held: "locked", free: "ok"}


def _as_older_version_left_it(wh: Warehouse, tenants: list[str]) -> None:
    """Each organisation's cursors in its own pipeline's state in the destination (what the
    per-organisation layout kept before), none beside the data."""
    target = resolve_target(wh.destination, wh.dataset)
    cursors = _cursors(wh)
    for tenant in tenants:
        name = organisation_pipeline_name(target, tenant)
        resources: dict[str, Any] = {}
        for (t, entity), value in cursors.items():
            if t == tenant:
                resources[entity] = {"tenants": {tenant: value}}
        state = {"_state_version": 1, "_state_engine_version": 4, "pipeline_name": name,
                 "sources": {"xero": {"resources": resources}}}
        load_id = sorted(_loads(wh))[-1]
        wh.query("INSERT INTO {ds}._dlt_pipeline_state (version, engine_version, pipeline_name, "
                 "state, created_at, version_hash, _dlt_load_id, _dlt_id) "
                 "VALUES (%s, %s, %s, %s, now(), %s, %s, %s)",
                 1, 4, name, compress_state(state), f"v-{tenant}", load_id, f"id-{tenant}")
    wh.query(f"DELETE FROM {{ds}}.{MEMORY_TABLE} WHERE record_id = '{CURSORS_KEY}'")  # noqa: S608


def test_cursors_in_per_organisation_states_move_beside_the_data_without_a_reload(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle
) -> None:
    wh = duckdb_warehouse
    tenants = sandbox.tenant_ids()
    wh.run_ok(tenants=tenants, **BATCH)
    kept = _cursors(wh)
    _as_older_version_left_it(wh, tenants)
    assert _cursors(wh) == {}

    report = wh.run_ok(tenants=tenants, **BATCH)

    # No reload: nothing changed at Xero, so nothing is loaded.
    assert all(e["rows_loaded"] == 0 for o in report.summary["organisations"]
               for e in o["entities"].values()), report.summary
    moved = _cursors(wh)
    assert set(moved) == set(kept)
    assert all(moved[key].get("cursor", "") >= kept[key].get("cursor", "")
               for key in kept if key[1] == "suppliers")
    assert not any("~moved" in c for c in moved.values())


def test_a_purge_removes_the_organisations_cursors(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle
) -> None:
    wh = duckdb_warehouse
    tenants = sandbox.tenant_ids()
    wh.run_ok(tenants=tenants, **BATCH)
    gone = tenants[0]
    assert any(t == gone for t, _ in _cursors(wh))
    connection = next(c for c in wh.store.list_connections() if c.tenant_id == gone)
    purge(connection.connection_id, destinations=[wh.destination], dataset=wh.dataset,
          actor="test:purger")
    assert not any(t == gone for t, _ in _cursors(wh))
    assert any(t == tenants[1] for t, _ in _cursors(wh))
    assert wh.query(f"SELECT count(*) FROM {{ds}}.{MEMORY_TABLE} "  # noqa: S608
                    "WHERE tenant_id = %s", gone) == [(0,)]
