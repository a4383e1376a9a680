"""Signing webhooks out, and the check a receiver makes (CONVENTIONS.md).

Each POST carries ``X-Xero-Elt-Timestamp`` (Unix seconds) and ``X-Xero-Elt-Signature:
v1=<hex HMAC-SHA256 of "<timestamp>.<raw body>">``. Signing the timestamp with the body lets a
receiver refuse a recorded delivery replayed later: it checks the signature, then that the
timestamp is recent (five minutes by default).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

TIMESTAMP_HEADER = "X-Xero-Elt-Timestamp"
SIGNATURE_HEADER = "X-Xero-Elt-Signature"
TOLERANCE_SECONDS = 300


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Xero-Elt-Signature`` value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def signed_headers(secret: str, body: bytes, *, now: float | None = None) -> dict[str, str]:
    """The two headers a delivery carries."""
    timestamp = int(now if now is not None else time.time())
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, timestamp, body)}


def verify(secret: str, headers: Mapping[str, str], body: bytes, *,
           tolerance: int = TOLERANCE_SECONDS, now: float | None = None) -> bool:
    """A receiver's check: the signature matches and the timestamp is within ``tolerance``."""
    lowered = {k.lower(): v for k, v in headers.items()}
    stamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
    given = lowered.get(SIGNATURE_HEADER.lower(), "")
    if not stamp.isdigit():
        return False
    if abs((now if now is not None else time.time()) - int(stamp)) > tolerance:
        return False
    return hmac.compare_digest(given, signature(secret, int(stamp), body))
