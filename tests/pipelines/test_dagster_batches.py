"""Dagster runs over batches of organisations: the schedule and the sensor cut the partitions
into ranges of `batch_size`, one run loads its organisations side by side in one process, and
each organisation's outcome lands on its own partition with its name beside it."""

from __future__ import annotations

import contextlib
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from auth_server.first_sync import FirstSync
from connector.settings import ENTITIES as TABLES
from pipelines.run import RunOptions, execute
from store import Store, open_store
from tests.conftest import SandboxFactory
from tests.connector.conftest import connect_tenants
from tests.pipelines.dagster_support import apply_partition_requests, import_dagster_defs
from tests.sandbox_handle import DEFAULT_REDIRECT_URI, SandboxHandle, make_grant

defs_module = import_dagster_defs()
import dagster as dg  # noqa: E402  (after the check that says why it is missing)

pytestmark = pytest.mark.slow


def _sensor(instance: dg.DagsterInstance) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, definitions=defs_module.defs)
    result = defs_module.xero_organisations_sensor(context)
    apply_partition_requests(instance, result)
    return result


def _tick(instance: dg.DagsterInstance) -> Any:
    schedule = defs_module.defs.resolve_schedule_def("xero_hourly")
    return schedule(dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 1, 1, tzinfo=UTC)))


def _launch(instance: dg.DagsterInstance, request: dg.RunRequest) -> Any:
    """What the daemon launches for a run request, in this process."""
    job = defs_module.defs.resolve_job_def("xero_sync_job")
    return job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                  tags=dict(request.tags), raise_on_error=False)


def _materialised(result: Any) -> dict[tuple[str, str], dict[str, Any]]:
    """(table, partition) → the metadata of its materialisation in this run."""
    found = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        found[(mat.asset_key.path[-1], mat.partition)] = {
            k: v.value for k, v in mat.metadata.items()}
    return found


def _covered(request: dg.RunRequest, instance: dg.DagsterInstance) -> list[str]:
    if request.partition_key:  # Dagster tags the run with it when it creates the run
        return [request.partition_key]
    return defs_module.run_partitions(
        request.tags, instance.get_dynamic_partitions("xero_organisations"))


def test_batches_are_blocks_of_neighbours_and_names_fit_a_tag() -> None:
    order = ["a", "b", "c", "d", "e", "f", "g"]
    assert defs_module.batches(order, set(order), 3) == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    # A busy organisation in the middle is never inside a range: the range would cover it.
    assert defs_module.batches(order, {"a", "b", "d", "e", "f", "g"}, 2) == [
        ["a", "b"], ["d", "e"], ["f", "g"]]
    names = [f"Organisation number {i} Ltd" for i in range(50)]
    tag = defs_module.names_tag(names)
    assert len(tag) <= defs_module.NAMES_TAG_CHARS + 20
    assert tag.startswith("Organisation number 0 Ltd, Organisation number 1 Ltd")
    assert tag.endswith("more)")
    assert defs_module.names_tag(["Acme", "Beta"]) == "Acme, Beta"


