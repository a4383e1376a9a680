"""Fixtures for the auth server: a server per test (in-process, free port) against the sandbox."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auth_server.server import make_server
from auth_server.settings import AuthServerSettings
from connector.settings import XeroSettings
from sandbox.handle import SandboxHandle
from store import Connection, open_store
from tests.auth_server.helpers import ADMIN_TOKEN, RunningAuth

PRODUCT = "Acme Finance"


def xero_settings_for(sandbox: SandboxHandle, app: dict[str, Any]) -> XeroSettings:
    """Connector settings pointing at the sandbox, with this app's credentials."""
    return XeroSettings(
        client_id=app["client_id"], client_secret=app.get("client_secret") or "",
        authorize_url=sandbox.authorize_url, token_url=sandbox.token_url,
        revocation_url=sandbox.revocation_url, connections_url=sandbox.connections_url,
        api_url=sandbox.api_url, max_retries=1, backoff_seconds=0.01,
    )


def start_auth(sandbox: SandboxHandle, home: Path, *, on_connected: Any = "record",
               **settings: Any) -> RunningAuth:
    """Bind a server on a free port, register a sandbox app for its callback, serve."""
    store = open_store(home)
    synced: list[Connection] = []

    def record(conn: Connection) -> int:
        synced.append(conn)
        return 123

    values = {"product_name": PRODUCT, "admin_token": ADMIN_TOKEN, **settings}
    server = make_server(
        "127.0.0.1", 0, store=store, settings=AuthServerSettings(**values),
        xero_settings=XeroSettings(), on_connected=record if on_connected == "record"
        else on_connected,
    )
    redirect_uri = server.app.settings.redirect_uri
    app = sandbox.create_app([redirect_uri], name=PRODUCT)
    server.app.xero = xero_settings_for(sandbox, app)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    return RunningAuth(server, thread, store, sandbox, app, synced)


def stop_auth(auth: RunningAuth) -> None:
    auth.server.shutdown()
    auth.server.app.first_sync.join(10)
    auth.server.server_close()
    auth.thread.join(5)


@pytest.fixture
def auth(sandbox: SandboxHandle, tmp_home: Path) -> Iterator[RunningAuth]:
    """A running auth server with a fresh store, a sandbox app, and a recording first sync."""
    running = start_auth(sandbox, tmp_home)
    yield running
    stop_auth(running)


@pytest.fixture
def org(sandbox: SandboxHandle) -> dict[str, Any]:
    """The first organisation, and an admin user of it."""
    tenant = sandbox.tenants()[0]
    return {**tenant, "admin": sandbox.admin([tenant["tenantId"]])}


@pytest.fixture
def auth_duckdb(
    sandbox: SandboxHandle, tmp_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[RunningAuth, Path]]:
    """An auth server whose first sync is the real default: the `pipelines run` subprocess,
    loading into a DuckDB file (returned with the server)."""
    database = tmp_path / "warehouse.duckdb"
    running = start_auth(sandbox, tmp_home, on_connected=None)
    for name, value in sandbox.dlt_env(running.app).items():
        monkeypatch.setenv(name, value)  # the subprocess inherits the environment
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(database))
    yield running, database
    stop_auth(running)


def duckdb_counts(database: Path, tenant_id: str) -> dict[str, int]:
    """Rows per entity table for one organisation."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as db:
        return {
            table: db.execute(
                f"SELECT count(*) FROM xero.{table} WHERE tenant_id = ?",  # noqa: S608
                [tenant_id],
            ).fetchone()[0]  # type: ignore[index]
            for table in ("suppliers", "accounts", "tax_rates", "tracking_categories")
        }
