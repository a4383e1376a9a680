"""Xero's webhooks, emitted by the sandbox: one subscription (`/_sandbox/webhooks`), Xero's
intent-to-receive handshake, then signed, batched CONTACT events for contact mutations, retried
with doubling gaps when the receiver fails, and disabled when the retry window runs out.

Xero's rules (REFERENCE.md section 0, xero-webhooks.yaml, developer.xero.com "Configuring your
server"): the payload is `{"events", "firstEventSequence", "lastEventSequence", "entropy"}`, each
event names a resource (not its data); `x-xero-signature` is base64(HMAC-SHA256(raw body, key));
intent to receive is a series of payloads with empty `events` and sequences 0, and the receiver
must answer 200 to correctly signed ones and 401 to the others, within 5 s, with no body and no
cookies. Accounts, tax rates and tracking categories have no events.

Emitting only appends to a queue: one sender thread does the handshake, the batching and the
HTTP, so mutations and API calls never wait for a receiver.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import random
import string
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sandbox.clock import Clock
from sandbox.settings import SandboxSettings

SIGNATURE_HEADER = "x-xero-signature"
DELIVERIES_KEPT = 1000  # delivery history kept for GET (a bound, not a feature)
QUEUE_LIMIT = 100_000  # events waiting beyond this are dropped and counted
POLL_SECONDS = 0.1  # how often a waiting retry looks at the sandbox clock (it can be moved)
_RNG = random.SystemRandom()


# --- payloads and signatures ----------------------------------------------------------------


def sign(body: bytes, key: str) -> str:
    """Xero's `x-xero-signature`: base64(HMAC-SHA256(raw body, webhook key))."""
    digest = hmac.new(key.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def entropy() -> str:
    """A random string, as Xero adds to every payload (its example: 20 capitals)."""
    return "".join(_RNG.choices(string.ascii_uppercase, k=20))


def event_date(when: datetime) -> str:
    """`eventDateUtc` as Xero writes it: UTC, milliseconds, no zone (`2024-06-21T01:15:39.902`)."""
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}"


def payload(events: list[dict[str, Any]], first: int, last: int) -> bytes:
    """A payload's exact bytes (the signature is over these)."""
    body = {"events": events, "firstEventSequence": first, "lastEventSequence": last,
            "entropy": entropy()}
    return json.dumps(body, separators=(",", ":")).encode()


def contact_event_type(body: dict[str, Any], settings: SandboxSettings) -> str | None:
    """The CONTACT event (CREATE or UPDATE) Xero would send for an applied mutation, or None.

    Archiving is an UPDATE. `make_supplier` models IsSupplier derived from bills, which leaves
    the contact (and UpdatedDateUTC) untouched: no event unless the setting says so.
    """
    if body.get("entity") != "contacts":
        return None  # accounts, tax rates, tracking: no events at Xero
    op = body.get("op")
    if op == "create":
        return "CREATE"
    if op in ("update", "archive"):
        return "UPDATE"
    if op == "make_supplier" and settings.webhook_make_supplier_event:
        return "UPDATE"
    return None  # add_field / change_type change the API's shape, not a contact


def retry_offsets(base: float, window: float) -> list[float]:
    """Seconds after the first failure at which each retry is due: gaps base, 2·base, 4·base, …
    while they fit in `window`, then one last try at the window's end (Xero: retries "with
    decreasing frequency for up to 24 hours", then the webhook is disabled)."""
    offsets: list[float] = []
    gap, at = base, base
    while at < window:
        offsets.append(at)
        gap *= 2
        at += gap
    offsets.append(window)
    return offsets


# --- one delivery attempt -------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What a receiver answered: status (None when nothing came back) and why not."""

    status: int | None
    body: bytes = b""
    cookies: bool = False
    error: str | None = None


