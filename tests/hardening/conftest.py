"""Fixtures for the hardening suite: real `python -m pipelines run` processes against the sandbox.

    def test_something(cli_home):
        cli_home.sandbox.fault(kind="status", status=503, path="/api.xro/2.0/Accounts")
        result = cli_home.run()
        assert result.code == 0, result.stderr

`CliHome` is one installation: its own XERO_ELT_HOME (credential store with organisations
connected), dlt data dir and DuckDB file, and the environment a cron job would have. Runs are
subprocesses, so SIGKILL, locks and the sandbox clock behave as in production.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connector.memory import CURSORS_KEY, MEMORY_TABLE
from sandbox.handle import SandboxHandle, XeroGrant, make_grant
from store import Store, open_store
from tests.auth_server.conftest import auth, org  # noqa: F401 - the auth server's fixtures
from tools.sandbox_setup import store_grant

ROOT = Path(__file__).resolve().parents[2]
API = "/api.xro/2.0"
ENTITIES = ("suppliers", "accounts", "tax_rates", "tracking_categories", "tracking_options")
# dlt's bookkeeping columns differ from load to load; the data must not.
# found_by and load_id: the watermark and load of the run that wrote a memory row.
VOLATILE_COLUMNS = {"_dlt_load_id", "_dlt_id", "_dlt_parent_id", "_dlt_root_id", "deleted_at",
                    "found_by", "load_id"}
# A big sandbox shared with tests/pipelines (same settings = same process): 3 pages of suppliers.
BIG_SANDBOX = {"suppliers": 3000, "rate_limits": False, "latency_ms": 20}


@dataclass
class RunResult:
    """A finished `xero-elt run --json`."""

    code: int
    summary: dict[str, Any]
    stderr: str
    seconds: float

    def org(self, tenant_id: str) -> dict[str, Any]:
        """The summary's entry for one organisation."""
        return next(o for o in self.summary["organisations"] if o["tenant_id"] == tenant_id)

    def __repr__(self) -> str:
        return (f"RunResult(code={self.code}, summary={self.summary}, "
                f"stderr=...{self.stderr[-1500:]})")


@dataclass
class CliHome:
    """One installation of xero-elt pointed at a sandbox; runs `xero-elt run` as a subprocess."""

    sandbox: SandboxHandle
    app: dict[str, Any]
    home: Path
    db: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    grants: dict[str, str] = field(default_factory=dict)  # tenant id -> grant id

    @property
    def store(self) -> Store:
        return open_store(self.home)

    def env(self, **overrides: str) -> dict[str, str]:
        """The environment a cron job would run with."""
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SOURCES__", "DESTINATION__", "PYTEST_"))}
        env.update(self.sandbox.dlt_env(self.app))
        env.update({
            "XERO_ELT_HOME": str(self.home),
            "DLT_DATA_DIR": str(self.home.parent / "dlt-data"),
            "RUNTIME__DLTHUB_TELEMETRY": "false",
            "DESTINATION__DUCKDB__CREDENTIALS": str(self.db),
            "SOURCES__XERO__BACKOFF_SECONDS": "0.05",
            "SOURCES__XERO__MAX_BACKOFF_SECONDS": "0.3",
            # Runs here must read: schedules (what is due) are tested in test_schedule.py.
            "PIPELINES__SCHEDULE__ENABLED": "false",
            "PYTHONPATH": str(ROOT),
        })
        env.update(self.extra_env)
        env.update(overrides)
        return env

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """Start `python -m pipelines run --json ARGS` (stdout/stderr piped)."""
        return subprocess.Popen(
            [sys.executable, "-m", "pipelines", "run", "--json", *args],
            cwd=ROOT, env=env or self.env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )

    def run(self, *args: str, timeout: float = 180, **env: str) -> RunResult:
        """One run to the end; the JSON summary parsed (empty if stdout was not JSON)."""
        started = time.monotonic()
        proc = self.start(*args, env=self.env(**env))
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(
                f"run did not finish in {timeout}s; stderr:\n{err[-3000:]}") from None
        return finished(proc, out, err, time.monotonic() - started)

    def connect(self, tenant_ids: list[str] | None = None, user: str | None = None) -> str:
        """A grant for these organisations (default: all, one grant), stored as connected."""
        grant = make_grant(self.sandbox, self.app, user=user, tenant_ids=tenant_ids)
        grant_id = connect_grant(self.store, grant, self.sandbox)
        for tenant_id in grant.tenant_ids:
            self.grants[tenant_id] = grant_id
        return grant_id

    def statuses(self) -> dict[str, str]:
        """tenant id -> connection status, from the store."""
        return {c.tenant_id: c.status for c in self.store.list_connections() if c.tenant_id}


