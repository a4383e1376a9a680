"""Concurrency: `xero-elt run`s started at the same moment, and the credential store written by a
sync (refreshing grants) while an admin creates, resends and connects invites.

Xero rotates refresh tokens on every use, so two writers that lose or swap a rotation burn the
grant; each check ends by proving the grants still refresh (after the sandbox's clock has moved
past the 30-minute grace in which a superseded refresh token would still be accepted).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from sandbox.handle import SandboxHandle
from store import Store
from store.token_provider import access_token_for
from tests.auth_server.conftest import start_auth, stop_auth, xero_settings_for
from tests.auth_server.helpers import RunningAuth
from tests.hardening.conftest import API, ROOT, CliHome, finished, sole_admin

pytestmark = pytest.mark.hardening
INVITE_LINK = re.compile(r"https?://[^<\"\s]+/invite/[A-Za-z0-9_-]{43}")


def refresh_works(sandbox: SandboxHandle, app: dict[str, Any], store: Store,
                  grant_id: str) -> list[str]:
    """Force a refresh of the grant (as after a 401) and use the new token; the tenants it
    reaches. Fails if the stored refresh token is not the one Xero holds as current."""
    settings = xero_settings_for(sandbox, app)
    before = store.get_grant(grant_id)
    token = access_token_for(store, settings, grant_id, rejected=before.access_token)
    assert token != before.access_token
    assert store.get_grant(grant_id).refresh_token != before.refresh_token  # rotated and saved
    answer = httpx.get(sandbox.connections_url, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    return sorted(c["tenantId"] for c in answer.json())


@pytest.mark.parametrize("runs", [2, 5])
def test_runs_started_together_one_runs_the_rest_exit_75_and_no_token_is_burned(
    cli_home: CliHome, runs: int,
) -> None:
    home, sb = cli_home, cli_home.sandbox
    store = home.store
    (grant_id,) = set(home.grants.values())
    grant = store.get_grant(grant_id)
    # The stored access token looks expired: any run that got past the lock would refresh.
    store.save_rotated_tokens(grant_id, {"access_token": grant.access_token,
                                         "refresh_token": grant.refresh_token, "expires_in": 0})
    # The winner holds the lock a while: long enough for every other run to reach it, even on
    # two busy cores where five interpreters importing dlt at once take seconds.
    sb.fault(kind="slow", seconds=6, path=API, count=1)
    sb.clear_requests()

    procs = [home.start() for _ in range(runs)]
    results = [finished(p, *p.communicate(timeout=180), 0) for p in procs]

    codes = sorted(r.code for r in results)
    assert codes == [0] + [75] * (runs - 1), results
    for loser in (r for r in results if r.code == 75):
        lines = [ln for ln in loser.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, loser.stderr  # one line, for cron mail
        assert "another xero-elt run" in lines[0]
        assert loser.summary["outcome"] == "locked"
    winner = next(r for r in results if r.code == 0)
    assert winner.summary["token_calls"] == 1
    assert len(sb.requests(path="/connect/token")) == 1  # only the winner refreshed
    sb.advance(31 * 60)  # past the grace: only the current refresh token still works
    assert refresh_works(sb, home.app, store, grant_id) == sorted(sb.tenant_ids())


def test_an_unusable_lock_file_fails_the_run_with_one_clear_line(cli_home: CliHome) -> None:
    (cli_home.home / "run.lock").mkdir()
    result = cli_home.run()
    assert result.code == 1, result
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "run.lock" in result.stderr


def _admin_churn(auth: RunningAuth, stop: threading.Event, errors: list[str],
                 links: dict[str, str]) -> None:
    """The admin page: create invites and resend them over and over (bearer API)."""
    with auth.admin() as admin:
        for i in range(3):
            page = admin.post("/admin/invites", data={"company": f"Churn {i}",
                                                      "email": f"c{i}@example.test"})
            if page.status_code != 200:
                errors.append(f"create: {page.status_code}")
        ids = [c.connection_id for c in auth.store.list_connections()
               if c.company.startswith("Churn")]
        while not stop.is_set():
            for connection_id in ids:
                page = admin.post(f"/admin/connections/{connection_id}/resend")
                if page.status_code != 200:
                    errors.append(f"resend {connection_id}: {page.status_code}")
                    continue
                found = INVITE_LINK.search(page.text)
                if found is None:
                    errors.append(f"resend {connection_id}: no link shown")
                    continue
                links[connection_id] = found.group(0)


def test_a_sync_refreshing_while_the_admin_connects_and_resends_loses_no_token(
    sandbox: SandboxHandle, tmp_home: Path,
) -> None:
    auth = start_auth(sandbox, tmp_home)
    try:
        org_a, org_b = sandbox.tenant_ids()
        users = {t: next(u for u in sandbox.users() if u["email"] == sole_admin(sandbox, t))
                 for t in (org_a, org_b)}
        _, link_a = _invite(auth, "Org A")
        first = auth.customer()
        assert first.connect(link_a, users[org_a]).status_code == 200
        grant_a = auth.store.connections_for_tenant(org_a)[0].grant_id
        assert grant_a
        conn_b, link_b = _invite(auth, "Org B")

        env = {**_env(auth, sandbox, tmp_home)}
        worker = subprocess.Popen(
            [sys.executable, "-m", "tests.hardening.store_worker", "refresh", "4", grant_a],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        stop, errors, links = threading.Event(), [], {}
        churn = threading.Thread(target=_admin_churn, args=(auth, stop, errors, links))
        churn.start()
        try:
            second = auth.customer()  # organisation B connects meanwhile: a new grant
            assert second.connect(link_b, users[org_b]).status_code == 200
            out, err = worker.communicate(timeout=60)
        finally:
            stop.set()
            churn.join(30)
        report = json.loads(out)
        assert worker.returncode == 0, err
        assert report["errors"] == [], report
        assert report["refreshes"] >= 3, report
        assert errors == []

        store = auth.store
        grant_b = store.get_connection(conn_b).grant_id
        assert grant_b
        assert grant_b != grant_a
        a, b = store.get_grant(grant_a), store.get_grant(grant_b)
        assert {a.refresh_token, a.access_token}.isdisjoint({b.refresh_token, b.access_token})
        by_tenant = {c.tenant_id: c for c in store.list_connections() if c.tenant_id}
        assert by_tenant[org_a].grant_id == grant_a
        assert by_tenant[org_a].status == by_tenant[org_b].status == "connected"
        assert by_tenant[org_a].sync_state == "synced"  # the sync's writes landed too
        # Only each invite's latest link works.
        for connection_id, link in links.items():
            with auth.http() as browser:  # one browser each: a second link would ask first
                assert browser.get(link).status_code == 303, connection_id
        sandbox.advance(31 * 60)
        assert refresh_works(sandbox, auth.app, store, grant_a) == [org_a]
        assert refresh_works(sandbox, auth.app, store, grant_b) == [org_b]
    finally:
        stop_auth(auth)


def _invite(auth: RunningAuth, company: str) -> tuple[str, str]:
    from auth_server.invites import create_invite

    conn, link = create_invite(auth.store, auth.settings, company, "owner@example.test")
    return conn.connection_id, link


def _env(auth: RunningAuth, sandbox: SandboxHandle, home: Path) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SOURCES__")}
    env.update(sandbox.dlt_env(auth.app))
    env.update({"XERO_ELT_HOME": str(home), "PYTHONPATH": str(ROOT)})
    return env
