"""A destination is checked before any Xero call: a bad or unreachable one exits 2 with one line
naming the setting, and spends no API call. A PostgreSQL DSN without a password is accepted."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from sandbox.handle import SandboxHandle
from store import Store
from tests.pipelines.conftest import Warehouse


@pytest.mark.parametrize("dsn", [
    "postgresql://loader:secret-pw@127.0.0.1:1/warehouse",  # nobody listens on port 1
    "postgresql://loader:secret-pw@127.0.0.1:5432",  # no database named
])
def test_a_bad_destination_exits_2_before_any_xero_call(
    connected_store: Store, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch, dsn: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", dsn)
    sandbox.clear_requests()

    report = Warehouse(connected_store, "postgres", "xero_bad").run()

    assert report.exit_code == 2
    error = report.summary["error"]
    assert "destination.postgres.credentials" in error
    assert "\n" not in error
    assert "secret-pw" not in error
    assert "secret-pw" not in capsys.readouterr().err
    assert sandbox.requests() == []  # not one token, /connections or API call


@pytest.mark.postgres
def test_a_postgres_dsn_without_a_password_loads(
    connected_store: Store, postgres_database: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    parts = urlsplit(postgres_database)
    host = f"{parts.username}@{parts.hostname}:{parts.port or 5432}"
    monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS",
                       urlunsplit((parts.scheme, host, parts.path, "", "")))
    monkeypatch.delenv("PGPASSWORD", raising=False)
    warehouse = Warehouse(connected_store, "postgres", "xero_nopw")

    warehouse.run_ok(entities=["accounts"])

    assert warehouse.counts(["accounts"])["accounts"] > 0
