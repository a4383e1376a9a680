"""The sandbox's own clock: real time plus an offset that the control plane can move.

Everything time-dependent in the sandbox (token expiry, code TTL, refresh grace, rate-limit
windows, UpdatedDateUTC of mutations) reads this clock, never `datetime.now()`, so a test can
jump 31 minutes ahead across processes with `POST /_sandbox/clock` while freezegun in the test
process leaves the sandbox untouched. The clock keeps ticking after a move.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta


def _real_now() -> datetime:
    # The raw realtime clock rather than datetime.now()/time.time(), which freezegun replaces:
    # a sandbox started in-process keeps real time even under a frozen test.
    return datetime.fromtimestamp(time.clock_gettime(time.CLOCK_REALTIME), tz=UTC)


def parse_iso(value: str) -> datetime:
    """Parse an ISO 8601 timestamp; a value without a zone is taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


class Clock:
    """Thread-safe UTC clock: real time shifted by an adjustable offset."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def now(self) -> datetime:
        """The sandbox's current time (aware, UTC)."""
        return _real_now() + self._offset

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward (or back, if negative) and return the new time."""
        with self._lock:
            self._offset += timedelta(seconds=seconds)
        return self.now()

    def set(self, when: datetime) -> datetime:
        """Jump to `when` (aware or UTC-naive); the clock keeps ticking from there."""
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        with self._lock:
            self._offset = when - _real_now()
        return self.now()

    def reset(self) -> None:
        """Back to real time."""
        with self._lock:
            self._offset = timedelta(0)
