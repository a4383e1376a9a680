"""Fixtures for pipeline tests: a store with the sandbox's organisations connected, the
environment pointing `SOURCES__XERO__*` at the sandbox, warehouses (DuckDB or PostgreSQL) that
runs load through `pipelines.run.execute`, and a throwaway PostgreSQL database per session.

    def test_something(duckdb_warehouse, sandbox):
        duckdb_warehouse.run()
        assert duckdb_warehouse.query("SELECT count(*) FROM {ds}.accounts")[0][0] > 0

PostgreSQL tests skip, with the reason, when 127.0.0.1:5432 does not answer; with `CI=true`
they fail instead (CI must run them).
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dlt
import pytest

from pipelines.destinations import resolve_target
from pipelines.run import RunOptions, RunReport, execute
from sandbox.handle import SandboxHandle, XeroGrant
from store import Store, open_store
from tests.conftest import SandboxFactory
from tests.connector.conftest import connect_tenants
from tools.reference_load import ReferenceLoad, reference_load

# The server trusts loopback; the password is ignored (a DSN without one works too).
POSTGRES_SERVER = os.environ.get(
    "XERO_ELT_TEST_POSTGRES", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
)
_datasets = itertools.count()
README = Path(__file__).resolve().parents[2] / "README.md"
_SQL_BLOCK = re.compile(r"```sql\n(.*?)```", re.DOTALL)


def readme_queries() -> list[str]:
    """The SQL blocks of README.md's analyst section, in order."""
    text = README.read_text(encoding="utf-8")
    start, end = text.find("<!-- analyst:start -->"), text.find("<!-- analyst:end -->")
    assert 0 <= start < end, "README.md lacks the analyst section markers"
    return [block.strip() for block in _SQL_BLOCK.findall(text[start:end])]


def needs_history(sql: str) -> bool:
    """True for a query that reads history (scd2) columns."""
    return "_dlt_valid_" in sql


@dataclass
class Warehouse:
    """One destination and dataset, loaded by `execute()` from one store, and queried."""

    store: Store
    destination: str
    dataset: str = "xero"

    def run(self, **options: Any) -> RunReport:
        """One `xero-elt run` (in-process); asserts nothing, returns the report."""
        return execute(
            RunOptions(destination=self.destination, dataset=self.dataset, **options), self.store
        )

    def run_ok(self, **options: Any) -> RunReport:
        """A run that must succeed (exit code 0), with its summary shown when it does not."""
        report = self.run(**options)
        assert report.exit_code == 0, report.summary
        return report

    def pipeline(self) -> Any:
        """The dlt pipeline the runs use (same name, destination and working dir)."""
        target = resolve_target(self.destination, self.dataset)
        return dlt.pipeline(
            pipeline_name=target.pipeline_name,
            destination=target.destination,
            dataset_name=target.dataset,
            pipelines_dir=str(self.store.home / "pipelines"),
        )

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        """Rows of `sql`, where `{ds}` stands for the quoted dataset name."""
        with self.pipeline().sql_client() as client:
            text = sql.replace("{ds}", client.fully_qualified_dataset_name())
            return [tuple(row) for row in client.execute_sql(text, *args) or []]

    def columns(self, table: str) -> dict[str, str]:
        """{column: the destination's data type} of a table or view (empty if it is absent)."""
        rows = self.query(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            self.dataset, table,
        )
        return {str(name): str(kind).lower() for name, kind in rows}

    def all_columns(self) -> dict[str, dict[str, str]]:
        """{table or view: {column: data type}} of the whole dataset, in one query."""
        found: dict[str, dict[str, str]] = {}
        for table, name, kind in self.query(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s", self.dataset,
        ):
            found.setdefault(str(table), {})[str(name)] = str(kind).lower()
        return found

    def counts(self, tables: list[str]) -> dict[str, int]:
        """Rows per table, in one query."""
        if not tables:
            return {}
        sql = " UNION ALL ".join(
            f"SELECT '{t}' AS t, count(*) AS n FROM {{ds}}.{t}" for t in tables  # noqa: S608
        )
        return {str(t): int(n) for t, n in self.query(sql)}

    def tables(self) -> set[str]:
        """Every table and view of the dataset."""
        rows = self.query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            self.dataset,
        )
        return {str(name) for (name,) in rows}


