"""Tokens against the sandbox: rotation, refresh ahead of expiry, the crash between Xero rotating
and us saving, concurrent refreshes (threads and processes), and dead grants."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from freezegun import freeze_time

from connector.errors import GrantInvalid
from connector.settings import XeroSettings
from sandbox.handle import REPO_ROOT, SandboxHandle, XeroGrant, make_grant
from store import Store, open_store
from store.token_provider import access_token_for
from tests.connector.conftest import Loader, connect_tenants, sandbox_settings


def token_calls(sandbox: SandboxHandle) -> list[dict]:
    return [r for r in sandbox.requests(path="/connect/token") if r["method"] == "POST"]


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_an_expired_access_token_is_refreshed_once_and_the_rotation_saved(
    loader: Loader, store: Store, sandbox: SandboxHandle, grant_id: str
) -> None:
    loader.run(entities=["accounts"])
    before = store.get_grant(grant_id)
    sandbox.advance(1801)  # Xero's clock: the access token is now expired; ours does not know
    sandbox.clear_requests()

    stats = loader.run()

    after = store.get_grant(grant_id)
    assert after.refresh_token != before.refresh_token
    assert after.access_token != before.access_token
    assert len(token_calls(sandbox)) == 1  # both organisations hit 401; one refresh between them
    assert stats.identity_calls["token"] == 1
    assert {e.outcome for e in stats.entries()} == {"ok"}
    assert loader.count("suppliers") == sum(t["counts"]["suppliers"] for t in sandbox.tenants())


def test_a_token_close_to_expiry_is_refreshed_before_use(
    store: Store, settings: XeroSettings, sandbox: SandboxHandle, grant_id: str
) -> None:
    before = store.get_grant(grant_id)
    sandbox.clear_requests()
    with freeze_time(before.access_expires_at - timedelta(seconds=60), tick=True):
        token = access_token_for(store, settings, grant_id)
        # fresh now: asking again does not refresh again
        assert access_token_for(store, settings, grant_id) == token
    assert token != before.access_token
    assert store.get_grant(grant_id).access_token == token
    assert len(token_calls(sandbox)) == 1


def test_crash_between_rotation_and_save_recovers_within_the_grace_period(
    loader: Loader, store: Store, sandbox: SandboxHandle, xero_grant: XeroGrant, grant_id: str
) -> None:
    stored = store.get_grant(grant_id)
    # Xero rotates, but the answer is lost before we save it (we "crashed").
    lost = httpx.post(sandbox.token_url, auth=(xero_grant.client_id, xero_grant.client_secret),
                      data={"grant_type": "refresh_token", "refresh_token": stored.refresh_token})
    assert lost.status_code == 200
    sandbox.advance(600)  # ten minutes later, well inside Xero's 30-minute grace

    stats = loader.run()

    assert {e.outcome for e in stats.entries()} == {"ok"}
    assert store.get_grant(grant_id).refresh_token not in (stored.refresh_token,
                                                           lost.json()["refresh_token"])
    assert store.get_grant(grant_id).status == "active"
    assert loader.count("accounts") > 0
    # and the chain goes on: the newly saved refresh token works
    sandbox.advance(1801)
    assert {e.outcome for e in loader.run().entries()} == {"ok"}


def test_after_the_grace_period_the_grant_needs_reconnection(
    loader: Loader, store: Store, sandbox: SandboxHandle, xero_grant: XeroGrant, grant_id: str
) -> None:
    stored = store.get_grant(grant_id)
    httpx.post(sandbox.token_url, auth=(xero_grant.client_id, xero_grant.client_secret),
               data={"grant_type": "refresh_token", "refresh_token": stored.refresh_token})
    sandbox.advance(1801 + 1800)

    stats = loader.run()

    assert {e.outcome for e in stats.entries()} == {"failed"}
    assert all("invalid_grant" in (e.error or "") for e in stats.entries())
    assert store.get_grant(grant_id).status == "invalid"
    assert {c.status for c in store.list_connections()} == {"needs_reconnection"}
    assert stored.refresh_token not in json.dumps(stats.as_dicts(), default=str)


def test_concurrent_refreshes_in_threads_make_one_call(
    store: Store, settings: XeroSettings, sandbox: SandboxHandle, grant_id: str
) -> None:
    rejected = store.get_grant(grant_id).access_token
    sandbox.clear_requests()
    results: list[str] = []
    start = threading.Barrier(8)

    def refresh() -> None:
        start.wait()
        results.append(access_token_for(open_store(store.home), settings, grant_id,
                                        rejected=rejected))

    threads = [threading.Thread(target=refresh) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(results) == 8
    assert len(set(results)) == 1
    assert len(token_calls(sandbox)) == 1
    assert store.get_grant(grant_id).access_token == results[0]


def _env(sandbox: SandboxHandle, grant: XeroGrant, home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(sandbox.dlt_env({"client_id": grant.client_id,
                                "client_secret": grant.client_secret}))
    env["XERO_ELT_HOME"] = str(home)
    env["PYTHONPATH"] = str(REPO_ROOT)
    return env


def test_concurrent_refreshes_in_processes_make_one_call(
    store: Store, sandbox: SandboxHandle, xero_grant: XeroGrant, grant_id: str, tmp_home: Path
) -> None:
    rejected = sha(store.get_grant(grant_id).access_token)
    sandbox.clear_requests()
    env = _env(sandbox, xero_grant, tmp_home)
    workers = [
        subprocess.Popen([sys.executable, "-m", "tests.connector.proc_worker", "token",
                          grant_id, rejected], cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    outputs = [w.communicate(timeout=120) for w in workers]

    assert [w.returncode for w in workers] == [0, 0, 0], [o[1][-500:] for o in outputs]
    shas = {json.loads(out.strip().splitlines()[-1])["token_sha"] for out, _ in outputs}
    assert shas == {sha(store.get_grant(grant_id).access_token)}
    assert len(token_calls(sandbox)) == 1


@pytest.mark.slow
def test_two_concurrent_runs_do_not_burn_the_grant(
    store: Store, sandbox: SandboxHandle, xero_grant: XeroGrant, grant_id: str, tmp_home: Path,
    tmp_path: Path,
) -> None:
    sandbox.advance(1801)  # both runs will find the access token expired
    sandbox.clear_requests()
    env = _env(sandbox, xero_grant, tmp_home)
    env["DLT_DATA_DIR"] = str(tmp_path / "dlt")
    runs = [
        subprocess.Popen([sys.executable, "-m", "tests.connector.proc_worker", "load",
                          str(tmp_path / f"run{i}.duckdb")], cwd=REPO_ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outputs = [r.communicate(timeout=240) for r in runs]

    assert [r.returncode for r in runs] == [0, 0], [o[1][-800:] for o in outputs]
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outputs]
    assert all(r["outcomes"] == ["ok"] for r in results)
    total = sum(t["counts"]["suppliers"] for t in sandbox.tenants())
    assert all(r["suppliers"] == total for r in results)
    assert len(token_calls(sandbox)) == 1
    assert store.get_grant(grant_id).status == "active"


def test_a_revoked_grant_needs_reconnection_while_the_other_organisation_loads(
    tmp_path: Path, tmp_home: Path, sandbox: SandboxHandle, xero_app: dict
) -> None:
    tenant_a, tenant_b = sandbox.tenant_ids()
    grant_a = make_grant(sandbox, xero_app, tenant_ids=[tenant_a])
    grant_b = make_grant(sandbox, xero_app, tenant_ids=[tenant_b])
    store = open_store(tmp_home)
    id_a = connect_tenants(store, grant_a, sandbox)
    connect_tenants(store, grant_b, sandbox)
    loader = Loader(tmp_path, store, sandbox_settings(sandbox, grant_a))
    sandbox.revoke(refresh_token=grant_a.refresh_token)

    stats = loader.run()

    assert {e.outcome for e in stats.entries() if e.tenant_id == tenant_b} == {"ok"}
    assert {e.outcome for e in stats.entries() if e.tenant_id == tenant_a} == {"failed"}
    assert loader.count("suppliers", f"tenant_id = '{tenant_b}'") > 0
    assert loader.count("suppliers", f"tenant_id = '{tenant_a}'") == 0
    assert store.get_grant(id_a).status == "invalid"
    statuses = {c.tenant_id: c.status for c in store.list_connections()}
    assert statuses == {tenant_a: "needs_reconnection", tenant_b: "connected"}
    with pytest.raises(GrantInvalid):  # and it stays dead without calling Xero again
        access_token_for(store, loader.settings, id_a)


def test_a_grant_refreshed_long_ago_is_rotated_on_demand(
    store: Store, settings: XeroSettings, grant_id: str
) -> None:
    """The pipelines layer keeps 60-day refresh tokens alive by passing the current token as
    rejected; the rotation is saved before the new token is returned."""
    before = store.get_grant(grant_id)
    token = access_token_for(store, settings, grant_id, rejected=before.access_token,
                             now=datetime.now(UTC))
    after = store.get_grant(grant_id)
    assert token == after.access_token != before.access_token
    assert after.refreshed_at >= before.refreshed_at
