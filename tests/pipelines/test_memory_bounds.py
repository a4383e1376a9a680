"""A run's memory is bounded by default (issue 14): DuckDB's buffer pool and threads, and dlt's
intermediate files and buffers; a configured value replaces each default."""

from __future__ import annotations

import os
from pathlib import Path

import dlt
import pytest

from pipelines import loading
from pipelines.destinations import resolve_target


def _duckdb_setting(tmp_path: Path, name: str) -> str:
    target = resolve_target("duckdb", "xero")
    pipeline = dlt.pipeline(pipeline_name=f"bounds_{tmp_path.name}",
                            destination=target.destination, dataset_name="xero",
                            pipelines_dir=str(tmp_path / "dlt"))
    with pipeline.sql_client() as client:
        return str(client.execute_sql(f"select current_setting('{name}')")[0][0])


def test_duckdb_gets_a_bounded_pool_unless_configured(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "bounded.duckdb"))
    assert _duckdb_setting(tmp_path, "memory_limit") in {"95.3 MiB", "100.0 MB"}
    assert _duckdb_setting(tmp_path, "threads") == "1"
    assert _duckdb_setting(tmp_path, "preserve_insertion_order").lower() == "false"

    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG",
                       '{"memory_limit": "300MB"}')
    assert _duckdb_setting(tmp_path, "memory_limit") in {"286.1 MiB", "300.0 MB"}
    assert _duckdb_setting(tmp_path, "threads") != "1" or (os.cpu_count() or 1) == 1


def test_dlt_writes_bounded_slices_unless_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_WRITER__BUFFER_MAX_ITEMS", "777")
    loading._bounded_slices()
    assert dlt.config.get("data_writer.file_max_items") == 5_000
    assert int(dlt.config.get("data_writer.buffer_max_items")) == 777
