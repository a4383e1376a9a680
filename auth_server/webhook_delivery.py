"""Delivering webhooks out: a worker thread that posts the outbox's due events, with retries.

Events are written to the store's outbox with the change they report
(``store/webhook_outbox.py``); this worker claims the due ones, signs and posts them
to ``[auth_server] webhook_url``, and records every attempt. A 2xx answer delivers an event;
anything else (a refusal, a timeout, a 500, a redirect) is retried on ``RETRY_DELAYS``: 30 s,
doubling to 4 h, until an attempt more than 24 h after the first has failed too; then the event
is ``failed``, and ``xero-elt webhooks replay`` or the admin page sends it again. A receiver
that is down therefore loses nothing, and a server that restarts picks up where it stopped (the
outbox is in the store, not in memory). ``webhook_retry_scale`` shrinks the schedule for tests.

Logs name the event and the receiver's host only: a webhook URL may carry a token of its own.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from datetime import timedelta
from urllib.parse import urlsplit

from auth_server.settings import AuthServerSettings
from auth_server.webhook_signature import signed_headers
from store import Store, StoreError, utcnow
from store.webhook_outbox import WebhookEvent

log = logging.getLogger(__name__)

FIRST_DELAY_SECONDS = 30.0
MAX_DELAY_SECONDS = 4 * 3600.0
RETRY_WINDOW_SECONDS = 24 * 3600.0
REQUEST_TIMEOUT_SECONDS = 10.0
LEASE_SECONDS = 60.0  # longer than one attempt can take, so two workers never overlap


def _retry_delays() -> tuple[float, ...]:
    """Waits between attempts: doubling from 30 s, capped at 4 h, until 24 h have passed."""
    delays: list[float] = []
    while sum(delays) < RETRY_WINDOW_SECONDS:
        delays.append(min(FIRST_DELAY_SECONDS * 2 ** len(delays), MAX_DELAY_SECONDS))
    return tuple(delays)


RETRY_DELAYS = _retry_delays()
"""30 s, 1, 2, 4, 8, 16, 32 min, 1 h 4 min, 2 h 8 min, then 4 h: 15 attempts over 24 h 15 min."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is not a delivery (urllib would turn the POST into a GET)."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def post_event(url: str, secret: str, body: bytes) -> tuple[int | None, str | None]:
    """POST one event; its HTTP status (None when there was none) and an error, if any."""
    headers = {"Content-Type": "application/json", "User-Agent": "xero-elt-webhooks/1",
               **signed_headers(secret, body)}
    # The scheme is http(s): AuthServerSettings checks webhook_url.
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with _OPENER.open(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            response.read(65536)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code, f"HTTP {exc.code}"
    except (OSError, ValueError) as exc:  # refused, reset, timed out, bad URL
        reason = getattr(exc, "reason", None)
        return None, type(reason if isinstance(reason, BaseException) else exc).__name__
    if 200 <= status < 300:
        return status, None
    return status, f"HTTP {status}"


def receiver_host(url: str) -> str:
    """What logs say about the receiver: its host and port, never a path, query or user."""
    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)


def deliver(store: Store, settings: AuthServerSettings, event: WebhookEvent) -> bool:
    """One attempt at ``event`` (claimed by the caller), recorded in the outbox; True if
    delivered."""
    assert settings.webhook_url
    assert settings.webhook_secret
    status, error = post_event(settings.webhook_url, settings.webhook_secret, event.body.encode())
    delivered = error is None
    next_at = None
    if not delivered and event.attempts < len(RETRY_DELAYS):
        wait = RETRY_DELAYS[event.attempts] * settings.webhook_retry_scale
        next_at = utcnow() + timedelta(seconds=wait)
    store.record_webhook_attempt(event.event_id, delivered=delivered, status_code=status,
                                 error=error, next_attempt_at=next_at)
    host = receiver_host(settings.webhook_url)
    if delivered:
        log.info("webhook %s (%s) delivered to %s", event.event_id, event.type, host)
    elif next_at is not None:
        log.warning("webhook %s (%s) to %s failed (%s); attempt %d, retrying at %s",
                    event.event_id, event.type, host, error, event.attempts + 1,
                    next_at.isoformat(timespec="seconds"))
    else:
        log.error("webhook %s (%s) to %s failed (%s) for the whole retry window; replay it with"
                  " `xero-elt webhooks replay %s`", event.event_id, event.type, host, error,
                  event.event_id)
    return delivered


def deliver_due(store: Store, settings: AuthServerSettings) -> int:
    """Attempt every event due now; the number delivered."""
    if not settings.webhook_url or not settings.webhook_secret:
        return 0
    delivered = 0
    for event in store.claim_due_webhook_events(lease_seconds=LEASE_SECONDS):
        delivered += deliver(store, settings, event)
    return delivered


class WebhookWorker:
    """The auth server's delivery thread: ``deliver_due`` every ``webhook_poll_seconds``."""

    def __init__(self, store: Store, settings: AuthServerSettings) -> None:
        self.store = store
        self.settings = settings
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start delivering in the background (no-op without ``webhook_url``)."""
        if not self.settings.webhook_url or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._loop, name="webhook-delivery", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the attempt in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(REQUEST_TIMEOUT_SECONDS + 1)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                deliver_due(self.store, self.settings)
            except StoreError as exc:
                log.warning("webhook delivery could not read the outbox: %s", exc)
            except Exception as exc:  # never let the thread die: the outbox keeps the events
                log.error("webhook delivery failed: %s", type(exc).__name__)
            self._stop.wait(self.settings.webhook_poll_seconds)
