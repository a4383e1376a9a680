"""Dagster asks what `xero-elt run` asks: the schedule's tick launches runs only for the
organisations with something due, and those runs read only what is due."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freezegun import freeze_time

from pipelines.run import RunOptions, execute
from sandbox.handle import SandboxHandle
from store import Store
from tests.pipelines.dagster_support import apply_partition_requests, import_dagster_defs

defs_module = import_dagster_defs()
import dagster as dg  # noqa: E402  (after the check that says why it is missing)

pytestmark = pytest.mark.slow


def _tick(instance: dg.DagsterInstance) -> Any:
    schedule = defs_module.defs.resolve_schedule_def("xero_hourly")
    return schedule(dg.build_schedule_context(
        instance=instance, scheduled_execution_time=datetime.now(UTC)))


def test_the_schedule_launches_only_organisations_with_something_due(
    connected_store: Store, sandbox: SandboxHandle, instance: dg.DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PIPELINES__SCHEDULE__ENABLED", "true")
    premium, standard = sandbox.tenant_ids()
    context = dg.build_sensor_context(instance=instance, definitions=defs_module.defs)
    apply_partition_requests(instance, defs_module.xero_organisations_sensor(context))
    start = datetime.now(UTC)
    # Both loaded once (the auth server's first syncs).
    assert execute(RunOptions(tenants=[premium, standard]), connected_store).exit_code == 0
    assert defs_module.defs.resolve_schedule_def("xero_hourly").cron_schedule == "*/5 * * * *"

    with freeze_time(start + timedelta(minutes=2), tick=True):
        skipped = _tick(instance)
    assert isinstance(skipped, dg.SkipReason)
    assert "nothing due" in (skipped.skip_message or "")

    (conn,) = connected_store.connections_for_tenant(premium)
    connected_store.set_schedule(conn.connection_id, {"suppliers": 1})
    with freeze_time(start + timedelta(minutes=2), tick=True):
        (request,) = _tick(instance)
        assert request.partition_key == premium
        assert request.run_config == {
            "ops": {"xero_organisation_tables": {"config": {"schedule": True}}}}
        job = defs_module.defs.resolve_job_def("xero_sync_job")
        result = job.execute_in_process(instance=instance, partition_key=request.partition_key,
                                        tags=dict(request.tags), run_config=request.run_config)
    assert result.success
    materialised = {(e.asset_key.path[-1], e.step_materialization_data.materialization.partition)
                    for e in result.get_asset_materialization_events()}
    assert materialised == {("suppliers", premium)}  # the only thing due

    # After five minutes both have suppliers due: one run over both.
    with freeze_time(start + timedelta(minutes=6), tick=True):
        (both,) = _tick(instance)
    order = instance.get_dynamic_partitions("xero_organisations")
    assert sorted(defs_module.run_partitions(both.tags, order)) == sorted([premium, standard])
