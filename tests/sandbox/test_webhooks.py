"""The sandbox emits Xero's webhooks: intent to receive, signed batches of CONTACT events for
contact mutations (scheduled ones too), retries on the sandbox clock, disabling, reset.

A tiny receiver (stdlib http.server on 127.0.0.1) stands for the product's endpoint and checks
every signature itself; payloads are validated against Xero's webhooks spec.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from sandbox.webhooks import retry_offsets
from tests.sandbox_handle import SandboxError, SandboxHandle, XeroGrant

# Subprocesses, daemons or fresh interpreters: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow

SPEC = Path("/work/shared/xero-api/openapi/xero-webhooks.yaml")
KEY = "test-webhook-key-0123456789abcdef"
FAST = {"webhook_batch_seconds": 0.2, "webhook_retry_base_seconds": 0.2,
        "webhook_timeout_seconds": 2}


# --- a receiver standing for the product's endpoint -----------------------------------------


@dataclass
class Received:
    """One POST the receiver got: raw body, signature header, and whether it was genuine."""

    body: bytes
    signature: str
    genuine: bool
    answered: int

    @property
    def payload(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """Answers as a correct Xero endpoint would, unless told to misbehave."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.accept_forged = False  # a broken receiver: 200 to every signature
        self.answer_body = b""  # Xero wants none
        self.fail_events = 0  # answer 500 to this many event deliveries
        self.slow_events = 0  # answer this many event deliveries late
        self.delay = 0.0
        self.in_progress = 0  # POSTs being answered right now
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhooks/xero"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                signature = self.headers.get("x-xero-signature") or ""
                expected = base64.b64encode(
                    hmac.new(KEY.encode(), body, hashlib.sha256).digest()).decode()
                genuine = hmac.compare_digest(signature, expected)
                status, delay = receiver.decide(genuine, bool(json.loads(body)["events"]))
                with receiver._lock:
                    receiver.in_progress += 1
                time.sleep(delay)
                with receiver._lock:
                    receiver.in_progress -= 1
                    receiver.received.append(Received(body, signature, genuine, status))
                self.send_response(status)
                self.send_header("Content-Length", str(len(receiver.answer_body)))
                self.end_headers()
                self.wfile.write(receiver.answer_body)

            def log_message(self, *_args: Any) -> None:
                pass

        return Handler

    def decide(self, genuine: bool, has_events: bool) -> tuple[int, float]:
        """(status, delay) for one POST."""
        with self._lock:
            if has_events and self.fail_events > 0:
                self.fail_events -= 1
                return 500, 0.0
            if has_events and self.slow_events > 0:
                self.slow_events -= 1
                return 200, self.delay
        return (200 if genuine or self.accept_forged else 401), 0.0

    def event_posts(self) -> list[Received]:
        """POSTs that carried events (not intent to receive), answered 2xx."""
        with self._lock:
            return [r for r in self.received if r.payload["events"] and r.answered == 200]

    def events(self) -> list[dict[str, Any]]:
        """Every event delivered successfully, in order; a payload that came twice (a retry of
        one answered too late) counts once, as a receiver deduplicating on sequences would."""
        unique = {r.body: r for r in self.event_posts()}
        return [e for r in unique.values() for e in r.payload["events"]]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def wait_for(check: Callable[[], Any], timeout: float = 10, what: str = "it") -> Any:
    """Poll `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    yield rec
    rec.close()


def webhook(sandbox: SandboxHandle) -> dict[str, Any]:
    return sandbox._call("GET", "/webhooks")


def subscribe(sandbox: SandboxHandle, receiver: Receiver, **settings: Any) -> dict[str, Any]:
    """Fast settings, then the webhook; returns once intent to receive has an outcome."""
    sandbox.settings(**{**FAST, **settings})
    answer = sandbox._call("POST", "/webhooks", {"url": receiver.url, "key": KEY})
    assert answer == {"url": receiver.url, "status": "pending"}
    return wait_for(lambda: (w := webhook(sandbox))["status"] != "pending" and w,
                    what="intent to receive")


@pytest.fixture
def subscribed(sandbox: SandboxHandle, receiver: Receiver) -> Receiver:
    """A receiver whose webhook passed intent to receive."""
    assert subscribe(sandbox, receiver)["status"] == "ok"
    return receiver


@pytest.fixture(scope="module")
def payload_schema() -> jsonschema.Draft202012Validator:
    """Xero's WebhookEvent schema, format uuid checked. Not date-time: Xero's own examples
    (`2024-06-21T01:15:39.902`) carry no zone, which RFC 3339 requires; the test checks the
    examples' shape instead (and resourceUrl by value)."""
    spec = yaml.safe_load(SPEC.read_text())
    checker = jsonschema.FormatChecker(formats=["uuid"])
    return jsonschema.Draft202012Validator(
        {**spec, "$ref": "#/components/schemas/WebhookEvent"}, format_checker=checker)


