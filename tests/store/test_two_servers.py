"""Two `xero-elt serve` processes on one PostgreSQL store: what one server starts, the other
finishes, over real HTTP against the sandbox, as behind a load balancer that does not stick.

The customer opens the invite, chooses Xero and presses Next on server A; Xero's redirect comes
back to server B, which exchanges the code and shows the confirm page; the confirmation lands
there too. An admin signed in on one server is signed in on the other. Everything a flow needs
(the OAuth state and PKCE verifier, the browser's visit, the CSRF key, admin sessions) is in the
store, so no server needs to have seen the earlier steps.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from store import open_store
from tests.auth_server.helpers import ADMIN_TOKEN, csrf_of
from tests.sandbox_handle import REPO_ROOT, SandboxHandle, consent_via_forms

pytestmark = pytest.mark.postgres
INVITE_LINK = re.compile(r"https?://[^<\"\s]+/invite/[A-Za-z0-9_-]{43}")
TENANT = re.compile(r'name="tenant" value="([^"]+)"')


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def two_servers(postgres_url: str, secret_key: str, sandbox: SandboxHandle,
                tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Servers A and B (own XERO_ELT_HOME each) on one store; their base URLs."""
    ports = [free_port(), free_port()]
    app = sandbox.create_app([f"http://127.0.0.1:{p}/callback" for p in ports], name="two")
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("SOURCES__", "AUTH_SERVER__"))}
    base.update(sandbox.dlt_env(app))
    base.update({"XERO_ELT_STORE_URL": postgres_url, "XERO_ELT_SECRET_KEY": secret_key,
                 "AUTH_SERVER__ADMIN_TOKEN": ADMIN_TOKEN, "PYTHONPATH": str(REPO_ROOT),
                 "RUNTIME__DLTHUB_TELEMETRY": "false"})
    servers, urls = [], []
    try:
        for name, port in zip("ab", ports, strict=True):
            home = tmp_path / f"server-{name}"
            home.mkdir()
            env = {**base, "XERO_ELT_HOME": str(home), "DLT_DATA_DIR": str(home / "dlt"),
                   "DESTINATION__DUCKDB__CREDENTIALS": str(home / "xero_elt.duckdb")}
            # A session of its own: the first sync it starts is ended with it.
            server = subprocess.Popen(
                [sys.executable, "-m", "pipelines", "serve", "--host", "127.0.0.1",
                 "--port", str(port)], cwd=home, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, text=True, start_new_session=True)
            servers.append(server)
            assert server.stdout is not None
            line = server.stdout.readline().strip()
            assert line == f"auth server listening on http://127.0.0.1:{port}", (
                line, server.stderr.read() if server.stderr else "")
            urls.append(f"http://127.0.0.1:{port}")
        yield urls[0], urls[1]
    finally:
        for server in servers:
            with contextlib.suppress(ProcessLookupError):  # already gone
                os.killpg(server.pid, signal.SIGKILL)
            server.wait(10)


def test_a_flow_started_on_one_server_finishes_on_the_other(
    two_servers: tuple[str, str], sandbox: SandboxHandle, tmp_path: Path, postgres_url: str,
) -> None:
    a, b = two_servers
    tenant = sandbox.tenants()[0]
    person = sandbox.admin([tenant["tenantId"]])
    with httpx.Client(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        page = admin.post(f"{a}/admin/invites",
                          data={"company": "Acme", "email": "owner@acme.test"})
    assert page.status_code == 200, page.text
    found = INVITE_LINK.search(page.text)
    assert found, page.text
    link = found.group(0)

    # One browser; the balancer sends it to A for the first steps.
    with httpx.Client(timeout=30) as browser, httpx.Client(timeout=30) as at_xero:
        assert browser.get(link).headers["location"] == "/connect"
        choose = browser.get(f"{a}/connect")
        software = browser.post(f"{a}/connect/software",
                                data={"software": "xero", "csrf_token": csrf_of(choose)})
        assert software.status_code == 303, software.text
        review = browser.get(f"{a}/connect/review")
        sent = browser.post(f"{a}/connect/authorize", data={"csrf_token": csrf_of(review)})
        assert sent.status_code == 303, sent.text
        params = dict(parse_qsl(urlsplit(sent.headers["location"]).query))
        assert params["redirect_uri"] == f"{a}/callback"
        outcome = consent_via_forms(sandbox, at_xero, params, person["email"],
                                    person["password"])
        assert outcome.location.startswith(f"{a}/callback?")

        # ... and to B from Xero's redirect on.
        back = browser.get(b + outcome.location[len(a):])
        assert back.status_code == 303, back.text
        assert back.headers["location"] == "/connect/confirm"
        confirm = browser.get(f"{b}/connect/confirm")
        assert confirm.status_code == 200, confirm.text
        chosen = TENANT.search(confirm.text)
        assert chosen, confirm.text
        assert chosen.group(1) == tenant["tenantId"]
        done = browser.post(f"{b}/connect/confirm", data={
            "action": "confirm", "tenant": chosen.group(1), "csrf_token": csrf_of(confirm)})
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/connect/done"
        success = browser.get(f"{b}/connect/done")
        assert "Connection Successful" in success.text

        # The state was used once: replayed on A, it opens nothing.
        replay = browser.get(outcome.location)
        assert replay.status_code >= 400
        assert "Connection Successful" not in replay.text

    store = open_store(tmp_path / "test-home", url=postgres_url)
    (conn,) = store.list_connections()
    assert (conn.status, conn.tenant_id) == ("connected", tenant["tenantId"])
    assert store.get_grant(conn.grant_id or "").status == "active"


def test_an_admin_signed_in_on_one_server_is_signed_in_on_the_other(
    two_servers: tuple[str, str],
) -> None:
    a, b = two_servers
    with httpx.Client(timeout=30) as browser:
        assert browser.get(f"{a}/admin").status_code == 401
        login = browser.get(f"{b}/admin/login")
        signed_in = browser.post(f"{b}/admin/login",
                                 data={"token": ADMIN_TOKEN, "csrf_token": csrf_of(login)})
        assert signed_in.status_code == 303, signed_in.text
        page = browser.get(f"{a}/admin")
        assert page.status_code == 200, page.text
        created = browser.post(f"{a}/admin/invites", data={
            "company": "Beta", "email": "b@beta.test", "csrf_token": csrf_of(page)})
        assert created.status_code == 303, created.text  # back to the list
        assert "Beta" in browser.get(f"{b}/admin").text
