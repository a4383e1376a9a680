"""A source that is built but never run, run with a few of its resources, or cut short with
`add_limit` leaves no thread, HTTP connection or open file behind."""

from __future__ import annotations

import gc
import os
import threading
import time
from pathlib import Path

import dlt
import pytest

from connector import xero_source
from connector.settings import XeroSettings
from sandbox.handle import SandboxHandle, XeroGrant
from store import Store
from store.token_provider import StoreTokens

# Subprocesses, daemons or fresh interpreters: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _ours() -> tuple[set[str], list[str]]:
    """Threads the connector starts, and files and sockets this process holds open."""
    threads = {t.name for t in threading.enumerate() if t.name.startswith("xero")}
    files = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            files.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return threads, files


def _settled(baseline_files: list[str], timeout: float = 5.0) -> tuple[set[str], list[str]]:
    """What is open beyond the baseline, once threads that were told to stop have stopped."""
    deadline = time.monotonic() + timeout
    while True:
        gc.collect()  # a finished thread's handles go with its thread-locals
        threads, files = _ours()
        extra = [f for f in files if f not in baseline_files or
                 files.count(f) > baseline_files.count(f)]
        if (not threads and not extra) or time.monotonic() > deadline:
            return threads, sorted(set(extra))
        time.sleep(0.05)


def _relevant(extra: list[str], callers_store: Store | None = None) -> list[str]:
    """Sockets and the connector's files. dlt's and DuckDB's files are theirs; so is a store
    the caller passed in, whose handles SQLite closes together, when the caller closes it."""
    mine = [f for f in extra if f.startswith("socket:") or "xero-elt-home" in f]
    if callers_store is not None:
        mine = [f for f in mine if not f.startswith(str(callers_store.path))]
    return mine


@pytest.fixture
def pipeline(tmp_path: Path) -> dlt.Pipeline:
    return dlt.pipeline(pipeline_name="xero_lifecycle", dataset_name="xero",
                        destination=dlt.destinations.duckdb(str(tmp_path / "l.duckdb")),
                        pipelines_dir=str(tmp_path / "dlt-pipelines"))


def test_a_source_built_and_never_run_opens_nothing(
    tmp_home: Path, settings: XeroSettings
) -> None:
    _, before = _ours()
    source = xero_source(settings=settings)  # default provider: the secrets' refresh token
    assert set(source.resources) == {"suppliers", "accounts", "tax_rates",
                                     "tracking_categories", "tracking_options"}
    threads, extra = _settled(before, timeout=0.2)
    assert threads == set()
    assert extra == []
    assert list(tmp_home.iterdir()) == []  # not even the store was created


def test_with_resources_closes_everything_when_its_resources_finish(
    store: Store, settings: XeroSettings, grant_id: str, pipeline: dlt.Pipeline
) -> None:
    _, before = _ours()
    source = xero_source(tokens=StoreTokens(store, settings), settings=settings)
    info = pipeline.run(source.with_resources("accounts"), loader_file_format="parquet")
    assert not info.has_failed_jobs
    with pipeline.sql_client() as client:
        assert client.execute_sql("select count(*) from accounts")[0][0] > 0
    threads, extra = _settled(before)
    assert threads == set()
    assert _relevant(extra, store) == []


def test_add_limit_closes_the_client_and_the_readers(
    store: Store, settings: XeroSettings, grant_id: str, pipeline: dlt.Pipeline
) -> None:
    _, before = _ours()
    source = xero_source(tokens=StoreTokens(store, settings),
                         settings=settings.replace(page_size=50))
    pipeline.run(source.with_resources("suppliers").add_limit(1), loader_file_format="parquet")
    with pipeline.sql_client() as client:
        loaded = client.execute_sql("select count(*) from suppliers")[0][0]
    assert 0 < loaded < 500  # cut short: one page, not the 2 x 250 suppliers
    threads, extra = _settled(before)
    assert threads == set()
    assert _relevant(extra, store) == []


def test_a_refresh_token_source_closes_its_own_token_store(
    tmp_home: Path, sandbox: SandboxHandle, xero_grant: XeroGrant, settings: XeroSettings,
    pipeline: dlt.Pipeline,
) -> None:
    _, before = _ours()
    source = xero_source(settings=settings.replace(refresh_token=xero_grant.refresh_token))
    pipeline.run(source.with_resources("tax_rates"), loader_file_format="parquet")
    with pipeline.sql_client() as client:
        loaded = client.execute_sql("select count(*) from tax_rates")[0][0]
    assert loaded == sum(t["counts"]["tax_rates"] for t in sandbox.tenants())
    # The token was adopted into the connector's own token file, not the app's store...
    assert (tmp_home / "tokens.json").exists()
    assert not (tmp_home / "store.sqlite3").exists()
    threads, extra = _settled(before)
    assert threads == set()
    assert _relevant(extra) == []  # ...and the store, the counter and the client are closed