def post(url: str, body: bytes, signature: str, timeout: float) -> Answer:
    """POST one payload to the configured URL (nowhere else); failures become an Answer."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    https = parts.scheme == "https"
    conn_class = http.client.HTTPSConnection if https else http.client.HTTPConnection
    conn = conn_class(parts.hostname or "", parts.port, timeout=timeout)
    started = time.monotonic()
    try:
        conn.request("POST", target, body, {
            "Content-Type": "application/json; charset=utf-8",
            SIGNATURE_HEADER: signature,
            "User-Agent": "Xero-Webhooks (xero-elt sandbox)",
            "Connection": "close",
        })
        response = conn.getresponse()
        content = response.read()
    except TimeoutError:
        return Answer(None, error=f"timeout: no answer within {timeout:g} s")
    except (OSError, http.client.HTTPException) as exc:
        return Answer(None, error=f"{type(exc).__name__}: {exc}")
    finally:
        conn.close()
    if time.monotonic() - started > timeout:  # a trickled answer is as late as none
        return Answer(None, error=f"timeout: answered after {timeout:g} s")
    return Answer(response.status, content, response.getheader("Set-Cookie") is not None)


# --- the subscription -----------------------------------------------------------------------


@dataclass
class Batch:
    """Events delivered together, with the exact body and signature retried unchanged."""

    events: list[dict[str, Any]]
    body: bytes
    signature: str
    attempts: int = 0
    first_failure: datetime | None = None
    next_try: datetime | None = None  # sandbox time; None: now

    @property
    def first(self) -> int:
        return int(self.events[0]["_sequence"])

    @property
    def last(self) -> int:
        return int(self.events[-1]["_sequence"])


@dataclass
class Subscription:
    """The one webhook of a sandbox and what happened to it."""

    url: str
    key: str
    status: str = "pending"  # "pending" | "ok" | "failing" (CONVENTIONS)
    disabled: bool = False  # retries exhausted (or intent to receive failed): nothing is sent
    intent_to_receive: list[dict[str, Any]] = field(default_factory=list)
    deliveries: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=DELIVERIES_KEPT))
    queue: deque[tuple[float, dict[str, Any]]] = field(default_factory=deque)
    in_flight: Batch | None = None
    dropped: int = 0

    @property
    def intent_to_receive_ok(self) -> bool:
        """The handshake ran and every answer was right."""
        return bool(self.intent_to_receive) and all(c["ok"] for c in self.intent_to_receive)

    def as_dict(self) -> dict[str, Any]:
        """GET /_sandbox/webhooks (the key is never shown)."""
        batch = self.in_flight
        return {
            "url": self.url,
            "status": self.status,
            "disabled": self.disabled,
            "intent_to_receive": list(self.intent_to_receive),
            "deliveries": list(self.deliveries),
            "queued": len(self.queue) + (len(batch.events) if batch else 0),
            "next_retry_at": batch.next_try.isoformat() if batch and batch.next_try else None,
            "dropped": self.dropped,
        }


def check_subscription(body: Any) -> tuple[str, str]:
    """The (url, key) of a `POST /_sandbox/webhooks` body; ValueError says what is wrong."""
    if not isinstance(body, dict):
        raise ValueError("the body must be a JSON object {\"url\", \"key\"}")
    unknown = sorted(set(body) - {"url", "key"})
    if unknown:
        raise ValueError(f"unknown field(s) {unknown}; a webhook takes 'url' and 'key'")
    url, key = body.get("url"), body.get("key")
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https") \
            or not urlsplit(url).hostname:
        raise ValueError("'url' must be an http(s) URL, e.g. "
                         "\"http://127.0.0.1:8080/webhooks/xero\"")
    try:
        urlsplit(url).port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise ValueError(f"'url' has a bad port: {url!r}") from exc
    if not isinstance(key, str) or not key:
        raise ValueError("'key' must be a non-empty string (the webhook signing key)")
    return url, key


class Webhooks:
    """The sandbox's webhook: subscription state, the event queue and the one sender thread."""

    def __init__(self, clock: Clock, settings: Callable[[], SandboxSettings],
                 base_url: Callable[[], str]) -> None:
        self._clock = clock
        self._settings = settings
        self._base_url = base_url
        self._sub: Subscription | None = None
        self._sequence = 0
        self._wake = threading.Condition()
        self._thread: threading.Thread | None = None

    # control plane

    def subscribe(self, url: str, key: str) -> dict[str, Any]:
        """Set (or replace) the webhook; intent to receive starts on the sender thread."""
        with self._wake:
            self._sub = Subscription(url, key)
            self._start_sender()
            self._wake.notify_all()
            return {"url": url, "status": "pending"}

    def unsubscribe(self) -> dict[str, Any]:
        """Remove the webhook (what is queued goes with it)."""
        with self._wake:
            existed, self._sub = self._sub is not None, None
            self._wake.notify_all()
        return {"deleted": existed}

    def snapshot(self) -> dict[str, Any]:
        """The subscription, its handshake and deliveries; nulls when there is none."""
        with self._wake:
            if self._sub is None:
                return {"url": None, "status": None, "deliveries": []}
            return self._sub.as_dict()

    def reset(self) -> None:
        """Forget the subscription, queued events, history and the sequence."""
        with self._wake:
            self._sub = None
            self._sequence = 0
            self._wake.notify_all()

    # emitting

    def mutation_applied(self, tenant_id: str, body: dict[str, Any],
                         result: dict[str, Any]) -> None:
        """Queue the CONTACT event for an applied mutation, if Xero would send one."""
        if self._sub is None:  # the common case takes no lock
            return
        event_type = contact_event_type(body, self._settings())
        contact_id = result.get("id")
        if event_type is None or not isinstance(contact_id, str):
            return
        self.emit(tenant_id, contact_id, event_type)

    def emit(self, tenant_id: str, contact_id: str, event_type: str) -> None:
        """Queue one CONTACT event stamped with the sandbox clock."""
        with self._wake:
            sub = self._sub
            if sub is None:
                return
            if sub.disabled or len(sub.queue) >= QUEUE_LIMIT:
                sub.dropped += 1
                return
            self._sequence += 1
            event = {
                "resourceUrl": f"{self._base_url()}/api.xro/2.0/Contacts/{contact_id}",
                "resourceId": contact_id,
                "eventDateUtc": event_date(self._clock.now()),
                "eventType": event_type,
                "eventCategory": "CONTACT",
                "tenantId": tenant_id,
                "tenantType": "ORGANISATION",
                "_sequence": self._sequence,  # stripped from the payload
            }
            sub.queue.append((time.monotonic(), event))
            self._wake.notify_all()

    # the sender thread

    def _start_sender(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks",
                                            daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            try:
                self._step()
            except Exception as exc:  # the sender must outlive a bug in one step
                print(f"sandbox: webhook sender error: {exc!r}", file=sys.stderr, flush=True)
                time.sleep(POLL_SECONDS)

    def _step(self) -> None:
        """Wait for work, then do one piece of it: a handshake, or one delivery attempt."""
        with self._wake:
            sub, wait = self._sub, None
            if sub is None or sub.disabled:
                wait = 3600.0
            elif not sub.intent_to_receive:
                pass  # the handshake, below
            else:
                wait = self._prepare_batch(sub)
            if wait is not None:
                self._wake.wait(wait)
                return
        assert sub is not None
        if not sub.intent_to_receive:
            self._intent_to_receive(sub)
        elif sub.in_flight is not None:
            self._attempt(sub, sub.in_flight)

    def _prepare_batch(self, sub: Subscription) -> float | None:
        """Under the lock: None when a delivery attempt is due now, else seconds to wait."""
        settings = self._settings()
        batch = sub.in_flight
        if batch is not None:
            if batch.next_try is None:
                return None
            due = (batch.next_try - self._clock.now()).total_seconds()
            return None if due <= 0 else min(due, POLL_SECONDS)
        if not sub.queue:
            return 3600.0
        age = time.monotonic() - sub.queue[0][0]
        most = settings.webhook_batch_max_events
        if age < settings.webhook_batch_seconds and len(sub.queue) < most:
            return settings.webhook_batch_seconds - age
        events = [sub.queue.popleft()[1] for _ in range(min(len(sub.queue), most))]
        wire = [{k: v for k, v in e.items() if k != "_sequence"} for e in events]
        body = payload(wire, events[0]["_sequence"], events[-1]["_sequence"])
        sub.in_flight = Batch(events, body, sign(body, sub.key))
        return None

    def _attempt(self, sub: Subscription, batch: Batch) -> None:
        """Deliver `batch` once; on failure schedule the next retry or disable the webhook."""
        settings = self._settings()
        answer = post(sub.url, batch.body, batch.signature, settings.webhook_timeout_seconds)
        now = self._clock.now()
        ok = answer.status is not None and 200 <= answer.status < 300
        with self._wake:
            if self._sub is not sub:
                return  # replaced or removed meanwhile
            batch.attempts += 1
            sub.deliveries.append({
                "time": now.isoformat(), "status": answer.status, "error": answer.error,
                "events": len(batch.events), "first_event_sequence": batch.first,
                "last_event_sequence": batch.last, "attempt": batch.attempts,
            })
            if ok:
                sub.in_flight, sub.status = None, "ok"
                return
            sub.status = "failing"
            batch.first_failure = batch.first_failure or now
            offsets = retry_offsets(settings.webhook_retry_base_seconds,
                                    settings.webhook_retry_window_seconds)
            if batch.attempts > len(offsets):
                self._disable(sub)
            else:
                wait = timedelta(seconds=offsets[batch.attempts - 1])
                batch.next_try = batch.first_failure + wait

    def _disable(self, sub: Subscription) -> None:
        """Retries exhausted: Xero disables the webhook; what was waiting is dropped."""
        sub.disabled = True
        sub.dropped += len(sub.queue) + (len(sub.in_flight.events) if sub.in_flight else 0)
        sub.queue.clear()
        sub.in_flight = None

    def _intent_to_receive(self, sub: Subscription) -> None:
        """Xero's handshake: payloads with empty events, one correctly signed and two not
        (wrong key; right key over other bytes), in random order. `ok` only if every answer is
        right: 200 to the correct one, 401 to the others, none with a body or cookies."""
        body = payload([], 0, 0)
        wrong_key = sign(body, sub.key + "-not-the-key")
        other_bytes = sign(payload([], 0, 0), sub.key)
        trials = [("correct", sign(body, sub.key), 200), ("wrong_key", wrong_key, 401),
                  ("wrong_body", other_bytes, 401)]
        _RNG.shuffle(trials)
        timeout = self._settings().webhook_timeout_seconds
        checks = []
        for signature_kind, signature, wanted in trials:
            answer = post(sub.url, body, signature, timeout)
            checks.append(_handshake_check(self._clock.now(), signature_kind, wanted, answer))
        with self._wake:
            if self._sub is not sub:
                return
            sub.intent_to_receive = checks
            sub.status = "ok" if sub.intent_to_receive_ok else "failing"
            if not sub.intent_to_receive_ok:  # Xero sends nothing until it is run again
                sub.disabled = True
                sub.dropped += len(sub.queue)
                sub.queue.clear()
            self._wake.notify_all()


def _handshake_check(when: datetime, signature: str, wanted: int, answer: Answer
                     ) -> dict[str, Any]:
    """One intent-to-receive payload and whether its answer is what Xero requires."""
    if answer.status is None:
        problem = answer.error
    elif answer.status != wanted:
        problem = f"answered {answer.status}, Xero requires {wanted}"
    elif answer.body:
        problem = "the answer has a body; Xero requires none"
    elif answer.cookies:
        problem = "the answer sets a cookie; Xero requires none"
    else:
        problem = None
    return {"time": when.isoformat(), "signature": signature, "status": answer.status,
            "expected": wanted, "ok": problem is None, "problem": problem}