@pytest.fixture(scope="session")
def reference(
    sandbox_factory: SandboxFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ReferenceLoad]:
    """The demo-like reference load (`tools.reference_load`), once per session, in the
    default sandbox (reset before and after)."""
    sandbox = sandbox_factory()
    yield reference_load(sandbox.url, tmp_path_factory.mktemp("reference"))
    sandbox.reset()


@pytest.fixture
def xero_env(
    monkeypatch: pytest.MonkeyPatch, sandbox: SandboxHandle, xero_app: dict[str, Any],
    tmp_path: Path,
) -> dict[str, str]:
    """`SOURCES__XERO__*` pointing at the default sandbox, DuckDB in tmp, no history."""
    env = {
        **sandbox.dlt_env(xero_app),
        "SOURCES__XERO__BACKOFF_SECONDS": "0.05",
        "SOURCES__XERO__MAX_BACKOFF_SECONDS": "0.5",
        "DESTINATION__DUCKDB__CREDENTIALS": str(tmp_path / "xero_elt.duckdb"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SOURCES__XERO__HISTORY", raising=False)
    return env


@pytest.fixture
def connected_store(
    tmp_home: Path, sandbox: SandboxHandle, xero_grant: XeroGrant, xero_env: dict[str, str]
) -> Store:
    """A store in the test's XERO_ELT_HOME with both sandbox organisations connected."""
    store = open_store(tmp_home)
    connect_tenants(store, xero_grant, sandbox)
    return store


@pytest.fixture
def duckdb_warehouse(connected_store: Store) -> Warehouse:
    """Dataset `xero` in a DuckDB file under tmp, loaded from `connected_store`."""
    return Warehouse(connected_store, "duckdb")


def _server_address() -> str:
    """host:port of the test server (never the DSN: it may hold a password)."""
    parts = urlsplit(POSTGRES_SERVER)
    return f"{parts.hostname}:{parts.port or 5432}"


def _postgres_unavailable(reason: str) -> None:
    message = f"PostgreSQL not reachable at {_server_address()}: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A throwaway database `xero_elt_test_<random>` for this session; its DSN. Dropped after."""
    try:
        import psycopg2
    except ImportError as exc:  # pragma: no cover - the postgres extra is part of the venv
        _postgres_unavailable(f"psycopg2 missing ({exc})")
    try:
        admin = psycopg2.connect(POSTGRES_SERVER, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        _postgres_unavailable(" ".join(str(exc).split()))
    admin.autocommit = True
    name = f"xero_elt_test_{secrets.token_hex(4)}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_SERVER.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


@pytest.fixture
def postgres_env(postgres_database: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """`DESTINATION__POSTGRES__CREDENTIALS` pointing at the session's database."""
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", postgres_database)
    return postgres_database


@pytest.fixture
def postgres_warehouse(connected_store: Store, postgres_env: str) -> Warehouse:
    """A dataset of its own (so no state is restored from another test) in the session's
    PostgreSQL database, loaded from `connected_store`."""
    return Warehouse(connected_store, "postgres", f"xero_t{next(_datasets)}_{os.getpid()}")


@pytest.fixture
def instance() -> Iterator[Any]:
    """A temporary Dagster instance, for the Dagster tests (a schedule's or a sensor's context
    needs one); dagster is imported only when a test asks for it (an optional extra)."""
    import dagster as dg

    with dg.instance_for_test() as found:
        yield found


@pytest.fixture
def turns(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every dataset load turn a run's TurnTakingPipeline takes (not the nested, lock-free
    ones), for the tests that count them."""
    from pipelines.runlocks import TurnTakingPipeline

    taken: list[str] = []
    original = TurnTakingPipeline._turn

    def counting(self: TurnTakingPipeline, write: bool = True) -> Any:
        if not self._holding and not (self._reading and not write):
            taken.append(self._lock)
        return original(self, write)

    monkeypatch.setattr(TurnTakingPipeline, "_turn", counting)
    return taken
