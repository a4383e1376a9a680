"""Xero's webhooks in: ``POST /webhooks/xero``.

Xero's rules (REFERENCE.md section 0): ``x-xero-signature`` is base64(HMAC-SHA256(raw body,
webhook key)); a correctly signed payload gets 200 with no body (intent to receive included),
anything else 401 with no body, within 5 seconds, never a cookie. So the request thread does
only this: verify the raw bytes in constant time, store the events in one transaction (so a 200
means they are durable), wake the targeted-sync dispatcher, answer. A payload that fails the
signature is never parsed, stored or acted on.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from typing import Any

from auth_server.errors import InvalidInput
from auth_server.web import Request, Response, parse_json
from store import StoreError, utcnow
from store.xero_events import parse_event

log = logging.getLogger(__name__)

PATH = "/webhooks/xero"
SIGNATURE_HEADER = "x-xero-signature"
MAX_EVENTS = 10_000  # per payload; Xero batches far fewer


def signature(body: bytes, key: str) -> str:
    """The ``x-xero-signature`` Xero sends for ``body``."""
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def verified(body: bytes, header: str | None, key: str | None) -> bool:
    """Whether ``header`` is the signature of exactly these bytes under ``key`` (constant time)."""
    if not key or not header or len(header) > 200:
        return False
    return hmac.compare_digest(signature(body, key).encode(), header.strip().encode())


def _empty(status: int) -> Response:
    # No body and no cookies, as Xero requires; nothing here is worth caching either.
    return Response(status=status, body=b"", content_type="text/plain")


def receive(request: Request) -> Response:
    """Verify, store, wake the dispatcher, answer (200 or 401, both empty)."""
    app = request.app
    if not verified(request.body, request.headers.get(SIGNATURE_HEADER),
                    app.settings.xero_webhook_key):
        log.warning("Xero webhook with a wrong or missing signature refused")
        return _empty(401)
    try:
        payload: Any = parse_json(request.body)
    except InvalidInput:
        payload = None
    raw_events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(raw_events, list) or len(raw_events) > MAX_EVENTS:
        # Signed but not a payload: Xero would not send it, so a retry would not help either.
        log.warning("signed Xero webhook without an events list refused")
        return _empty(400)
    now = utcnow()
    events = [e for e in (parse_event(raw, now) for raw in raw_events) if e is not None]
    if len(events) < len(raw_events):
        log.warning("%d malformed event(s) in a signed Xero webhook left out",
                    len(raw_events) - len(events))
    try:
        added = app.store.receive_xero_events(events, handshake=not raw_events, now=now)
    except StoreError as exc:
        # Not stored, so not acknowledged: Xero delivers it again.
        log.error("could not store Xero webhook events: %s", exc)
        return _empty(503)
    if raw_events:
        log.info("Xero webhook: %d event(s), %d new", len(events), added)
        if added and app.targeted_sync is not None:
            app.targeted_sync.wake()
    else:
        log.info("Xero webhook intent to receive answered")
    return _empty(200)
