"""The one retry policy for calls to Xero: how long to wait before trying again.

Whether an answer is worth retrying is decided where it is read (``client`` for the Accounting
API, ``identity`` for the token endpoint and ``/connections``); how long to wait is decided here,
once: exponential backoff from ``backoff_seconds``, capped at ``max_backoff_seconds``, with
jitter so that organisations and processes retrying together spread out; and ``Retry-After``
read the same way everywhere.
"""

from __future__ import annotations

import random

import httpx

from connector.settings import XeroSettings


def backoff_delay(settings: XeroSettings, attempt: int) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
    base = settings.backoff_seconds * 2 ** (max(1, attempt) - 1)
    return min(settings.max_backoff_seconds, base) * random.uniform(0.5, 1.5)


def retry_after(response: httpx.Response) -> float | None:
    """Xero's ``Retry-After`` in seconds (never negative), or None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


__all__ = ["backoff_delay", "retry_after"]
