"""The real Dagster daemon, started by the test in a temporary DAGSTER_HOME (local storage):
the sensor and the schedule drive four organisations, in runs of two (partition ranges), into
one PostgreSQL dataset; no two runs of one organisation overlap; one token call per refresh
across all runs. Bounded, killed at the end."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from store import open_store
from tests.conftest import SandboxFactory
from tests.connector.conftest import connect_tenants
from tests.pipelines.dagster_support import import_dagster_defs
from tests.sandbox_handle import DEFAULT_REDIRECT_URI, make_grant

defs_module = import_dagster_defs()
import dagster as dg  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ORGANISATIONS = 4
DAGSTER_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
concurrency:
  runs:
    max_concurrent_runs: 4
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: 2
telemetry:
  enabled: false
"""


def _finished_runs(instance: dg.DagsterInstance) -> list[Any]:
    records = instance.get_run_records(dg.RunsFilter(job_name="xero_sync_job"))
    return [r for r in records if r.dagster_run.is_finished]


def _covered(record: Any, instance: dg.DagsterInstance) -> list[str]:
    """The organisations (partitions) a run covered, from its tags."""
    return defs_module.run_partitions(
        record.dagster_run.tags, instance.get_dynamic_partitions("xero_organisations"))


def _wait_for_each(instance: dg.DagsterInstance, tenants: list[str], count: int,
                   deadline: float) -> list[Any]:
    while time.monotonic() < deadline:
        done = _finished_runs(instance)
        per_org = [sum(1 for r in done if t in _covered(r, instance)) for t in tenants]
        if min(per_org) >= count:
            return done
        time.sleep(2)
    pytest.fail(f"not every organisation had {count} finished runs in time")


def test_schedule_and_sensor_drive_organisations_one_run_each_at_a_time(
    sandbox_factory: SandboxFactory, tmp_home: Path, tmp_path: Path, postgres_env: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sandbox = sandbox_factory(tenants=ORGANISATIONS, suppliers=60)
    sandbox.reset()
    app = sandbox.create_app([DEFAULT_REDIRECT_URI], name="xero-elt dagster")
    store = open_store(tmp_home)
    connect_tenants(store, make_grant(sandbox, app), sandbox)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(DAGSTER_YAML)
    env = {
        **os.environ, **sandbox.dlt_env(app), "DAGSTER_HOME": str(dagster_home),
        "PIPELINES__DESTINATION": "postgres", "PIPELINES__DATASET_NAME": f"xero_d{os.getpid()}",
        "PIPELINES__DAGSTER__SCHEDULE_CRON": "* * * * *",
        "PIPELINES__DAGSTER__SENSOR_INTERVAL_SECONDS": "5",
        "PIPELINES__DAGSTER__BATCH_SIZE": "2",
    }
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    sandbox.clear_requests()
    # The instance (and its SQLite tables) exists before the daemon starts: two processes
    # creating Dagster's SQLite storage at once can leave two alembic heads, and then neither
    # opens it.
    dg.DagsterInstance.get().dispose()
    daemon_log = (tmp_path / "daemon.log").open("w")
    daemon = subprocess.Popen(
        [str(BIN / "dagster-daemon"), "run", "-m", "pipelines.dagster_defs"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=daemon_log,
        start_new_session=True,  # its run workers too are killed with its process group
    )
    try:
        deadline = time.monotonic() + 420  # bounded; ~60 s on a quiet machine
        with dg.DagsterInstance.get() as instance:
            _wait_for_each(instance, sandbox.tenant_ids(), 1, deadline)  # the first loads
            assert sorted(instance.get_dynamic_partitions("xero_organisations")) == sorted(
                sandbox.tenant_ids())
            # Every access token expires at Xero; the scheduled runs must refresh it once.
            sandbox.clear_requests()
            sandbox.advance(1801)
            # Each organisation's scheduled run, however the ticks and the queue interleave.
            runs = _wait_for_each(instance, sandbox.tenant_ids(), 2, deadline)
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()
        daemon_log.close()
        # Shown by pytest when the test fails: what the daemon and its runs said.
        print((tmp_path / "daemon.log").read_text()[-6000:], file=sys.stderr)
    log = (tmp_path / "daemon.log").read_text()
    failed = [r.dagster_run.run_id for r in runs if not r.dagster_run.is_success]
    assert not failed, log[-3000:]
    # Runs of two organisations each (partition ranges), never one per organisation.
    assert {len(_covered(r, instance)) for r in runs} == {2}, [_covered(r, instance) for r in runs]
    by_org: dict[str, list[tuple[float, float]]] = {}
    for record in runs:
        for tenant in _covered(record, instance):
            by_org.setdefault(tenant, []).append((record.start_time, record.end_time))
    assert sorted(by_org) == sorted(sandbox.tenant_ids())
    for tenant, spans in by_org.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"two runs of {tenant} overlapped"
    assert all(len(spans) >= 2 for spans in by_org.values())  # first load, then the schedule
    tokens = [r for r in sandbox.requests("/connect/token") if r["method"] == "POST"]
    assert len(tokens) == 1, tokens
