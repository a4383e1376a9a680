"""The `dagster.yaml` docs/deploy.md tells operators to use, taken from the doc itself: Dagster's
own storage in PostgreSQL, the queued coordinator with one run per organisation, and a partition
run recorded there."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg2
import pytest

from store import Store
from tests.pipelines.dagster_support import import_dagster_defs
from tests.sandbox_handle import SandboxHandle

defs_module = import_dagster_defs()
import dagster as dg  # noqa: E402
import sqlalchemy as sa  # noqa: E402
from dagster_postgres.event_log import PostgresEventLogStorage  # noqa: E402

from pipelines.dagster_storage import MAX_OVERFLOW  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres]
DEPLOY = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def _documented_yaml() -> str:
    text = DEPLOY.read_text(encoding="utf-8")
    found = re.search(r"`\$DAGSTER_HOME/dagster\.yaml`.*?```yaml\n(.*?)```", text, re.S)
    assert found, "docs/deploy.md has no dagster.yaml block after `$DAGSTER_HOME/dagster.yaml`"
    return found.group(1)


def test_the_documented_dagster_yaml_keeps_runs_in_postgresql(
    connected_store: Store, sandbox: SandboxHandle, postgres_database: str, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(_documented_yaml(), encoding="utf-8")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    # As docs/deploy.md says to write it: the psycopg2 driver named (SQLAlchemy 2.1's default
    # for a bare postgresql:// is psycopg 3, which is not installed).
    monkeypatch.setenv("DAGSTER_PG_URL",
                       postgres_database.replace("postgresql://", "postgresql+psycopg2://", 1))
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "dagster.duckdb"))

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        # dagster-postgres's event log, keeping its connection between writes
        assert type(instance.event_log_storage).__name__ == "PooledPostgresEventLogStorage"
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert type(instance.event_log_storage._engine.pool).__name__ == "QueuePool"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        limits = instance.get_concurrency_config().run_queue_config
        assert limits.max_concurrent_runs == 16
        assert limits.tag_concurrency_limits == [{
            "key": "dagster/partition", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}]

        tenant = sandbox.tenant_ids()[0]
        instance.add_dynamic_partitions("xero_organisations", [tenant])
        job = defs_module.defs.resolve_job_def("xero_sync_job")
        connects: list[object] = []
        sa.event.listen(instance.event_log_storage._engine, "connect",
                        lambda *_: connects.append(None))
        result = job.execute_in_process(partition_key=tenant, instance=instance)
        assert result.success
        run_id = result.run_id

    # Read back from PostgreSQL itself, not through the instance that wrote it.
    with psycopg2.connect(postgres_database) as db, db.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute("SELECT count(*) FROM event_logs WHERE run_id = %s "
                    "AND dagster_event_type = 'ASSET_MATERIALIZATION'", (run_id,))
        (materialised,) = cur.fetchone()
    assert materialised == len(defs_module.xero_organisation_tables.keys)
    # Every event of the run (more than a dozen) went over the connections kept, not a new one
    # each (dagster-postgres's own storage connects for every event).
    assert len(connects) <= 1 + MAX_OVERFLOW


def test_a_run_of_a_large_batch_is_stored_by_dagsters_postgresql_run_storage(
    postgres_database: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run's tags never list its organisations: Dagster's PostgreSQL storage indexes tags of
    at most 2,704 bytes, and a run of 100 organisations whose ids were a tag was refused there
    (its sensor tick failed and the run never started)."""
    from dagster._core.storage.dagster_run import DagsterRun, RunsFilter
    from dagster_postgres.run_storage import PostgresRunStorage
    from dlt.common.configuration import resolve_configuration

    url = postgres_database.replace("postgresql://", "postgresql+psycopg2://", 1)
    runs = PostgresRunStorage(url)
    keys = [str(uuid.uuid4()) for _ in range(1000)]
    request = defs_module.batch_request(keys, {k: f"Organisation {k}" for k in keys}, "k")
    large = DagsterRun(job_name="xero_sync_job", run_id=str(uuid.uuid4()), tags=request.tags)
    runs.add_run(large)
    (stored,) = runs.get_runs(RunsFilter(run_ids=[large.run_id]))
    assert defs_module.run_partitions(stored.tags, ["before", *keys, "after"]) == keys
    assert max(len(k) + len(v) for k, v in stored.tags.items()) < 300
    monkeypatch.setenv("PIPELINES__DAGSTER__BATCH_SIZE", "0")
    with pytest.raises(Exception, match="batch_size must be at least 1"):
        resolve_configuration(defs_module.DagsterSettings(), sections=("pipelines", "dagster"))
