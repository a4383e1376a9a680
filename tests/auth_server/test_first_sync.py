"""The first sync after "Confirm": the default subprocess (`python -m pipelines run --tenant …
--wait 600`) loads the organisation's four entities into DuckDB in the background."""

from __future__ import annotations

from pathlib import Path

from auth_server.first_sync import pipeline_command
from auth_server.invites import create_invite
from sandbox.handle import SandboxHandle
from tests.auth_server.conftest import duckdb_counts
from tests.auth_server.helpers import RunningAuth, wait_for


def test_pipeline_command_runs_one_organisation_and_waits_for_the_lock() -> None:
    command = pipeline_command("tenant-1")
    assert command[1:] == ["-m", "pipelines", "run", "--tenant", "tenant-1", "--wait", "600"]
    # The API's "sync now" reads every entity, not only what the schedule says is due.
    assert pipeline_command("tenant-1", every_entity=True)[-2:] == [
        "--entities", "suppliers,accounts,tax_rates,tracking_categories"]


def test_first_sync_loads_the_four_entities_into_duckdb(
    sandbox: SandboxHandle, auth_duckdb: tuple[RunningAuth, Path], tmp_home: Path
) -> None:
    auth, database = auth_duckdb
    tenant = sandbox.tenants()[0]
    admin = sandbox.admin([tenant["tenantId"]])
    conn, link = create_invite(auth.store, auth.settings, tenant["name"], admin["email"])
    page = auth.customer().connect(link, admin, tenant_ids=[tenant["tenantId"]])
    assert "Connection Successful" in page.text
    assert auth.connection(conn.connection_id).sync_state in ("syncing", "synced")

    wait_for(lambda: auth.connection(conn.connection_id).sync_state in ("synced", "failed"),
             timeout=180)
    done = auth.connection(conn.connection_id)
    log = (tmp_home / "logs" / f"first-sync-{conn.connection_id}.log").read_text()
    assert done.sync_state == "synced", log[-3000:]
    assert done.last_sync_outcome == "ok"
    assert done.last_sync_rows
    assert done.last_sync_rows > 0

    auth.server.app.first_sync.join(120)  # the run still writes its bookkeeping tables
    counts = duckdb_counts(database, tenant["tenantId"])
    assert counts["suppliers"] == tenant["counts"]["suppliers"]
    assert counts["accounts"] > 0
    assert counts["tax_rates"] > 0
    assert counts["tracking_categories"] > 0