def seeded_contact(sandbox: SandboxHandle, grant: XeroGrant, tenant: str) -> str:
    """An active seeded contact of `tenant`, read through the API."""
    response = httpx.get(f"{sandbox.api_url}/Contacts", params={"page": 1},
                         headers=grant.headers(tenant))
    return next(c["ContactID"] for c in response.json()["Contacts"]
                if c["ContactStatus"] == "ACTIVE")


def create_contact(sandbox: SandboxHandle, tenant: str) -> str:
    return sandbox.mutate(tenant_id=tenant, entity="contacts", op="create")["id"]


# --- intent to receive ----------------------------------------------------------------------


def test_intent_to_receive_passes_when_the_receiver_checks_signatures(
    sandbox: SandboxHandle, receiver: Receiver
) -> None:
    state = subscribe(sandbox, receiver)

    assert state["status"] == "ok"
    assert state["disabled"] is False
    handshake = receiver.received
    assert len(handshake) >= 3
    assert {r.genuine for r in handshake} == {True, False}  # correct and forged signatures
    for post in handshake:
        body = post.payload
        assert body["events"] == []
        assert body["firstEventSequence"] == 0
        assert body["lastEventSequence"] == 0
        assert isinstance(body["entropy"], str)
        assert post.answered == (200 if post.genuine else 401)
    checks = state["intent_to_receive"]
    assert len(checks) == len(handshake)
    assert all(c["ok"] for c in checks)
    assert sorted(c["expected"] for c in checks).count(401) >= 1


@pytest.mark.parametrize("misbehaviour", ["accepts_forged", "answers_with_a_body"])
def test_intent_to_receive_fails_and_nothing_is_delivered(
    sandbox: SandboxHandle, receiver: Receiver, misbehaviour: str, tenant_ids: list[str]
) -> None:
    receiver.accept_forged = misbehaviour == "accepts_forged"
    receiver.answer_body = b'{"ok": true}' if misbehaviour == "answers_with_a_body" else b""

    state = subscribe(sandbox, receiver)

    assert state["status"] == "failing"
    assert state["disabled"] is True
    problems = [c["problem"] for c in state["intent_to_receive"] if not c["ok"]]
    assert problems, state
    wanted = "401" if misbehaviour == "accepts_forged" else "body"
    assert any(wanted in p for p in problems), problems
    create_contact(sandbox, tenant_ids[0])
    time.sleep(FAST["webhook_batch_seconds"] * 3)  # longer than a batch window: nothing comes
    assert receiver.event_posts() == []
    assert webhook(sandbox)["dropped"] == 1


def test_posting_the_webhook_again_reruns_intent_to_receive(
    sandbox: SandboxHandle, receiver: Receiver, tenant_ids: list[str]
) -> None:
    receiver.accept_forged = True
    assert subscribe(sandbox, receiver)["status"] == "failing"
    receiver.accept_forged = False  # the endpoint is fixed, and the webhook re-enabled

    state = subscribe(sandbox, receiver)

    assert state["status"] == "ok"
    assert state["disabled"] is False
    new_id = create_contact(sandbox, tenant_ids[0])
    events = wait_for(lambda: receiver.events(), what="an event after re-enabling")
    assert [e["resourceId"] for e in events] == [new_id]


