"""Xero's webhooks in, over real HTTP: signatures (correct, wrong, missing, no key), the sandbox's
own intent to receive, unknown organisations, duplicates, out-of-order deliveries, a flood of
1,000 events, and forged payloads that are never stored or acted on.

The targeted run itself is a recording callable here (tests/pipelines/test_webhook_sync.py
runs the real one); it takes the pending events as `xero-elt run --webhook-events` does.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from auth_server.xero_webhooks import PATH, signature
from sandbox.handle import SandboxHandle
from store import Store, open_store
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import RunningAuth, wait_for

KEY = "xero-webhook-key-for-tests-0123456789"
TENANT = str(uuid.uuid4())


class Runs:
    """A stand-in for the targeted run: takes the organisation's pending events, marks them
    processed, remembers what it read."""

    def __init__(self, store: Store, seconds: float = 0.0) -> None:
        self.store = store
        self.seconds = seconds
        self.calls: list[tuple[str, set[str]]] = []
        self.lock = threading.Lock()

    def __call__(self, tenant_id: str) -> int:
        time.sleep(self.seconds)
        events = self.store.pending_xero_events(tenant_id)
        self.store.finish_xero_events(events, "processed")
        with self.lock:
            self.calls.append((tenant_id, {e.resource_id for e in events}))
        return 0

    def ids(self) -> set[str]:
        return set().union(*(ids for _, ids in self.calls)) if self.calls else set()


@pytest.fixture
def hooks(sandbox: SandboxHandle, tmp_home: Path) -> Iterator[tuple[RunningAuth, Runs]]:
    """An auth server with a webhook key, a fast dispatcher and a recording targeted run."""
    store = open_store(tmp_home)
    runs = Runs(store)
    running = start_auth(sandbox, tmp_home, xero_webhook_key=KEY,
                         xero_webhook_coalesce_seconds=0.5, xero_webhook_poll_seconds=0.5)
    running.server.app.targeted_sync.run_targeted = runs  # type: ignore[union-attr]
    yield running, runs
    stop_auth(running)


def connect(store: Store, tenant_id: str = TENANT) -> None:
    """A connection record for the organisation, as the flow leaves it once confirmed."""
    conn = store.create_connection("Acme", "a@acme.test", invite_token_hash=uuid.uuid4().hex,
                                   invite_expires_at=datetime.now(UTC) + timedelta(days=1))
    store.update_connection(conn.connection_id, status="connected", tenant_id=tenant_id,
                            organisation_name="Acme")


def event(contact_id: str, when: datetime, tenant_id: str = TENANT,
          event_type: str = "UPDATE") -> dict[str, Any]:
    return {"resourceUrl": f"https://api.xero.com/api.xro/2.0/Contacts/{contact_id}",
            "resourceId": contact_id, "tenantId": tenant_id, "tenantType": "ORGANISATION",
            "eventCategory": "CONTACT", "eventType": event_type,
            "eventDateUtc": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]}


def body_of(events: list[dict[str, Any]]) -> bytes:
    return json.dumps({"events": events, "firstEventSequence": 1,
                       "lastEventSequence": len(events), "entropy": "ABCDEFGHIJ"}).encode()


def post(auth: RunningAuth, body: bytes, sig: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if sig is not None:
        headers["x-xero-signature"] = sig
    with auth.http() as client:
        return client.post(PATH, content=body, headers=headers)


def test_signatures_decide_200_or_401_and_the_answers_are_empty(
        hooks: tuple[RunningAuth, Runs]) -> None:
    auth, _ = hooks
    handshake = body_of([])
    good = post(auth, handshake, signature(handshake, KEY))
    assert (good.status_code, good.content, good.headers.get("set-cookie")) == (200, b"", None)
    assert post(auth, handshake, signature(handshake, KEY + "x")).status_code == 401
    assert post(auth, handshake, signature(b"other bytes", KEY)).status_code == 401
    missing = post(auth, handshake, None)
    assert (missing.status_code, missing.content) == (401, b"")
    assert auth.store.xero_webhook_health().last_handshake_at is not None
    with auth.admin() as admin:
        listed = admin.get("/admin/webhooks").text
    assert "Xero webhooks in" in listed
    handshake_row = listed.split("Last intent-to-receive", 1)[1].split("</dd>", 1)[0]
    assert "UTC" in handshake_row  # a time, not "never"
    assert "Last event received</dt><dd>never" in listed


def test_without_a_key_everything_is_refused(sandbox: SandboxHandle, tmp_home: Path) -> None:
    auth = start_auth(sandbox, tmp_home)
    try:
        body = body_of([event(str(uuid.uuid4()), datetime.now(UTC))])
        for sig in (signature(body, ""), signature(body, KEY), None):
            answer = post(auth, body, sig)
            assert (answer.status_code, answer.content) == (401, b"")
        assert auth.store.list_xero_events() == []
    finally:
        stop_auth(auth)


def test_forged_payloads_are_never_stored_or_acted_on(hooks: tuple[RunningAuth, Runs]) -> None:
    auth, runs = hooks
    connect(auth.store)
    body = body_of([event(str(uuid.uuid4()), datetime.now(UTC))])
    assert post(auth, body, signature(body, "not-the-key")).status_code == 401
    tampered = body.replace(b"UPDATE", b"CREATE")
    assert post(auth, tampered, signature(body, KEY)).status_code == 401
    time.sleep(1.5)  # a coalescing window and a poll
    assert auth.store.list_xero_events() == []
    assert runs.calls == []
    assert auth.store.xero_webhook_health().last_event_at is None


def test_the_sandbox_intent_to_receive_passes(hooks: tuple[RunningAuth, Runs],
                                              sandbox: SandboxHandle) -> None:
    auth, runs = hooks
    connect(auth.store, sandbox.tenant_ids()[0])
    sandbox.settings(webhook_batch_seconds=0.2)
    sandbox._call("POST", "/webhooks", {"url": auth.url + PATH, "key": KEY})
    wait_for(lambda: sandbox._call("GET", "/webhooks")["status"] != "pending", timeout=20)
    hook = sandbox._call("GET", "/webhooks")
    assert hook["status"] == "ok", hook["intent_to_receive"]
    assert auth.store.xero_webhook_health().last_handshake_at is not None
    created = sandbox.mutate(tenant_id=sandbox.tenant_ids()[0], entity="contacts", op="create",
                             fields={"Name": "Webhook Supplier Ltd", "IsSupplier": True})
    wait_for(lambda: bool(runs.ids()), timeout=20)
    assert runs.ids() == {created["id"].lower()}
    assert sandbox._call("GET", "/webhooks")["deliveries"][-1]["status"] == 200


def test_events_of_unknown_organisations_are_kept_and_ignored(
        hooks: tuple[RunningAuth, Runs]) -> None:
    auth, runs = hooks
    stranger = str(uuid.uuid4())
    body = body_of([event(str(uuid.uuid4()), datetime.now(UTC), tenant_id=stranger)])
    assert post(auth, body, signature(body, KEY)).status_code == 200
    wait_for(lambda: auth.store.list_xero_events()[0].status == "ignored", timeout=10)
    assert runs.calls == []
    assert auth.store.xero_webhook_health().pending == 0


def test_duplicates_are_one_row_and_out_of_order_deliveries_lose_nothing(
        hooks: tuple[RunningAuth, Runs]) -> None:
    auth, runs = hooks
    connect(auth.store)
    contact = str(uuid.uuid4())
    first, later = datetime.now(UTC) - timedelta(seconds=5), datetime.now(UTC)
    newer = body_of([event(contact, later)])
    older = body_of([event(contact, first, event_type="CREATE")])
    for body in (newer, newer, older, newer):  # a retry, then the earlier event arriving late
        assert post(auth, body, signature(body, KEY)).status_code == 200
    stored = auth.store.list_xero_events(TENANT)
    assert sorted(e.event_type for e in stored) == ["CREATE", "UPDATE"]
    wait_for(lambda: all(e.status == "processed" for e in auth.store.list_xero_events(TENANT)),
             timeout=10)
    assert runs.ids() == {contact}  # read once, as it is now at Xero


def test_a_flood_of_1000_events_is_stored_whole_and_coalesced(
        hooks: tuple[RunningAuth, Runs]) -> None:
    auth, runs = hooks
    runs.seconds = 0.5  # a run takes a while; events keep coming meanwhile
    connect(auth.store)
    contacts = [str(uuid.uuid4()) for _ in range(1000)]
    now = datetime.now(UTC)
    bodies = [body_of([event(c, now) for c in contacts[i:i + 100]])
              for i in range(0, 1000, 100)]
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda b: post(auth, b, signature(b, KEY)), bodies))
    assert [a.status_code for a in answers] == [200] * 10
    assert max(a.elapsed.total_seconds() for a in answers) < 5  # Xero's limit per delivery
    assert len(auth.store.list_xero_events(TENANT, limit=5000)) == 1000
    wait_for(lambda: auth.store.xero_webhook_health().pending == 0, timeout=30)
    assert runs.ids() == set(contacts)
    assert len(runs.calls) <= 4, [len(ids) for _, ids in runs.calls]
    health = auth.store.xero_webhook_health()
    assert health.last_lag_seconds is not None
    assert health.last_lag_seconds < 10


def test_a_failed_run_leaves_its_events_pending_for_the_next(
        hooks: tuple[RunningAuth, Runs], monkeypatch: pytest.MonkeyPatch) -> None:
    auth, runs = hooks
    from auth_server import targeted_sync

    monkeypatch.setattr(targeted_sync, "FIRST_BACKOFF_SECONDS", 0.5)
    connect(auth.store)
    codes = iter([75, 0])  # the first finds the organisation's lock held past its wait

    def flaky(tenant_id: str) -> int:
        code = next(codes, 0)
        return code if code else runs(tenant_id)

    auth.server.app.targeted_sync.run_targeted = flaky  # type: ignore[union-attr]
    contact = str(uuid.uuid4())
    body = body_of([event(contact, datetime.now(UTC))])
    assert post(auth, body, signature(body, KEY)).status_code == 200
    wait_for(lambda: runs.ids() == {contact}, timeout=15)
    assert auth.store.xero_webhook_health().pending == 0


def test_payloads_over_the_webhook_limit_are_refused_unread(sandbox: SandboxHandle,
                                                            tmp_home: Path) -> None:
    auth = start_auth(sandbox, tmp_home, xero_webhook_key=KEY, xero_webhook_max_body_bytes=4096)
    try:
        now = datetime.now(UTC)
        big = body_of([event(str(uuid.uuid4()), now) for _ in range(20)])  # ~6 KB
        assert len(big) > 4096
        assert post(auth, big, signature(big, KEY)).status_code == 413
        small = body_of([event(str(uuid.uuid4()), now)])
        assert post(auth, small, signature(small, KEY)).status_code == 200
        assert len(auth.store.list_xero_events()) == 1
    finally:
        stop_auth(auth)


def test_a_deeply_nested_signed_payload_is_a_400_with_an_empty_body(
        hooks: tuple[RunningAuth, Runs], caplog: pytest.LogCaptureFixture) -> None:
    auth, runs = hooks
    nested = b"[" * 100_000  # exhausts json's recursion: once a 500 with a traceback
    with caplog.at_level(logging.INFO, logger="auth_server"):
        answer = post(auth, nested, signature(nested, KEY))
    assert (answer.status_code, answer.content) == (400, b"")
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert auth.store.list_xero_events() == []
    assert runs.calls == []
