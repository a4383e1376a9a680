"""A load into a DuckDB file keeps the database open for the whole step (one checkpoint, not one
per job), with dlt's settings still applied, and lets go of the file when it is done."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dlt
import pytest

from pipelines.destinations import held_open, resolve_target


def test_a_load_of_many_files_holds_the_file_once_and_releases_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    database = tmp_path / "held.duckdb"
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(database))
    monkeypatch.setenv("DATA_WRITER__FILE_MAX_ITEMS", "100")  # ten files, ten load jobs
    target = resolve_target("duckdb", "xero")
    assert target.duckdb_file == str(database)
    pipeline = dlt.pipeline(pipeline_name="held_open", destination=target.destination,
                            dataset_name="xero", pipelines_dir=str(tmp_path / "dlt"))
    rows = [{"id": i, "name": f"row {i}"} for i in range(1_000)]
    pipeline.extract(dlt.resource(rows, name="items", primary_key="id",
                                  write_disposition="merge"),
                     loader_file_format="parquet")
    pipeline.normalize()
    with held_open(target):
        info = pipeline.load()
        jobs = [job for package in info.load_packages for job in package.jobs["completed_jobs"]
                if job.job_file_info.table_name == "items"]
        assert len(jobs) >= 10
        with pipeline.sql_client() as client:  # dlt's bounds hold on the shared database
            assert client.execute_sql("select current_setting('threads')")[0][0] == 1
            assert client.execute_sql("select count(*) from items")[0][0] == 1_000

    # another process can open the file read-write: nothing holds it any more
    probe = ("import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
             "print(c.execute('select count(*) from xero.items').fetchone()[0])")
    done = subprocess.run([sys.executable, "-c", probe, str(database)], capture_output=True,
                          text=True, timeout=120, check=True)
    assert done.stdout.strip() == "1000"


def test_other_destinations_hold_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", "postgresql://postgres@127.0.0.1/x")
    target = resolve_target("postgres", "xero")
    assert target.duckdb_file is None
    with held_open(target):
        pass