def test_a_schedule_pass_over_five_organisations_in_batches_of_two_is_three_runs(
    sandbox_factory: SandboxFactory, tmp_home: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, instance: dg.DagsterInstance,
) -> None:
    sandbox = sandbox_factory(tenants=5, suppliers=20)
    sandbox.reset()
    app = sandbox.create_app([DEFAULT_REDIRECT_URI], name="xero-elt batches")
    store = open_store(tmp_home)
    connect_tenants(store, make_grant(sandbox, app), sandbox)
    env = {**sandbox.dlt_env(app),
           "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "batches.duckdb")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(defs_module.SETTINGS, "batch_size", 2)
    names = {t["tenantId"]: t["name"] for t in sandbox.tenants()}

    first = _sensor(instance)
    assert [len(_covered(r, instance)) for r in first.run_requests] == [2, 2, 1]
    order = instance.get_dynamic_partitions("xero_organisations")
    assert sorted(order) == sorted(names)

    requests = _tick(instance)
    assert [_covered(r, instance) for r in requests] == [order[0:2], order[2:4], order[4:5]]
    for request in requests:
        keys = _covered(request, instance)
        tag = request.tags[defs_module.ORGANISATIONS_TAG]
        assert tag == ", ".join(names[k] for k in keys)
        result = _launch(instance, request)
        assert result.success
        materialised = _materialised(result)
        assert set(materialised) == {(t, k) for t in TABLES for k in keys}
        for (_, key), metadata in materialised.items():
            assert metadata["organisation"] == names[key]
            assert metadata["tenant_id"] == key
            assert metadata["outcome"] == "ok"
            assert metadata["organisation_api_calls"] > 0
        assert materialised[("suppliers", keys[0])]["entity_rows_loaded"] > 0
        if len(keys) > 1:  # a range: Dagster's own tags say which partitions
            assert request.tags["dagster/asset_partition_range_start"] == keys[0]
            assert request.tags["dagster/asset_partition_range_end"] == keys[-1]
    assert all(instance.get_materialized_partitions(dg.AssetKey(["xero", t])) == set(order)
               for t in TABLES)


def test_one_organisation_failing_fails_only_its_partition(
    connected_store: Store, sandbox: SandboxHandle, instance: dg.DagsterInstance,
) -> None:
    good, bad = sandbox.tenant_ids()
    names = {t["tenantId"]: t["name"] for t in sandbox.tenants()}
    # Xero refuses the second organisation's data (its admin's access is gone).
    sandbox.fault(kind="status", status=403, path="/api.xro/2.0/", tenant_id=bad, count=-1)

    (request,) = _sensor(instance).run_requests
    assert sorted(_covered(request, instance)) == sorted([good, bad])
    result = _launch(instance, request)

    assert not result.success
    assert set(_materialised(result)) == {(t, good) for t in TABLES}
    observed = [e.asset_observation_data.asset_observation
                for e in result.all_events if e.event_type_value == "ASSET_OBSERVATION"]
    failed = {(o.asset_key.path[-1], o.partition): o.metadata for o in observed}
    assert set(failed) == {(t, bad) for t in TABLES}
    for metadata in failed.values():
        assert metadata["organisation"].value == names[bad]
        assert metadata["outcome"].value == "failed"
        assert "403" in metadata["error"].value
    # What the UI shows per partition: the good one materialised, the bad one failed.
    from dagster._core.storage.partition_status_cache import (
        get_and_update_asset_status_cache_value,
    )

    partitions_def = defs_module.organisations
    for table in TABLES:
        key = dg.AssetKey(["xero", table])
        status = get_and_update_asset_status_cache_value(instance, key, partitions_def)
        assert status is not None
        assert set(status.deserialize_failed_partition_subsets(
            partitions_def).get_partition_keys()) == {bad}
        assert instance.get_materialized_partitions(key) == {good}


def test_a_new_connection_gets_one_first_load(
    connected_store: Store, sandbox: SandboxHandle, instance: dg.DagsterInstance,
) -> None:
    """The auth server starts the first sync when the customer confirms: the sensor then adds
    the partition but asks for no second first load, whether that sync finished or still runs."""
    done, running = sandbox.tenant_ids()
    # The first of them: its first sync ran (what the auth server's subprocess runs).
    assert execute(RunOptions(tenants=[done]), connected_store).exit_code == 0
    # The second: its first sync is under way.
    release = threading.Event()
    first_sync = FirstSync(connected_store, on_connected=lambda conn: release.wait(60) and 0)
    (conn,) = connected_store.connections_for_tenant(running)
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(first_sync.join, 30)
        cleanup.callback(release.set)
        first_sync.start(conn)
        result = _sensor(instance)
        assert result.run_requests == []
        assert sorted(instance.get_dynamic_partitions("xero_organisations")) == sorted(
            [done, running])
    assert connected_store.connections_for_tenant(running)[0].sync_state == "synced"
    assert _sensor(instance).run_requests == []
    # Each is still on the schedule.
    covered = [k for r in _tick(instance) for k in _covered(r, instance)]
    assert sorted(covered) == sorted([done, running])
