"""The plain functions the `xero-elt` CLI calls, and the server as a process."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import socketserver
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_server.connections import import_grant, list_connection_rows
from auth_server.errors import InvalidInput, InviteError, NotFound, XeroCallFailed
from auth_server.invites import create_invite, resend_invite
from auth_server.mail import invite_subject
from auth_server.settings import AuthServerSettings
from connector import identity
from sandbox.handle import REPO_ROOT, SandboxHandle
from store import open_store
from tests.auth_server.helpers import RunningAuth, read_eml


def test_import_grant_refreshes_at_once_and_lists_organisations(
    auth: RunningAuth, sandbox: SandboxHandle
) -> None:
    tenant_ids = sandbox.tenant_ids()
    tokens = sandbox.grant(auth.app["client_id"], sandbox.admin(tenant_ids)["email"], tenant_ids)
    conns = import_grant(auth.store, auth.xero, {"refresh_token": tokens["refresh_token"]})
    assert sorted(c.tenant_id for c in conns) == sorted(tenant_ids)
    assert {c.status for c in conns} == {"connected"}
    grant = auth.store.get_grant(conns[0].grant_id)
    assert grant.refresh_token != tokens["refresh_token"]  # rotated, and the new one stored
    assert identity.refresh_tokens(auth.xero, grant.refresh_token).access_token
    # Importing again (a newer token for the same organisations) updates, never duplicates.
    again = sandbox.grant(auth.app["client_id"], sandbox.admin(tenant_ids)["email"], tenant_ids)
    conns2 = import_grant(auth.store, auth.xero, again)
    assert {c.connection_id for c in conns2} == {c.connection_id for c in conns}
    assert len(list_connection_rows(auth.store)) == 2


@pytest.mark.parametrize("bad", [[], {"access_token": "x"}, {"refresh_token": ""},
                                 {"refresh_token": 5}, {"refresh_token": "x" * 5000}])
def test_import_grant_refuses_bad_json(auth: RunningAuth, bad: Any) -> None:
    with pytest.raises(InvalidInput):
        import_grant(auth.store, auth.xero, bad)
    assert auth.store.list_grants() == []


def test_import_grant_with_a_dead_token_changes_nothing(auth: RunningAuth) -> None:
    with pytest.raises(XeroCallFailed, match="invalid_grant"):
        import_grant(auth.store, auth.xero, {"refresh_token": "not-a-real-token"})
    assert auth.store.list_grants() == []
    assert auth.store.list_connections() == []


def test_resend_errors(auth: RunningAuth, org: dict[str, Any]) -> None:
    with pytest.raises(NotFound):
        resend_invite(auth.store, auth.settings, "con_000000000000")
    with pytest.raises(InvalidInput):
        resend_invite(auth.store, auth.settings, "../../etc/passwd")
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    auth.customer().connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    with pytest.raises(InviteError, match="disconnect it first"):
        resend_invite(auth.store, auth.settings, conn.connection_id)


class _SmtpHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP to receive one message (RFC 5321 happy path)."""

    def handle(self) -> None:
        self.wfile.write(b"220 test ESMTP\r\n")
        data: list[bytes] = []
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                self.wfile.write(b"250 test\r\n")
            elif verb == b"DATA":
                self.wfile.write(b"354 go\r\n")
                while (body := self.rfile.readline()) not in (b".\r\n", b""):
                    data.append(body)
                self.server.messages.append(b"".join(data))  # type: ignore[attr-defined]
                self.wfile.write(b"250 queued\r\n")
            elif verb == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, list[bytes]]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _SmtpHandler)
    server.messages = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1], server.messages  # type: ignore[attr-defined]
    server.shutdown()
    server.server_close()


def test_invites_go_through_smtp_when_configured(
    tmp_home: Path, smtp_server: tuple[int, list[bytes]]
) -> None:
    port, messages = smtp_server
    settings = AuthServerSettings(product_name="Acme Finance", smtp_host="127.0.0.1",
                                  smtp_port=port, smtp_starttls=False,
                                  mail_from="Acme <invites@acme.test>")
    _, link = create_invite(open_store(tmp_home), settings, "Acme", "a@acme.test")
    [raw] = messages
    assert invite_subject("Acme Finance").encode() in raw
    assert b"invites@acme.test" in raw
    assert not (tmp_home / "outbox").exists()
    import email
    from email.policy import default

    msg = email.message_from_bytes(raw, policy=default)
    assert link in msg.get_body(("plain",)).get_content()


def test_a_failing_smtp_server_leaves_the_email_in_the_outbox(tmp_home: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    settings = AuthServerSettings(smtp_host="127.0.0.1", smtp_port=closed_port,
                                  smtp_starttls=False)
    _, link = create_invite(open_store(tmp_home), settings, "Acme", "a@acme.test")
    [path] = sorted((tmp_home / "outbox").glob("*.eml"))
    assert link in read_eml(path).get_body(("plain",)).get_content()
    assert smtplib  # the module the sender uses


def test_serve_prints_its_address_first_and_stops_on_sigterm(
    sandbox: SandboxHandle, tmp_home: Path
) -> None:
    env = {**os.environ, "XERO_ELT_HOME": str(tmp_home), "PYTHONUNBUFFERED": "1",
           "AUTH_SERVER__PRODUCT_NAME": "Acme Finance"}
    proc = subprocess.Popen([sys.executable, "-m", "auth_server", "--port", "0"], cwd=REPO_ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("auth server listening on http://127.0.0.1:")
        url = line.rsplit(" ", 1)[1]
        assert httpx.get(url + "/healthz", timeout=10).text == "ok\n"
        assert "Acme Finance" in httpx.get(url + "/", timeout=10).text
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
