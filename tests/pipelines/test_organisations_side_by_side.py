"""Organisations loading side by side into one PostgreSQL dataset, as Dagster's workers do:
`xero-elt run --tenant` processes with the per-organisation layout, started at the same moment,
first loads (tables created) and then merges of changes. Afterwards every table equals one
shared-layout run of both organisations: nothing lost, nothing doubled. And a cron run respects
an organisation another run holds (exit 75)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pipelines import exitcodes
from pipelines.destinations import resolve_target
from pipelines.runlocks import load_lock
from tests.pipelines.conftest import Warehouse, _datasets
from tests.pipelines.dagster_support import table_rows
from tests.sandbox_handle import SandboxHandle

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]


def _run_side_by_side(dataset: str, tenants: list[str]) -> list[dict[str, Any]]:
    """One `xero-elt run --tenant` process per organisation, all started before any ends."""
    env = {**os.environ, "PIPELINES__LAYOUT": "per_organisation"}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "pipelines", "run", "--destination", "postgres",
         "--dataset", dataset, "--tenant", tenant, "--json"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    ) for tenant in tenants]
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err[-2000:]
        summaries.append(json.loads(out))
    return summaries


def test_two_organisations_merge_at_the_same_moment_into_one_dataset(
    postgres_warehouse: Warehouse, sandbox: SandboxHandle
) -> None:
    pg = postgres_warehouse
    tenants = sandbox.tenant_ids()
    first = _run_side_by_side(pg.dataset, tenants)
    assert len({s["pipeline"] for s in first}) == len(tenants)  # a dlt pipeline each
    for tenant in tenants:  # a change per organisation, so the second round merges rows
        contact = pg.query("SELECT contact_id FROM {ds}.suppliers WHERE tenant_id = %s "
                           "ORDER BY contact_id LIMIT 1", tenant)[0][0]
        sandbox.mutate(tenant_id=tenant, entity="contacts", op="update", id=contact,
                       fields={"EmailAddress": f"ap@{tenant[:8]}.example"})
    second = _run_side_by_side(pg.dataset, tenants)
    assert all(s["organisations"][0]["entities"]["suppliers"]["rows_loaded"] >= 1
               for s in second)

    reference = Warehouse(pg.store, "postgres", f"xero_ref{next(_datasets)}_{os.getpid()}")
    reference.run_ok()
    side_by_side = table_rows(pg.query, pg.dataset)
    assert all(side_by_side[t] for t in ("suppliers", "accounts", "tax_rates"))
    assert side_by_side == table_rows(reference.query, reference.dataset)
    # `connections` is merged by every run, with every organisation's rows: still one each.
    ids = [r[0] for r in pg.query("SELECT connection_id FROM {ds}.connections")]
    assert len(ids) == len(set(ids)) == len(tenants)
    runs = pg.query("SELECT run_id, count(*) FROM {ds}.sync_runs GROUP BY run_id")
    assert len(runs) == 2 * len(tenants)


def test_a_cron_run_exits_75_while_another_run_holds_one_of_its_organisations(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle
) -> None:
    store = duckdb_warehouse.store
    with store.exclusive([f"organisation:{sandbox.tenant_ids()[1]}"]):
        report = duckdb_warehouse.run()
    assert report.exit_code == exitcodes.LOCKED
    assert sandbox.tenant_ids()[1] in report.summary["error"]
    assert duckdb_warehouse.run_ok().summary["outcome"] == "ok"


HOLDER = """\
import sys, duckdb
from store import Store, open_store
store = open_store(sys.argv[1])
with store.exclusive([sys.argv[2]]), duckdb.connect(sys.argv[3]):
    print("held", flush=True)
    sys.stdin.read()
"""


@pytest.mark.slow
def test_a_run_waits_its_turn_while_another_process_has_the_duckdb_file_open(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle
) -> None:
    """DuckDB lets one process at a time open its file: a run side by side with another's load
    (Dagster's runs) waits for the dataset's turn, even for its pre-flight check, rather than
    failing on the file lock."""
    wh = duckdb_warehouse
    wh.run_ok()  # the file and its tables exist
    lock = load_lock(resolve_target("duckdb", wh.dataset))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(wh.store.home), lock,
         os.environ["DESTINATION__DUCKDB__CREDENTIALS"]],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    reports: list[Any] = []
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        run = threading.Thread(target=lambda: reports.append(wh.run()))
        run.start()
        run.join(15)
        assert run.is_alive(), f"it did not wait for its turn: {reports[0].summary}"
    finally:
        holder.communicate("", timeout=30)
    run.join(240)
    assert reports[0].exit_code == 0, reports[0].summary
