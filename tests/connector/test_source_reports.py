"""The connector reports what Xero took away and writes no status itself; the caller records
it. And every setting is declared once, typed and described."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import dlt
import pytest

from auth_server.settings import AuthServerSettings
from auth_server.settings import load_settings as auth_settings
from connector.config import describe
from connector.settings import XeroSettings, load_settings
from connector.source import make_source
from connector.stats import AccessLost
from pipelines.loading import record_access_lost
from sandbox.handle import SandboxHandle, XeroGrant
from store import Store
from store.token_provider import StoreTokens


def test_a_403_is_reported_not_written_and_the_caller_records_it(
    store: Store, settings: XeroSettings, grant_id: str, sandbox: SandboxHandle,
    xero_grant: XeroGrant, tmp_path: Path,
) -> None:
    tenant_a, tenant_b = sandbox.tenant_ids()
    sandbox.disconnect(tenant_a, client_id=xero_grant.client_id)
    source = make_source(tokens=StoreTokens(store, settings), settings=settings,
                         entities=["accounts"])
    pipeline = dlt.pipeline(pipeline_name="xero_reports", dataset_name="xero",
                            destination=dlt.destinations.duckdb(str(tmp_path / "r.duckdb")),
                            pipelines_dir=str(tmp_path / "p"))
    pipeline.run(source, loader_file_format="parquet")

    assert source.stats.access_lost() == [AccessLost(
        "disconnected", "Xero no longer lists this organisation for the app (403)", grant_id,
        tenant_a)]
    assert {c.status for c in store.list_connections()} == {"connected"}  # nothing written

    record_access_lost(store, source.stats)
    statuses = {c.tenant_id: c.status for c in store.list_connections()}
    assert statuses == {tenant_a: "disconnected", tenant_b: "connected"}


@pytest.mark.parametrize("cls", [XeroSettings, AuthServerSettings])
def test_every_setting_is_typed_and_described(cls: type) -> None:
    described = describe(cls)
    undescribed = [f.name for f in dataclasses.fields(cls) if f.name not in described]
    # The auth server's host, port and a few SMTP fields are named by their key alone.
    allowed = {"host", "port", "smtp_port", "smtp_username", "smtp_password", "smtp_starttls",
               "smtp_ssl"} if cls is AuthServerSettings else set()
    assert set(undescribed) <= allowed


def test_both_read_settings_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCES__XERO__TIMEOUT", "7.5")
    monkeypatch.setenv("SOURCES__XERO__REFRESH_TOKEN", "rt-from-env")
    monkeypatch.setenv("AUTH_SERVER__INVITE_TTL_DAYS", "3")
    xero = load_settings()
    assert xero.timeout == 7.5
    assert xero.refresh_token == "rt-from-env"
    assert "rt-from-env" not in repr(xero)
    assert auth_settings().invite_ttl_days == 3
    monkeypatch.setenv("SOURCES__XERO__TIMEOUT", "soon")
    with pytest.raises(Exception, match=r"sources\.xero\.timeout cannot be read as float"):
        load_settings()