def finished(proc: subprocess.Popen[str], out: str, err: str, seconds: float) -> RunResult:
    """A RunResult from a finished process's output."""
    try:
        summary = json.loads(out) if out.strip() else {}
    except ValueError:
        summary = {"_stdout": out}
    return RunResult(proc.returncode, summary, err, seconds)


def connect_grant(store: Store, grant: XeroGrant, sandbox: SandboxHandle) -> str:
    """Store a grant and a `connected` connection per organisation it reaches (reusing the
    organisation's earlier record, as a reconnection through the auth server would)."""
    names = {t["tenantId"]: t["name"] for t in sandbox.tenants()}
    return store_grant(store, grant, names, reconnect=True)


def sole_admin(sandbox: SandboxHandle, tenant_id: str) -> str:
    """The email of an admin of this organisation only (so revoking their grant touches no
    other organisation: Xero removes all of a user's connections to the app)."""
    for user in sandbox.users():
        if user["role"] == "admin" and user["tenant_ids"] == [tenant_id]:
            return user["email"]
    raise AssertionError(f"no single-organisation admin for {tenant_id}")


def wait_until(condition: Callable[[], Any], timeout: float = 60, every: float = 0.02) -> Any:
    """Poll until `condition()` is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"condition not met within {timeout}s")


def kill(proc: subprocess.Popen[str]) -> bool:
    """SIGKILL the process if it still runs; True if it was killed (not already finished)."""
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    return proc.returncode == -signal.SIGKILL


def _comparable(table: str, column: str) -> str:
    """A column as compared: the cursors rows' values (Xero's clock and ours when each run read,
    what dlt's state held before) are left out; that each (organisation, entity) has its row
    is compared."""
    if table == MEMORY_TABLE and column == "last_values":
        return f"CASE WHEN record_id = '{CURSORS_KEY}' THEN NULL ELSE last_values END"
    return f'"{column}"'


def duckdb_contents(db: Path, dataset: str = "xero") -> dict[str, list[tuple[Any, ...]]]:
    """Every data table's rows (dlt's per-load columns left out), sorted: comparable."""
    import duckdb

    out: dict[str, list[tuple[Any, ...]]] = {}
    with duckdb.connect(str(db), read_only=True) as con:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema=? "
            "and table_type='BASE TABLE' and table_name not like '\\_dlt%' escape '\\' "
            "and table_name not in ('sync_runs', 'connections')", [dataset]).fetchall()]
        for table in tables:
            cols = [r[0] for r in con.execute(
                "select column_name from information_schema.columns where table_schema=? "
                "and table_name=? order by column_name", [dataset, table]).fetchall()
                if r[0] not in VOLATILE_COLUMNS]
            select = ", ".join(_comparable(table, c) for c in cols)
            rows = con.execute(f'select {select} from "{dataset}"."{table}"').fetchall()  # noqa: S608
            out[table] = sorted(rows, key=repr)
    return out


def counts_by_tenant(db: Path, dataset: str = "xero") -> dict[tuple[str, str], int]:
    """(table, tenant id) -> rows, for the five entity tables."""
    import duckdb

    out: dict[tuple[str, str], int] = {}
    with duckdb.connect(str(db), read_only=True) as con:
        for table in ENTITIES:
            try:
                rows = con.execute(
                    f'select tenant_id, count(*) from "{dataset}"."{table}" group by 1'  # noqa: S608
                ).fetchall()
            except duckdb.CatalogException:  # a table not created yet counts as empty
                continue
            for tenant_id, count in rows:
                out[(table, tenant_id)] = count
    return out


def expected_counts(sandbox: SandboxHandle) -> dict[tuple[str, str], int]:
    """(table, tenant id) -> rows Xero holds (archived included), from the sandbox."""
    out = {}
    for tenant in sandbox.tenants():
        counts = tenant["counts"]
        for table in ENTITIES:
            out[(table, tenant["tenantId"])] = counts[table]
    return out


@pytest.fixture
def make_home(tmp_path: Path) -> Callable[..., CliHome]:
    """`make_home(sandbox, app, name="a")`: a fresh installation under tmp_path/name."""

    def make(sandbox: SandboxHandle, app: dict[str, Any], name: str = "home") -> CliHome:
        base = tmp_path / name
        base.mkdir()
        home = base / "xero-elt-home"
        home.mkdir(mode=0o700)  # as xero-elt makes it: an open one gets a warning
        return CliHome(sandbox, app, home, base / "warehouse.duckdb")

    return make


@pytest.fixture
def cli_home(sandbox: SandboxHandle, xero_app: dict[str, Any],
             make_home: Callable[..., CliHome]) -> CliHome:
    """The default sandbox (reset), both organisations connected through one grant."""
    home = make_home(sandbox, xero_app)
    home.connect()
    return home


@pytest.fixture
def big_sandbox(sandbox_factory: Callable[..., SandboxHandle]) -> SandboxHandle:
    """3,000 suppliers per organisation (three pages), 20 ms latency, limits off; reset."""
    big = sandbox_factory(**BIG_SANDBOX)
    big.reset()
    return big


@pytest.fixture
def big_home(big_sandbox: SandboxHandle, make_home: Callable[..., CliHome]) -> CliHome:
    """The big sandbox; each organisation connected through its own admin's grant."""
    app = big_sandbox.create_app(["http://127.0.0.1:8765/callback"], name="hardening")
    home = make_home(big_sandbox, app)
    for tenant_id in big_sandbox.tenant_ids():
        home.connect([tenant_id], user=sole_admin(big_sandbox, tenant_id))
    return home


