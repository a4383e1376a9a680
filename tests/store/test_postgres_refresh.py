"""Single-flight token refresh across machines: several processes, each with its own
XERO_ELT_HOME, sharing one PostgreSQL store, refreshing one grant against the sandbox at once.

Xero rotates the refresh token on every use, so a second refresh racing the first burns the
grant; the advisory lock must make it one token call per expiry, and a holder killed with SIGKILL
must not leave the lock behind (PostgreSQL ends the session, and with it the lock).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from store import Store, open_store
from store.token_provider import access_token_for
from tests.connector.conftest import connect_tenants, sandbox_settings
from tests.sandbox_handle import REPO_ROOT, SandboxHandle, XeroGrant

pytestmark = pytest.mark.postgres
WORKERS = 4
EXPIRIES = 3


def sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_calls(sandbox: SandboxHandle) -> int:
    return len([r for r in sandbox.requests(path="/connect/token") if r["method"] == "POST"])


class Machines:
    """Worker processes, each a "machine" of its own (own XERO_ELT_HOME), on one store."""

    def __init__(self, tmp_path: Path, sandbox: SandboxHandle, grant: XeroGrant, url: str,
                 key: str) -> None:
        self.tmp_path = tmp_path
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
        env.update(sandbox.dlt_env({"client_id": grant.client_id,
                                    "client_secret": grant.client_secret}))
        env.update({"XERO_ELT_STORE_URL": url, "XERO_ELT_SECRET_KEY": key,
                    "PYTHONPATH": str(REPO_ROOT), "RUNTIME__DLTHUB_TELEMETRY": "false"})
        self.env = env
        self.started = 0

    def start(self, *args: str) -> subprocess.Popen[str]:
        self.started += 1
        home = self.tmp_path / f"machine-{self.started}"
        env = {**self.env, "XERO_ELT_HOME": str(home), "DLT_DATA_DIR": str(home / "dlt")}
        return subprocess.Popen([sys.executable, "-m", "tests.store.refresh_worker", *args],
                                cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def refresh_together(self, grant_id: str, count: int) -> list[dict[str, Any]]:
        """Start ``count`` workers, let them all call at once, and collect their answers."""
        go = self.tmp_path / f"go-{self.started}"
        workers = [self.start("refresh", grant_id, str(go)) for _ in range(count)]
        for worker in workers:  # every interpreter has imported everything and opened the store
            assert worker.stdout is not None
            line = worker.stdout.readline().strip()
            assert line == "ready", (line, worker.stderr.read() if worker.stderr else "")
        go.touch()
        results = []
        for worker in workers:
            out, err = worker.communicate(timeout=120)
            assert worker.returncode == 0, (out, err[-2000:])
            results.append(json.loads(out.strip().splitlines()[-1]))
        return results


@pytest.fixture
def shared(postgres_url: str, secret_key: str, tmp_path: Path, sandbox: SandboxHandle,
           xero_grant: XeroGrant) -> tuple[Store, str, Machines]:
    """A PostgreSQL store holding the sandbox grant (both organisations connected)."""
    store = open_store(tmp_path / "machine-0", url=postgres_url)
    grant_id = connect_tenants(store, xero_grant, sandbox)
    return store, grant_id, Machines(tmp_path, sandbox, xero_grant, postgres_url, secret_key)


def expire_locally(store: Store, grant_id: str) -> None:
    """Our record of the access token says it has expired (the tokens stay as they are)."""
    grant = store.get_grant(grant_id)
    store.save_rotated_tokens(grant_id, {"access_token": grant.access_token,
                                         "refresh_token": grant.refresh_token, "expires_in": 0})


def chain_is_intact(sandbox: SandboxHandle, grant: XeroGrant, store: Store,
                    grant_id: str) -> None:
    """Past Xero's 30-minute grace only the current refresh token works: refresh and call."""
    sandbox.advance(31 * 60)
    before = store.get_grant(grant_id)
    token = access_token_for(store, sandbox_settings(sandbox, grant), grant_id,
                             rejected=before.access_token)
    answer = httpx.get(sandbox.connections_url, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert sorted(c["tenantId"] for c in answer.json()) == sorted(grant.tenant_ids)


def test_processes_on_separate_homes_make_one_token_call_per_expiry(
    shared: tuple[Store, str, Machines], sandbox: SandboxHandle, xero_grant: XeroGrant,
) -> None:
    store, grant_id, machines = shared
    calls_per_expiry = []
    for _ in range(EXPIRIES):
        expire_locally(store, grant_id)
        sandbox.advance(1801)  # and at Xero too
        sandbox.clear_requests()

        results = machines.refresh_together(grant_id, WORKERS)

        calls_per_expiry.append(token_calls(sandbox))
        assert {r["token_sha"] for r in results} == {sha(store.get_grant(grant_id).access_token)}
    assert calls_per_expiry == [1] * EXPIRIES
    assert store.get_grant(grant_id).status == "active"  # nobody met invalid_grant
    chain_is_intact(sandbox, xero_grant, store, grant_id)


def advisory_locks_held(store: Store) -> int:
    rows = store._read("SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory'"
                       " AND granted AND database = (SELECT oid FROM pg_database"
                       " WHERE datname = current_database())")
    return int(rows[0]["n"])


def test_a_holder_killed_with_sigkill_leaves_no_stuck_lock(
    shared: tuple[Store, str, Machines], sandbox: SandboxHandle, xero_grant: XeroGrant,
) -> None:
    store, grant_id, machines = shared
    holder = machines.start("hold", grant_id)
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "holding"
    assert advisory_locks_held(store) == 1
    with pytest.raises(Exception, match="timed out"), store.grant_lock(grant_id, timeout=0.5):
        pass  # really held, across processes

    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(10)
    killed_at = time.monotonic()
    with store.grant_lock(grant_id, timeout=10):
        freed_after = time.monotonic() - killed_at
    assert freed_after < 5, freed_after
    assert advisory_locks_held(store) == 0

    # and the others carry on at once: one refresh between them, no invalid_grant
    expire_locally(store, grant_id)
    sandbox.clear_requests()
    results = machines.refresh_together(grant_id, 3)
    assert len({r["token_sha"] for r in results}) == 1
    assert token_calls(sandbox) == 1
    chain_is_intact(sandbox, xero_grant, store, grant_id)


def test_a_crash_between_rotation_and_save_recovers_within_the_grace_on_postgres(
    shared: tuple[Store, str, Machines], sandbox: SandboxHandle, xero_grant: XeroGrant,
) -> None:
    store, grant_id, machines = shared
    stored = store.get_grant(grant_id)
    # A machine's refresh reached Xero, which rotated, but the machine died before saving.
    lost = httpx.post(sandbox.token_url, auth=(xero_grant.client_id, xero_grant.client_secret),
                      data={"grant_type": "refresh_token", "refresh_token": stored.refresh_token})
    assert lost.status_code == 200
    sandbox.advance(600)  # ten minutes later, inside Xero's 30-minute grace
    expire_locally(store, grant_id)
    sandbox.clear_requests()

    results = machines.refresh_together(grant_id, 2)

    assert len({r["token_sha"] for r in results}) == 1
    assert token_calls(sandbox) == 1
    assert store.get_grant(grant_id).refresh_token not in (stored.refresh_token,
                                                           lost.json()["refresh_token"])
    chain_is_intact(sandbox, xero_grant, store, grant_id)