# --- deliveries -----------------------------------------------------------------------------


def test_a_create_and_updates_arrive_signed_in_xeros_shape(
    sandbox: SandboxHandle, subscribed: Receiver, tenant_ids: list[str],
    payload_schema: jsonschema.Validator,
) -> None:
    tenant = tenant_ids[0]
    sandbox.advance(86_400)  # eventDateUtc follows the sandbox clock, not the wall clock
    before = sandbox.now()
    new_id = create_contact(sandbox, tenant)
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="update", id=new_id,
                   fields={"Website": "https://one.example"})
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="update", id=new_id,
                   fields={"Website": "https://two.example"})
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="archive", id=new_id)

    events = wait_for(lambda: len(e := subscribed.events()) >= 4 and e, what="4 events")

    assert [e["eventType"] for e in events] == ["CREATE", "UPDATE", "UPDATE", "UPDATE"]
    for event in events:
        assert event["resourceId"] == new_id
        assert event["resourceUrl"] == f"{sandbox.url}/api.xro/2.0/Contacts/{new_id}"
        assert event["tenantId"] == tenant
        assert event["tenantType"] == "ORGANISATION"
        assert event["eventCategory"] == "CONTACT"
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}", event["eventDateUtc"])
        stamped = datetime.fromisoformat(event["eventDateUtc"] + "+00:00")
        assert before - timedelta(seconds=1) <= stamped <= sandbox.now()
    sequences = []
    for post in subscribed.event_posts():
        assert post.genuine, "signed over the exact raw body with the webhook key"
        payload_schema.validate(post.payload)
        body = post.payload
        assert body["lastEventSequence"] - body["firstEventSequence"] + 1 == len(body["events"])
        sequences.append((body["firstEventSequence"], body["lastEventSequence"]))
    assert sequences == sorted(sequences)
    assert sequences[0][0] >= 1
    assert len(sequences) < 4, "events made together are batched"
    deliveries = webhook(sandbox)["deliveries"]
    assert sum(d["events"] for d in deliveries if d["status"] == 200) == 4


def test_a_batch_holds_at_most_the_configured_number_of_events(
    sandbox: SandboxHandle, subscribed: Receiver, tenant_ids: list[str]
) -> None:
    sandbox.settings(webhook_batch_max_events=2, webhook_batch_seconds=5)
    for _ in range(5):
        create_contact(sandbox, tenant_ids[1])

    wait_for(lambda: len(subscribed.events()) >= 4, what="two full batches")  # before 5 s

    assert [len(p.payload["events"]) for p in subscribed.event_posts()][:2] == [2, 2]


def test_accounts_tax_rates_and_tracking_send_no_events(
    sandbox: SandboxHandle, subscribed: Receiver, tenant_ids: list[str]
) -> None:
    tenant = tenant_ids[0]
    account = sandbox.mutate(tenant_id=tenant, entity="accounts", op="create")["id"]
    sandbox.mutate(tenant_id=tenant, entity="accounts", op="update", id=account,
                   fields={"Name": "Renamed"})
    sandbox.mutate(tenant_id=tenant, entity="tax_rates", op="create",
                   fields={"TaxType": "TAX900"})
    category = sandbox.mutate(tenant_id=tenant, entity="tracking_categories", op="create",
                              fields={"Status": "ARCHIVED"})["id"]
    sandbox.mutate(tenant_id=tenant, entity="tracking_categories", op="update", id=category,
                   fields={"Name": "Regions"})
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="add_field", field="Extra", value=1)
    marker = create_contact(sandbox, tenant)  # delivered in order, so it comes last

    events = wait_for(lambda: subscribed.events(), what="the marker contact's event")

    assert [(e["eventType"], e["resourceId"]) for e in events] == [("CREATE", marker)]


