"""Dagster without a daemon: an ephemeral instance, the sensor turning the store's organisations
into partitions, each partition materialised, and the tables equal to a `xero-elt run`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from connector.settings import ENTITIES as TABLES
from pipelines.run import RunOptions, execute
from store import Store
from tests.pipelines.dagster_support import (
    apply_partition_requests,
    import_dagster_defs,
    table_rows,
)
from tests.sandbox_handle import SandboxHandle

defs_module = import_dagster_defs()
import dagster as dg  # noqa: E402  (after the check that says why it is missing)

# Subprocesses, daemons or fresh interpreters: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow


@pytest.fixture
def stack() -> Iterator[contextlib.ExitStack]:
    """Context managers closed when the test ends."""
    with contextlib.ExitStack() as held:
        yield held


def _query(path: Path) -> Any:
    def query(sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(path), read_only=True) as db:
            return db.execute(sql).fetchall()
    return query


def _evaluate_sensor(instance: dg.DagsterInstance) -> dg.SensorResult:
    context = dg.build_sensor_context(instance=instance, definitions=defs_module.defs)
    result = defs_module.xero_organisations_sensor(context)
    apply_partition_requests(instance, result)
    return result


def _covered(request: dg.RunRequest, instance: dg.DagsterInstance) -> list[str]:
    """The organisations a run request covers, as its tags say."""
    if request.partition_key:  # Dagster tags the run with it when it creates the run
        return [request.partition_key]
    return defs_module.run_partitions(
        request.tags, instance.get_dynamic_partitions("xero_organisations"))


def test_definitions_name_what_conventions_fix() -> None:
    defs = defs_module.defs
    job = defs.resolve_job_def("xero_sync_job")
    assert isinstance(job.partitions_def, dg.DynamicPartitionsDefinition)
    assert job.partitions_def.name == "xero_organisations"
    assert defs.resolve_sensor_def("xero_organisations_sensor")
    assert defs.resolve_schedule_def("xero_hourly").cron_schedule == "*/5 * * * *"
    keys = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert keys == {f"xero/{t}" for t in TABLES}
    assert defs_module.xero_organisation_tables.op.pool == "xero_organisations"


def test_sensor_partitions_follow_the_store_and_partitions_load_like_xero_elt_run(
    connected_store: Store, sandbox: SandboxHandle, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, stack: contextlib.ExitStack,
) -> None:
    tenants = sandbox.tenant_ids()
    # A temporary instance (not `ephemeral()`): a schedule's context needs an instance reference.
    instance = stack.enter_context(dg.instance_for_test())

    first = _evaluate_sensor(instance)
    assert sorted(instance.get_dynamic_partitions("xero_organisations")) == sorted(tenants)
    # One first load for both (a batch: batch_size 50), its tags naming them.
    assert [sorted(_covered(r, instance)) for r in first.run_requests] == [sorted(tenants)]
    again = _evaluate_sensor(instance)
    assert again.run_requests == [], "a known organisation gets no second first load"

    dagster_file = tmp_path / "dagster.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(dagster_file))
    job = defs_module.defs.resolve_job_def("xero_sync_job")
    for tenant in tenants:
        result = job.execute_in_process(partition_key=tenant, instance=instance)
        assert result.success
        events = result.get_asset_materialization_events()
        materialised = {e.asset_key.to_user_string() for e in events}
        assert materialised == {f"xero/{t}" for t in TABLES}

    cron_file = tmp_path / "cron.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(cron_file))
    report = execute(RunOptions(tenants=tenants), connected_store)
    assert report.exit_code == 0, report.summary

    from_dagster, from_cron = table_rows(_query(dagster_file)), table_rows(_query(cron_file))
    assert all(from_dagster[t] for t in ("suppliers", "accounts", "tax_rates"))
    assert from_dagster == from_cron
    # Each partition ran as `xero-elt run --tenant`: its own sync_runs rows, in the same dataset.
    runs = _query(dagster_file)("SELECT DISTINCT tenant_id, run_id FROM xero.sync_runs")
    assert sorted({t for t, _ in runs}) == sorted(tenants)
    assert len({r for _, r in runs}) == len(tenants)

    # A disconnected organisation loses its partition and is not scheduled any more.
    gone = tenants[0]
    for conn in connected_store.connections_for_tenant(gone):
        connected_store.update_connection(conn.connection_id, status="disconnected")
    after = _evaluate_sensor(instance)
    assert after.run_requests == []
    assert instance.get_dynamic_partitions("xero_organisations") == [tenants[1]]
    schedule = defs_module.defs.resolve_schedule_def("xero_hourly")
    ticks = schedule(dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime(2026, 1, 1, tzinfo=UTC)))
    assert [_covered(r, instance) for r in ticks] == [[tenants[1]]]


def test_a_partition_whose_organisation_is_locked_fails_without_loading(
    connected_store: Store, sandbox: SandboxHandle,
) -> None:
    tenant = sandbox.tenant_ids()[0]
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("xero_organisations", [tenant])
    job = defs_module.defs.resolve_job_def("xero_sync_job")
    with connected_store.exclusive([f"organisation:{tenant}"]):
        result = job.execute_in_process(partition_key=tenant, instance=instance,
                                        raise_on_error=False)
    assert not result.success
    assert result.get_asset_materialization_events() == []
    assert "held by another run" in str(result.get_step_failure_events()[0].event_specific_data)


def test_the_schedule_skips_organisations_whose_run_is_still_queued(
    stack: contextlib.ExitStack,
) -> None:
    """A pass longer than the schedule's interval must not pile up runs without end (a run
    the daemon has queued but not started; NOT_STARTED here: a QUEUED one needs a code origin)."""
    instance = stack.enter_context(dg.instance_for_test())  # a schedule needs its reference
    instance.add_dynamic_partitions("xero_organisations", ["t-queued", "t-idle"])
    instance.add_run(dg.DagsterRun(
        job_name="xero_sync_job", run_id="queued-run", status=dg.DagsterRunStatus.NOT_STARTED,
        tags={"dagster/partition": "t-queued"}))
    schedule = defs_module.defs.resolve_schedule_def("xero_hourly")

    def tick() -> Any:
        return schedule(dg.build_schedule_context(
            instance=instance, scheduled_execution_time=datetime(2026, 1, 1, tzinfo=UTC)))

    assert [_covered(r, instance) for r in tick()] == [["t-idle"]]
    instance.add_run(dg.DagsterRun(
        job_name="xero_sync_job", run_id="queued-too", status=dg.DagsterRunStatus.NOT_STARTED,
        tags={"dagster/partition": "t-idle"}))
    assert isinstance(tick(), dg.SkipReason)
