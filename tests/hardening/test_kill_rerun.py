"""SIGKILL of a real `xero-elt run` at ten chosen points over extract, normalize and load; the
next run must leave exactly the tables a clean run leaves, row for row, in DuckDB and PostgreSQL.

The points are reached deterministically, not by sleeping: two by the sandbox holding a Xero call
in flight (a `slow` fault, seen armed and then taken), eight by failpoints (tests/hardening/
failpoints.py) that stop the process inside dlt or our run at an exact call. Scenarios that use
sandbox faults run one at a time (faults are sandbox-wide); the failpoint ones two at a time.
"""

from __future__ import annotations

import secrets
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sandbox.handle import SandboxHandle
from tests.hardening import failpoints
from tests.hardening.conftest import (
    API,
    ROOT,
    CliHome,
    duckdb_contents,
    kill,
    postgres_contents,
    wait_until,
)

pytestmark = [pytest.mark.hardening, pytest.mark.slow]


@dataclass(frozen=True)
class KillPoint:
    """Where a run is stopped: a failpoint spec, or a Xero call held in flight by the sandbox."""

    name: str
    stage: str
    failpoint: str | None = None  # module:attr:before|after:nth
    slow_path: str | None = None  # an API path held in flight ...
    slow_tenant: int = 0  # ... for this organisation (index in seed order)
    leaves: str | None = None  # the package the kill leaves: "extracted" or "normalized"
    match: str | None = None  # only load jobs whose file path contains this count


# The class whose `run` copies a load file into the destination, per destination.
COPY_JOB = {
    "duckdb": "dlt.destinations.impl.duckdb.duck:DuckDbCopyJob",
    "postgres": "dlt.destinations.impl.postgres.postgres:PostgresParquetCopyJob",
}


POINTS = (
    KillPoint("lock held, nothing read yet", "start-up",
              failpoint="pipelines.loading:finish_pending:after:1"),
    KillPoint("first Accounts call in flight at Xero", "extract",
              slow_path=f"{API}/Accounts", slow_tenant=0),
    KillPoint("suppliers in flight, the other entities already read", "extract",
              slow_path=f"{API}/Contacts", slow_tenant=1),
    KillPoint("everything read, extracted files not committed", "extract",
              failpoint="dlt.extract.extract:Extract.commit_packages:before:1"),
    KillPoint("extracted package waiting for normalize", "normalize",
              failpoint="dlt.pipeline.pipeline:Pipeline.normalize:before:1", leaves="extracted"),
    KillPoint("files normalized, package not committed", "normalize",
              failpoint="dlt.common.storages.load_storage:LoadStorage.commit_new_load_package"
                        ":before:1", leaves="extracted"),
    KillPoint("normalized package waiting for load", "load",
              failpoint="dlt.pipeline.pipeline:Pipeline.load:before:1", leaves="normalized"),
    KillPoint("a suppliers load job ran into staging, its completion not recorded", "load",
              failpoint="{copy_job}.run:after:1", match="/suppliers.", leaves="normalized"),
    KillPoint("every job and merge done, load not recorded", "load",
              failpoint="dlt.load.load:Load.complete_package:before:1", leaves="normalized"),
    KillPoint("data loaded, sync_runs/connections not written", "after load",
              failpoint="pipelines.run:bookkeeping_resources:before:1"),
)


@dataclass
class Warehouse:
    """Where the kill scenarios load: DuckDB (a file per home) or a PostgreSQL schema each."""

    destination: str
    dsn: str | None = None

    def args(self, dataset: str) -> list[str]:
        return ["--destination", self.destination, "--dataset", dataset]

    def env(self) -> dict[str, str]:
        return {"DESTINATION__POSTGRES__CREDENTIALS": self.dsn} if self.dsn else {}

    def contents(self, home: CliHome, dataset: str) -> dict[str, list[tuple[Any, ...]]]:
        if self.destination == "duckdb":
            return duckdb_contents(home.db, dataset)
        assert self.dsn is not None
        return postgres_contents(self.dsn, dataset)


def _start_at(home: CliHome, wh: Warehouse, dataset: str, point: KillPoint,
              marker: Path) -> subprocess.Popen[str]:
    env = home.env(**wh.env())
    if point.failpoint:
        env[failpoints.FAILPOINT_ENV] = point.failpoint.format(copy_job=COPY_JOB[wh.destination])
        env[failpoints.MARKER_ENV] = str(marker)
        if point.match:
            env[failpoints.MATCH_ENV] = point.match
    stderr = open(marker.with_suffix(".stderr"), "w")  # noqa: SIM115 - closed by the caller
    proc = subprocess.Popen(
        failpoints.command(ROOT, "run", "--json", *wh.args(dataset)), cwd=ROOT, env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr, text=True,
    )
    stderr.close()
    return proc