@pytest.mark.parametrize("setting", [False, True])
def test_make_supplier_sends_an_update_only_when_the_setting_says(
    sandbox: SandboxHandle, subscribed: Receiver, xero_grant: XeroGrant, setting: bool
) -> None:
    tenant = xero_grant.tenant_ids[0]
    sandbox.settings(webhook_make_supplier_event=setting)
    existing = seeded_contact(sandbox, xero_grant, tenant)
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="make_supplier", id=existing)
    marker = create_contact(sandbox, tenant)

    wait_for(lambda: any(e["resourceId"] == marker for e in subscribed.events()), what="marker")

    expected = [("UPDATE", existing)] if setting else []
    assert [(e["eventType"], e["resourceId"]) for e in subscribed.events()] == [
        *expected, ("CREATE", marker)]


def test_a_scheduled_mutation_sends_its_event_when_it_lands(
    sandbox: SandboxHandle, subscribed: Receiver, xero_grant: XeroGrant
) -> None:
    tenant = xero_grant.tenant_ids[0]
    armed = sandbox.schedule_mutation(0, tenant_id=tenant, entity="contacts", op="create")
    time.sleep(FAST["webhook_batch_seconds"] * 2)
    assert subscribed.events() == []  # armed, not applied: nothing happened in Xero yet

    httpx.get(f"{sandbox.api_url}/Contacts", headers=xero_grant.headers(tenant))

    events = wait_for(lambda: subscribed.events(), what="the scheduled create's event")
    assert [(e["eventType"], e["resourceId"]) for e in events] == [("CREATE", armed["id"])]


def test_a_slow_receiver_does_not_slow_mutations_or_api_calls(
    sandbox: SandboxHandle, subscribed: Receiver, xero_grant: XeroGrant
) -> None:
    sandbox.settings(webhook_timeout_seconds=4)
    subscribed.slow_events, subscribed.delay = 1, 3.0
    tenant = xero_grant.tenant_ids[0]
    create_contact(sandbox, tenant)
    wait_for(lambda: subscribed.in_progress, what="a delivery in flight")

    started = time.monotonic()
    for _ in range(5):
        create_contact(sandbox, tenant)
    page = httpx.get(f"{sandbox.api_url}/Contacts", headers=xero_grant.headers(tenant))
    took = time.monotonic() - started

    assert page.status_code == 200
    assert subscribed.in_progress == 1, "the delivery was still being answered"
    assert took < 1.5, f"mutations and a read took {took:.2f} s while the receiver was slow"
    events = wait_for(lambda: len(e := subscribed.events()) >= 6 and e, what="all 6 events")
    assert len(events) == 6


# --- failures, retries, disabling -----------------------------------------------------------


@pytest.mark.parametrize("failure", ["status_500", "too_slow"])
def test_failed_deliveries_are_retried_until_the_receiver_recovers(
    sandbox: SandboxHandle, subscribed: Receiver, tenant_ids: list[str], failure: str
) -> None:
    if failure == "status_500":
        subscribed.fail_events = 2
    else:
        sandbox.settings(webhook_timeout_seconds=0.3)
        subscribed.slow_events, subscribed.delay = 1, 0.6
    tenant = tenant_ids[0]
    first, second = create_contact(sandbox, tenant), create_contact(sandbox, tenant)

    events = wait_for(lambda: subscribed.events(), what="the delivery after recovery")

    assert [e["resourceId"] for e in events] == [first, second]  # nothing lost, same order
    deliveries = webhook(sandbox)["deliveries"]
    failed, delivered = deliveries[:-1], deliveries[-1]
    assert failed
    assert all(d["status"] != 200 for d in failed)
    if failure == "too_slow":
        assert "timeout" in failed[0]["error"]
    assert delivered["status"] == 200
    assert delivered["attempt"] == len(failed) + 1
    retried = [r.body for r in subscribed.received if r.payload["events"]]
    assert len(set(retried)) == 1, "every attempt carries the same signed bytes"
    gaps = [datetime.fromisoformat(b["time"]) - datetime.fromisoformat(a["time"])
            for a, b in itertools.pairwise(deliveries)]
    assert all(gap >= timedelta(seconds=0.15) for gap in gaps)  # waited, did not hammer
    assert webhook(sandbox)["status"] == "ok"


