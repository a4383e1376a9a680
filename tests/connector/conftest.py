"""Fixtures for the connector's tests: a store holding a grant connected to both sandbox
organisations, settings pointing at the sandbox, and dlt pipelines into DuckDB in tmp dirs."""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import pytest

from connector.memory import CURSORS_KEY, MEMORY_TABLE, compact
from connector.settings import XeroSettings
from connector.source import make_source
from connector.stats import SyncStats
from pipelines.loading import record_access_lost
from sandbox.handle import SandboxHandle, XeroGrant
from store import Store, open_store
from store.token_provider import StoreTokens
from tools.sandbox_setup import sandbox_settings as tools_sandbox_settings
from tools.sandbox_setup import store_grant

_names = itertools.count()


def connect_tenants(store: Store, grant: XeroGrant, sandbox: SandboxHandle,
                    tenant_ids: list[str] | None = None) -> str:
    """Store the grant and a `connected` connection per organisation; returns the grant id."""
    names = {t["tenantId"]: t["name"] for t in sandbox.tenants()}
    return store_grant(store, grant, names, tenant_ids)


def sandbox_settings(sandbox: SandboxHandle, grant: XeroGrant, **overrides: Any) -> XeroSettings:
    """Settings pointing at the sandbox, with fast backoff for tests."""
    app = {"client_id": grant.client_id, "client_secret": grant.client_secret}
    return tools_sandbox_settings(sandbox.url, app, **overrides)


class Loader:
    """Runs the source into one DuckDB file with one pipeline, like cron runs would."""

    def __init__(self, tmp_path: Path, store: Store, settings: XeroSettings) -> None:
        self.store = store
        self.settings = settings
        self.path = tmp_path / "loaded.duckdb"  # a file named like the dataset confuses DuckDB
        self.pipeline = dlt.pipeline(
            pipeline_name=f"xero_test_{next(_names)}",
            destination=dlt.destinations.duckdb(str(self.path)),
            dataset_name="xero",
            pipelines_dir=str(tmp_path / "dlt-pipelines"),
        )
        self.stats = SyncStats()

    def run(self, **kwargs: Any) -> SyncStats:
        """One run of the source; returns its stats."""
        settings = kwargs.pop("settings", self.settings)
        self.stats = SyncStats()
        source = make_source(tokens=StoreTokens(self.store, settings), settings=settings,
                             stats=self.stats, **kwargs)
        try:
            self.load_info = self.pipeline.run(source, loader_file_format="parquet")
            with self.pipeline.sql_client() as client:  # as the app's runs do after a load
                compact(client, self.tenants_loaded())
        finally:
            # The connector only reports lost access; like `xero-elt run`, the caller records it.
            record_access_lost(self.store, self.stats)
        return self.stats

    def tenants_loaded(self) -> set[str]:
        """The organisations the last run read."""
        return {entry.tenant_id for entry in self.stats.entries()}

    def query(self, sql: str) -> list[tuple]:
        """Rows of a query against the loaded dataset (tables unqualified)."""
        with self.pipeline.sql_client() as client:
            return client.execute_sql(sql)

    def count(self, table: str, where: str = "true") -> int:
        """Rows in a table."""
        return self.query(f"select count(*) from {table} where {where}")[0][0]  # noqa: S608

    def rows_written(self) -> dict[str, int]:
        """Rows each table received in the last load (from dlt's trace), the cursors rows
        left out: they move with every read (Xero's clock), as dlt's state did."""
        trace = self.pipeline.last_trace
        counts = dict(trace.last_normalize_info.row_counts if trace and trace.last_normalize_info
                      else {})
        if counts.get(MEMORY_TABLE):
            loads = ", ".join(f"'{load_id}'" for load_id in self.load_info.loads_ids)
            counts[MEMORY_TABLE] -= self.count(
                MEMORY_TABLE, f"record_id = '{CURSORS_KEY}' and load_id in ({loads})")
        return {k: v for k, v in counts.items() if not k.startswith("_dlt") and v}

    def cursors(self, entity: str) -> dict[str, dict[str, Any]]:
        """Per organisation, the cursors kept for ``entity`` (what dlt's state held before)."""
        return {tenant: json.loads(text) for tenant, text in self.query(
            f"select tenant_id, last_values from {MEMORY_TABLE} "  # noqa: S608
            f"where record_id = '{CURSORS_KEY}' and entity = '{entity}' "
            "and load_id in (select load_id from _dlt_loads where status = 0) "
            "order by load_id")}


@pytest.fixture
def store(tmp_home: Path) -> Store:
    """A store in the test's private XERO_ELT_HOME."""
    return open_store(tmp_home)


@pytest.fixture
def grant_id(store: Store, xero_grant: XeroGrant, sandbox: SandboxHandle) -> str:
    """The `xero_grant` stored, both organisations connected."""
    return connect_tenants(store, xero_grant, sandbox)


@pytest.fixture
def settings(sandbox: SandboxHandle, xero_grant: XeroGrant) -> XeroSettings:
    """Connector settings pointing at the default sandbox."""
    return sandbox_settings(sandbox, xero_grant)


@pytest.fixture
def loader(tmp_path: Path, store: Store, settings: XeroSettings, grant_id: str) -> Loader:
    """A DuckDB loader over the two connected organisations."""
    return Loader(tmp_path, store, settings)


LoaderFactory = Callable[..., Loader]
