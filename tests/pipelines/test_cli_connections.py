"""The connection commands of `xero-elt`: invite, connections, import, disconnect, status."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time

from pipelines.cli import main
from sandbox.handle import SandboxHandle, XeroGrant
from store import open_store
from tests.connector.conftest import connect_tenants


@pytest.fixture
def cli_env(sandbox: SandboxHandle, xero_app: dict[str, Any], tmp_home: Path,
            tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key, value in sandbox.dlt_env(xero_app).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS", str(tmp_path / "x.duckdb"))
    monkeypatch.setenv("AUTH_SERVER__PUBLIC_URL", "http://127.0.0.1:8765")
    return tmp_home


def test_invite_create_prints_id_and_link_and_writes_the_email(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["invite", "create", "--company", "Acme Ltd", "--email", "ap@acme.test"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("invite con_")
    assert out[1].startswith("link http://127.0.0.1:8765/invite/")
    emails = list((cli_env / "outbox").glob("*.eml"))
    assert len(emails) == 1
    assert "[ACTION REQUIRED]" in emails[0].read_text()

    invite_id = out[0].split()[1]
    assert main(["invite", "resend", invite_id]) == 0
    resent = capsys.readouterr().out.splitlines()
    assert resent[1] != out[1]

    assert main(["connections", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    rows = doc["connections"]
    assert doc["connection_limit"] == {"connected": 0, "max_connections": 25, "level": "ok",
                                       "warning": None}
    assert [r["connection_id"] for r in rows] == [invite_id]
    assert rows[0]["status"] == "invited"
    assert not any("token" in key or "hash" in key for key in rows[0])


def test_connections_warn_as_the_connection_limit_nears(
    cli_env: Path, sandbox: SandboxHandle, xero_grant: XeroGrant,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    connect_tenants(open_store(cli_env), xero_grant, sandbox)  # two organisations connected
    assert main(["connections"]) == 0
    assert "warning" not in capsys.readouterr().out  # 2 of 25

    monkeypatch.setenv("AUTH_SERVER__MAX_CONNECTIONS", "2")
    assert main(["connections"]) == 0
    out = capsys.readouterr().out
    assert "warning: 2 of 2 organisations connected: the Xero app's connection limit is " \
           "reached" in out
    assert main(["connections", "--json"]) == 0
    limit = json.loads(capsys.readouterr().out)["connection_limit"]
    assert (limit["connected"], limit["max_connections"], limit["level"]) == (2, 2, "reached")
    assert limit["warning"].startswith("2 of 2 organisations connected")

    monkeypatch.setenv("AUTH_SERVER__MAX_CONNECTIONS", "0")
    assert main(["connections"]) == 2  # bad configuration
    assert "max_connections" in capsys.readouterr().err


def test_bad_invite_input_exits_2(cli_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["invite", "create", "--company", "Acme", "--email", "not-an-email"]) == 2
    assert "email" in capsys.readouterr().err.lower()
    assert main(["invite", "resend", "con_doesnotexist"]) == 2


def test_import_from_stdin_then_disconnect(
    cli_env: Path, sandbox: SandboxHandle, xero_grant: XeroGrant,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    token_json = json.dumps({"refresh_token": xero_grant.refresh_token})
    monkeypatch.setattr("sys.stdin", io.StringIO(token_json))
    assert main(["connections", "import", "--token-file", "-"]) == 0
    out = capsys.readouterr().out
    assert out.count("connected con_") == len(xero_grant.tenant_ids)
    assert xero_grant.refresh_token not in out
    store = open_store(cli_env)
    conns = store.list_connections(["connected"])
    assert {c.tenant_id for c in conns} == set(xero_grant.tenant_ids)
    # The imported refresh token was rotated at once and the rotated one stored.
    assert store.get_grant(conns[0].grant_id).refresh_token != xero_grant.refresh_token

    assert main(["disconnect", conns[0].connection_id]) == 0
    assert store.get_connection(conns[0].connection_id).status == "disconnected"
    remaining = {c["tenantId"] for c in sandbox.connections()}
    assert conns[0].tenant_id not in remaining


def test_import_rejects_a_file_without_a_refresh_token(
    cli_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "token.json"
    path.write_text(json.dumps({"access_token": "x"}))
    assert main(["connections", "import", "--token-file", str(path)]) == 2
    assert main(["connections", "import", "--token-file", str(tmp_path / "missing")]) == 2


def test_status_warns_before_the_refresh_token_dies(
    cli_env: Path, sandbox: SandboxHandle, xero_grant: XeroGrant,
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = open_store(cli_env)
    connect_tenants(store, xero_grant, sandbox)
    assert main(["run"]) == 0
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["warnings"] == []
    assert {o["status"] for o in doc["organisations"]} == {"connected"}
    assert all("suppliers" in o["entities"] for o in doc["organisations"])
    with freeze_time(datetime.now(UTC) + timedelta(days=50)):
        assert main(["status"]) == 1
        text = capsys.readouterr().out
    assert "refresh token was last used 50 days ago" in text