def test_retries_follow_the_sandbox_clock_and_then_the_webhook_is_disabled(
    sandbox: SandboxHandle, subscribed: Receiver, tenant_ids: list[str]
) -> None:
    sandbox.settings(webhook_retry_base_seconds=60, webhook_retry_window_seconds=86_400)
    subscribed.close()  # the receiver goes away: connection refused from now on
    create_contact(sandbox, tenant_ids[0])
    state = wait_for(lambda: (w := webhook(sandbox))["deliveries"] and w, what="first attempt")
    assert state["status"] == "failing"
    assert state["disabled"] is False
    assert state["next_retry_at"] is not None
    assert state["queued"] == 1

    sandbox.advance(86_401)  # a day passes in the sandbox: every retry falls due

    state = wait_for(lambda: (w := webhook(sandbox))["disabled"] and w, what="disabled")
    assert state["status"] == "failing"
    assert len(state["deliveries"]) == 1 + len(retry_offsets(60, 86_400))
    assert all(d["status"] is None and d["error"] for d in state["deliveries"])
    assert state["queued"] == 0
    assert state["dropped"] == 1
    create_contact(sandbox, tenant_ids[0])
    assert webhook(sandbox)["dropped"] == 2  # a disabled webhook sends nothing more


def test_the_retry_schedule_doubles_and_ends_at_the_window() -> None:
    offsets = retry_offsets(60, 86_400)

    gaps = [b - a for a, b in zip([0.0, *offsets], offsets, strict=False)]
    assert gaps[:4] == [60, 120, 240, 480]
    assert offsets[-1] == 86_400
    assert offsets == sorted(offsets)
    assert retry_offsets(1, 0.5) == [0.5]


# --- control plane --------------------------------------------------------------------------


def test_reset_and_delete_clear_the_webhook(
    sandbox: SandboxHandle, subscribed: Receiver, tenant_ids: list[str]
) -> None:
    create_contact(sandbox, tenant_ids[0])
    wait_for(lambda: webhook(sandbox)["deliveries"], what="a delivery")

    sandbox.reset()

    assert webhook(sandbox) == {"url": None, "status": None, "deliveries": []}
    assert sandbox.settings()["webhook_batch_seconds"] == 0.5
    before = len(subscribed.received)
    create_contact(sandbox, tenant_ids[0])
    time.sleep(1.0)  # twice the default batch window: nothing may come
    assert len(subscribed.received) == before
    assert sandbox._call("DELETE", "/webhooks") == {"deleted": False}


def test_delete_stops_deliveries(
    sandbox: SandboxHandle, subscribed: Receiver, tenant_ids: list[str]
) -> None:
    assert sandbox._call("DELETE", "/webhooks") == {"deleted": True}
    create_contact(sandbox, tenant_ids[0])
    time.sleep(FAST["webhook_batch_seconds"] * 3)
    assert subscribed.event_posts() == []
    assert webhook(sandbox)["url"] is None


@pytest.mark.parametrize(("body", "message"), [
    ({"url": "http://127.0.0.1:9/webhooks/xero"}, "'key'"),
    ({"url": "ftp://127.0.0.1/x", "key": KEY}, "http(s) URL"),
    ({"url": "http://127.0.0.1:99999/x", "key": KEY}, "port"),
    ({"url": "http://127.0.0.1:9/x", "key": KEY, "events": ["INVOICE"]}, "unknown field"),
    ([], "JSON object"),
])
def test_bad_webhook_bodies_are_a_clear_400(
    sandbox: SandboxHandle, body: Any, message: str
) -> None:
    with pytest.raises(SandboxError) as caught:
        sandbox._call("POST", "/webhooks", body)
    assert "400" in str(caught.value)
    assert message in str(caught.value)
    assert webhook(sandbox)["url"] is None


@pytest.mark.parametrize(("setting", "value"), [
    ("webhook_retry_base_seconds", 0), ("webhook_timeout_seconds", "5"),
    ("webhook_batch_max_events", 0), ("webhook_make_supplier_event", "yes"),
])
def test_bad_webhook_settings_are_a_400(sandbox: SandboxHandle, setting: str, value: Any) -> None:
    with pytest.raises(SandboxError, match=f"400.*{setting}"):
        sandbox.settings(**{setting: value})
