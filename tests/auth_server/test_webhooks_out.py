"""Webhooks out over real HTTP: every event type, signatures, a receiver down then up, the retry
window running out, replay from the CLI; and reconnect keeping the connection_id."""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_server.errors import ConfigError
from auth_server.settings import AuthServerSettings
from auth_server.webhook_signature import verify
from store import lifecycle
from store.lifecycle import Event
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import RunningAuth, wait_for
from tests.sandbox_handle import SandboxHandle

# Subprocesses, daemons or fresh interpreters: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow

SECRET = "webhook-secret-for-tests-0123456789abcdef"


class Receiver:
    """The platform's webhook endpoint on a fixed port, which can be down or up."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.received: list[dict[str, Any]] = []
        self.server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/xero-elt"

    def up(self) -> None:
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                received.append({"headers": dict(self.headers), "body": body})
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def events(self) -> list[dict[str, Any]]:
        """Bodies received, each checked against its signature and timestamp."""
        for delivery in self.received:
            assert verify(SECRET, delivery["headers"], delivery["body"])
        return [json.loads(d["body"]) for d in self.received]

    def types(self) -> list[str]:
        return [e["type"] for e in self.events()]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    hook = Receiver()
    yield hook
    hook.down()


def _auth(sandbox: SandboxHandle, home: Path, receiver: Receiver, **kwargs: Any) -> RunningAuth:
    # 0.0001: the first retry after 3 ms, the whole 24 h window in under 9 s.
    auth = start_auth(sandbox, home, webhook_url=receiver.url, webhook_secret=SECRET,
                      webhook_retry_scale=0.0001, webhook_poll_seconds=0.05, **kwargs)
    auth.server.start_webhook_worker()
    return auth


@pytest.fixture
def hooked(sandbox: SandboxHandle, tmp_home: Path, receiver: Receiver) -> Iterator[RunningAuth]:
    running = _auth(sandbox, tmp_home, receiver)
    yield running
    stop_auth(running)


def _api(auth: RunningAuth) -> httpx.Client:
    _, key = auth.store.create_api_key("tests")
    return auth.http(headers={"Authorization": f"Bearer {key}"})


def test_a_connection_s_life_is_reported_and_reconnect_keeps_its_id(
        hooked: RunningAuth, receiver: Receiver, org: dict[str, Any]) -> None:
    receiver.up()
    api = _api(hooked)
    invite = api.post("/api/v1/invites", json={"company": "Acme", "email": "a@acme.test"}).json()
    cid = invite["connection_id"]
    hooked.customer().connect(invite["link"], org["admin"], tenant_ids=[org["tenantId"]])
    wait_for(lambda: receiver.types() == ["connection.connected", "sync.first_completed"])
    first_sync = hooked.connection(cid).last_synced_at

    # The connector finds the grant dead: the record needs reconnection (with its reason).
    lifecycle.apply(hooked.store, cid, Event.ACCESS_LOST,
                    status_reason="Xero refused access to the organisation")
    wait_for(lambda: len(receiver.received) == 3)
    needs = receiver.events()[2]
    assert needs["type"] == "connection.needs_reconnection"
    assert needs["data"]["connection"]["status_reason"] == \
        "Xero refused access to the organisation"

    reconnect = api.post(f"/api/v1/connections/{cid}/resend", json={"send_email": False})
    assert reconnect.json()["connection_id"] == cid
    assert hooked.connection(cid).status == "needs_reconnection"  # until the admin finishes
    hooked.customer().connect(reconnect.json()["link"], org["admin"],
                              tenant_ids=[org["tenantId"]])
    back = hooked.connection(cid)
    assert (back.connection_id, back.status, back.tenant_id) == (cid, "connected",
                                                                 org["tenantId"])
    assert back.last_synced_at is not None
    assert back.last_synced_at >= first_sync
    assert [c.connection_id for c in hooked.store.list_connections()] == [cid]  # no new record

    api.post(f"/api/v1/connections/{cid}/disconnect")
    wait_for(lambda: receiver.types()[-1] == "connection.disconnected")
    assert receiver.types() == ["connection.connected", "sync.first_completed",
                                "connection.needs_reconnection", "connection.connected",
                                "connection.disconnected"]
    ids = [e["id"] for e in receiver.events()]
    assert len(set(ids)) == len(ids)
    assert all(e["data"]["connection"]["connection_id"] == cid for e in receiver.events())
    text = json.dumps(receiver.events())
    assert "/invite/" not in text
    assert "token" not in text.replace("tenant", "")


def test_a_failed_first_sync_is_reported(
        sandbox: SandboxHandle, tmp_home: Path, receiver: Receiver, org: dict[str, Any]) -> None:
    def boom(conn: Any) -> int:
        raise RuntimeError("destination unreachable")

    receiver.up()
    auth = _auth(sandbox, tmp_home, receiver, on_connected=boom)
    try:
        invite = _api(auth).post("/api/v1/invites",
                                 json={"company": "Acme", "email": "a@acme.test"}).json()
        auth.customer().connect(invite["link"], org["admin"], tenant_ids=[org["tenantId"]])
        wait_for(lambda: receiver.types() == ["connection.connected", "sync.failed"])
        assert receiver.events()[1]["data"]["connection"]["sync_state"] == "failed"
    finally:
        stop_auth(auth)


def test_a_receiver_that_is_down_loses_nothing(
        hooked: RunningAuth, receiver: Receiver, org: dict[str, Any]) -> None:
    invite = _api(hooked).post("/api/v1/invites",
                               json={"company": "Acme", "email": "a@acme.test"}).json()
    hooked.customer().connect(invite["link"], org["admin"], tenant_ids=[org["tenantId"]])
    wait_for(lambda: all(e.attempts >= 3 for e in hooked.store.list_webhook_events())
             and len(hooked.store.list_webhook_events()) == 2)
    assert all(e.status == "pending" and e.last_error for e in hooked.store.list_webhook_events())
    assert receiver.received == []

    receiver.up()
    wait_for(lambda: sorted(receiver.types()) == ["connection.connected",
                                                  "sync.first_completed"])
    wait_for(lambda: {e.status for e in hooked.store.list_webhook_events()} == {"delivered"})


def test_after_the_retry_window_an_event_fails_and_the_cli_replays_it(
        hooked: RunningAuth, receiver: Receiver) -> None:
    conn = hooked.store.create_connection("Acme", "a@acme.test", invite_token_hash="h",
                                          invite_expires_at=datetime.now(UTC))
    lifecycle.apply(hooked.store, conn.connection_id, Event.DISCONNECT)
    wait_for(lambda: hooked.store.list_webhook_events()[0].status == "failed", timeout=60)
    failed = hooked.store.list_webhook_events()[0]
    assert failed.attempts == 15  # 30 s doubling to 4 h: the last attempt past 24 h

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "pipelines", "webhooks", *args],
                              capture_output=True, text=True, timeout=60, check=False)

    listed = json.loads(cli("list", "--status", "failed", "--json").stdout)
    assert [e["event_id"] for e in listed["events"]] == [failed.event_id]
    receiver.up()
    replayed = cli("replay", failed.event_id)
    assert replayed.returncode == 0, replayed.stderr
    wait_for(lambda: receiver.types() == ["connection.disconnected"])
    assert receiver.events()[0]["id"] == failed.event_id
    assert cli("replay", "evt_unknown").returncode == 2


def test_a_recorded_delivery_replayed_later_or_altered_fails_the_check(
        hooked: RunningAuth, receiver: Receiver) -> None:
    receiver.up()
    conn = hooked.store.create_connection("Acme", "a@acme.test", invite_token_hash="h2",
                                          invite_expires_at=datetime.now(UTC))
    lifecycle.apply(hooked.store, conn.connection_id, Event.DISCONNECT)
    wait_for(lambda: len(receiver.received) == 1)
    delivery = receiver.received[0]
    headers, body = delivery["headers"], delivery["body"]
    stamp = int(headers["X-Xero-Elt-Timestamp"])
    assert headers["X-Xero-Elt-Signature"].startswith("v1=")
    assert verify(SECRET, headers, body, now=stamp + 10)
    assert not verify(SECRET, headers, body, now=stamp + 301)  # replayed six minutes later
    assert not verify(SECRET, headers, body.replace(b"disconnected", b"connected"),
                      now=stamp)
    moved = {**headers, "X-Xero-Elt-Timestamp": str(stamp + 200)}
    assert not verify(SECRET, moved, body, now=stamp + 200)  # a fresh stamp on an old signature
    assert not verify("another-secret-" + SECRET, headers, body, now=stamp)


def test_the_admin_page_lists_events_and_replays_one(hooked: RunningAuth,
                                                     receiver: Receiver) -> None:
    conn = hooked.store.create_connection("Acme", "a@acme.test", invite_token_hash="h3",
                                          invite_expires_at=datetime.now(UTC))
    lifecycle.apply(hooked.store, conn.connection_id, Event.DISCONNECT)
    wait_for(lambda: hooked.store.list_webhook_events()[0].status == "failed", timeout=60)
    event = hooked.store.list_webhook_events()[0]
    with hooked.admin() as admin:
        listed = admin.get("/admin/webhooks")
        assert listed.status_code == 200
        assert event.event_id in listed.text
        assert "connection.disconnected" in listed.text
        assert SECRET not in listed.text
        receiver.up()
        replayed = admin.post(f"/admin/webhooks/{event.event_id}/replay")
        assert replayed.status_code == 303
        assert admin.post("/admin/webhooks/evt_00/replay").status_code == 404
    wait_for(lambda: receiver.types() == ["connection.disconnected"])
    with hooked.http() as anonymous:
        assert anonymous.get("/admin/webhooks").status_code == 401


def test_the_readme_s_receiver_check_accepts_a_real_delivery_and_refuses_a_replay(
        hooked: RunningAuth, receiver: Receiver) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme[readme.index("## Embedding xero-elt in your product"):]
    snippet = section[section.index("```python\n") + 10:]
    namespace: dict[str, Any] = {}
    exec(snippet[:snippet.index("```")], namespace)  # noqa: S102 (our own README)
    receiver.up()
    conn = hooked.store.create_connection("Acme", "a@acme.test", invite_token_hash="h4",
                                          invite_expires_at=datetime.now(UTC))
    lifecycle.apply(hooked.store, conn.connection_id, Event.DISCONNECT)
    wait_for(lambda: len(receiver.received) == 1)
    delivery = receiver.received[0]
    assert namespace["is_genuine"](SECRET, delivery["headers"], delivery["body"])
    assert not namespace["is_genuine"](SECRET, delivery["headers"], delivery["body"] + b" ")
    old = {**delivery["headers"],
           "X-Xero-Elt-Timestamp": str(int(delivery["headers"]["X-Xero-Elt-Timestamp"]) - 600)}
    assert not namespace["is_genuine"](SECRET, old, delivery["body"])


def test_a_webhook_url_with_credentials_is_refused_at_start_up() -> None:
    """urllib would not send them, and the URL was logged with every failed attempt."""
    with pytest.raises(ConfigError, match="must not carry user:password@"):
        AuthServerSettings(webhook_url="https://hooks:s3cret@platform.test/xero-elt",
                           webhook_secret=SECRET)


def test_delivery_logs_name_only_the_receiver_s_host(
        sandbox: SandboxHandle, tmp_home: Path, receiver: Receiver, org: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    url = receiver.url + "/tok-5e1a?key=q-77"  # a receiver's own token in the path and query
    auth = start_auth(sandbox, tmp_home, webhook_url=url, webhook_secret=SECRET,
                      webhook_retry_scale=0.0001, webhook_poll_seconds=0.05)
    try:
        with caplog.at_level(logging.INFO, logger="auth_server"):
            auth.server.start_webhook_worker()
            invite = _api(auth).post("/api/v1/invites",
                                     json={"company": "Acme", "email": "a@acme.test"}).json()
            auth.customer().connect(invite["link"], org["admin"], tenant_ids=[org["tenantId"]])
            wait_for(lambda: any(e.attempts >= 2 for e in auth.store.list_webhook_events()))
    finally:
        stop_auth(auth)
    lines = [r.getMessage() for r in caplog.records if r.name == "auth_server.webhook_delivery"]
    assert any(f"to 127.0.0.1:{receiver.port} failed" in line for line in lines)
    assert not [line for line in lines if "tok-5e1a" in line or "q-77" in line]