# --- PostgreSQL -------------------------------------------------------------------------------

# The server trusts loopback; the password is ignored (a DSN without one works too).
POSTGRES_SERVER = os.environ.get(
    "XERO_ELT_TEST_POSTGRES", "postgresql://postgres:postgres@127.0.0.1:5432/postgres"
)


def postgres_unavailable(reason: str) -> None:
    """Skip with the reason, or fail under CI=true (CI must run the PostgreSQL tests)."""
    message = f"PostgreSQL not reachable at {POSTGRES_SERVER}: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message + " (CI=true: PostgreSQL tests must run)", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def hardening_postgres() -> Iterator[str]:
    """A throwaway database for this session's hardening tests; its DSN. Dropped after."""
    import secrets

    import psycopg2

    try:
        admin = psycopg2.connect(POSTGRES_SERVER, connect_timeout=3)
    except psycopg2.OperationalError as exc:
        postgres_unavailable(" ".join(str(exc).split()))
    admin.autocommit = True
    name = f"xero_elt_hardening_{secrets.token_hex(4)}"
    with admin.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_SERVER.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()


def postgres_contents(dsn: str, dataset: str) -> dict[str, list[tuple[Any, ...]]]:
    """As `duckdb_contents`, for a PostgreSQL schema."""
    import psycopg2

    out: dict[str, list[tuple[Any, ...]]] = {}
    with psycopg2.connect(dsn) as con, con.cursor() as cur:
        cur.execute(
            "select table_name from information_schema.tables where table_schema=%s "
            "and table_type='BASE TABLE' and table_name not like '\\_dlt%%' "
            "and table_name not in ('sync_runs', 'connections')", (dataset,))
        for (table,) in cur.fetchall():
            cur.execute(
                "select column_name from information_schema.columns where table_schema=%s "
                "and table_name=%s order by column_name", (dataset, table))
            cols = [r[0] for r in cur.fetchall() if r[0] not in VOLATILE_COLUMNS]
            select = ", ".join(_comparable(table, c) for c in cols)
            cur.execute(f'select {select} from "{dataset}"."{table}"')  # noqa: S608
            out[table] = sorted(cur.fetchall(), key=repr)
    con.close()
    return out