def _wait_for_point(proc: subprocess.Popen[str], point: KillPoint, marker: Path,
                    sandbox: SandboxHandle) -> None:
    def there() -> bool:
        if proc.poll() is not None:
            log = marker.with_suffix(".stderr").read_text()[-3000:]
            raise AssertionError(f"run ended ({proc.returncode}) before {point.name!r}:\n{log}")
        if point.failpoint:
            return marker.exists()
        return not sandbox.faults()  # the slow fault was taken: the call is in flight

    wait_until(there, timeout=120, every=0.01)
    if point.slow_path == f"{API}/Contacts":
        others = ("Accounts", "TaxRates", "TrackingCategories")
        # The other entities of both organisations are answered before the kill.
        wait_until(lambda: all(sandbox.requests(path=f"{API}/{p}") and
                               len(sandbox.requests(path=f"{API}/{p}")) >= 2 for p in others),
                   timeout=60)
        time.sleep(0.3)


def kill_and_rerun(home: CliHome, wh: Warehouse, dataset: str, point: KillPoint,
                   marker: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Start a run, SIGKILL it at `point`, run again to the end; the tables afterwards."""
    if point.slow_path:
        tenant_id = home.sandbox.tenant_ids()[point.slow_tenant]
        home.sandbox.clear_requests()
        home.sandbox.fault(kind="slow", seconds=20, path=point.slow_path, tenant_id=tenant_id,
                           count=1)
    proc = _start_at(home, wh, dataset, point, marker)
    try:
        _wait_for_point(proc, point, marker, home.sandbox)
    finally:
        killed = kill(proc)
        home.sandbox.clear_faults() if point.slow_path else None
    assert killed, f"the run was not killed at {point.name!r}"
    if point.leaves:
        left = pending_packages(home)
        assert left[point.leaves], (point.name, left)
    rerun = home.run(*wh.args(dataset), **wh.env())
    assert rerun.code == 0, rerun
    if point.leaves:
        assert "left by an interrupted run" in rerun.stderr, rerun  # finished first
    left = pending_packages(home)
    assert not any(left.values()), (point.name, left, _listing(home), rerun.stderr[-3000:])
    return wh.contents(home, dataset)


def _listing(home: CliHome) -> str:
    return subprocess.run(["find", str(home.home / "pipelines"), "-path", "*load/normalized/*"],
                          capture_output=True, text=True).stdout[-3000:]


def pending_packages(home: CliHome) -> dict[str, list[str]]:
    """Load packages left in the pipeline's working folder, by stage."""
    (workdir,) = (home.home / "pipelines").iterdir()
    found = {}
    for stage, folder in (("extracted", "normalize/extracted"), ("normalized", "load/normalized")):
        path = workdir / folder
        # Packages are folders (dlt may leave empty temp files beside them).
        found[stage] = sorted(p.name for p in path.iterdir() if p.is_dir()) if path.is_dir() \
            else []
    return found


def _scenarios(
    wh: Warehouse, sandbox: SandboxHandle, make_home: Callable[..., CliHome], tmp_path: Path,
) -> None:
    tag = secrets.token_hex(3)

    def setup(name: str) -> tuple[CliHome, str]:
        # An app per installation: Xero's limits are per app and organisation.
        home = make_home(sandbox, sandbox.create_app(name=f"kill {name}"), name)
        home.connect()
        return home, f"xero_{name}_{tag}" if wh.destination == "postgres" else "xero"

    clean_home, clean_dataset = setup("clean")
    clean = clean_home.run(*wh.args(clean_dataset), **wh.env())
    assert clean.code == 0, clean
    expected = wh.contents(clean_home, clean_dataset)
    assert expected["suppliers"]
    assert expected["tracking_options"]

    def scenario(index: int) -> tuple[KillPoint, dict[str, list[tuple[Any, ...]]]]:
        point = POINTS[index]
        home, dataset = setup(f"k{index}")
        return point, kill_and_rerun(home, wh, dataset, point, tmp_path / f"k{index}.reached")

    results = [scenario(i) for i, p in enumerate(POINTS) if p.slow_path]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results += pool.map(scenario, [i for i, p in enumerate(POINTS) if not p.slow_path])
    assert len(results) == 10
    for point, tables in results:
        assert tables.keys() == expected.keys(), point.name
        for table, rows in expected.items():
            assert tables[table] == rows, f"{table} differs after a kill at {point.name!r}"


def test_sigkill_at_ten_points_then_rerun_equals_a_clean_run_duckdb(
    sandbox: SandboxHandle, make_home: Callable[..., CliHome], tmp_path: Path,
) -> None:
    _scenarios(Warehouse("duckdb"), sandbox, make_home, tmp_path)


@pytest.mark.postgres
def test_sigkill_at_ten_points_then_rerun_equals_a_clean_run_postgres(
    sandbox: SandboxHandle, make_home: Callable[..., CliHome], tmp_path: Path,
    hardening_postgres: str,
) -> None:
    _scenarios(Warehouse("postgres", hardening_postgres), sandbox, make_home, tmp_path)
