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
    assert dlt.config.get("data_writer.file_max_items") == 50_000  # Arrow tables
    assert int(dlt.config.get("data_writer.buffer_max_items")) == 777
    loading._bounded_slices(normalized=True)  # rows through dlt's normalizer (history)
    assert dlt.config.get("data_writer.file_max_items") == 5_000
    monkeypatch.setenv("DATA_WRITER__FILE_MAX_ITEMS", "123")
    loading._bounded_slices()
    assert int(dlt.config.get("data_writer.file_max_items")) == 123  # a configured value wins


_FREED_BLOCKS = """
import ctypes, os, sys
from pipelines.loading import _bounded_allocators
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
if sys.argv[1] == "bounded":
    _bounded_allocators()
libc.free(libc.malloc(8 << 20))  # a freed large block: glibc's own threshold would rise to it
blocks, kept = [], []
for _ in range(100):  # each block followed by a small allocation that lives on (fragmentation)
    blocks.append(libc.malloc(1 << 20))
    ctypes.memset(blocks[-1], 1, 1 << 20)
    kept.append(libc.malloc(4096))
before = rss_mb()
for block in blocks:
    libc.free(block)
print(before - rss_mb())
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads RSS from /proc")
@pytest.mark.parametrize(("mode", "returned"), [("bounded", True), ("glibc", False)])
def test_freed_large_blocks_go_back_to_the_system(mode: str, returned: bool) -> None:
    """What a DuckDB checkpoint or an Arrow page frees is handed back, not kept in the heap
    (a first load in slices grew by each slice's blocks before); the control shows glibc's
    own behaviour keeping them."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run([sys.executable, "-c", _FREED_BLOCKS, mode], env=env, check=True,
                          capture_output=True, text=True)
    freed_mb = float(done.stdout)
    assert (freed_mb > 90) is returned, f"{mode}: {freed_mb:.0f} MB returned of 100"
