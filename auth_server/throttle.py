"""Per-client back-off for wrong admin credentials (the sign-in form and bearer tokens).

Failures are counted per client address, never globally, so a stranger's guesses cannot lock
the real admin out; and the right token is always accepted, even from a client that is backing
off. What the back-off buys: a guessing client is told to wait (429 with ``Retry-After``, the
wait doubling with every further failure, up to a minute) and the log stays quiet. Guessing
itself is out of reach because admin tokens have at least 32 characters (see settings).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

FREE_FAILURES = 5  # typos are not punished
FIRST_WAIT_SECONDS = 1.0
MAX_WAIT_SECONDS = 60.0
FORGET_AFTER_SECONDS = 15 * 60.0  # a client quiet this long starts afresh
MAX_CLIENTS = 10_000  # bounds the memory a flood of spoofed addresses can take


@dataclass
class _Failures:
    count: int = 0
    wait_until: float = 0.0  # informative: the right token is accepted during the wait
    last: float = 0.0


class FailureThrottle:
    """Wrong-credential counts per client, with a growing wait; safe to share between threads."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._clients: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def failure(self, client: str) -> float:
        """Note a wrong credential from ``client``; the seconds it must now wait (0: none)."""
        now = self._clock()
        with self._lock:
            record = self._record(client, now)
            record.count += 1
            record.last = now
            if record.count <= FREE_FAILURES:
                return 0.0
            wait = min(FIRST_WAIT_SECONDS * 2 ** (record.count - FREE_FAILURES - 1),
                       MAX_WAIT_SECONDS)
            record.wait_until = now + wait
            return wait

    def failure_logged(self, client: str, what: str, log: logging.Logger) -> float:
        """``failure``, with a warning per free failure and one when the client starts backing
        off: a guessing script cannot fill the log with a line per guess."""
        wait = self.failure(client)
        if not wait:
            log.warning("%s wrong (from %s)", what, client)
        elif wait == FIRST_WAIT_SECONDS:
            log.warning("too many wrong %ss from %s: backing off", what, client)
        return wait

    def success(self, client: str) -> None:
        """The right credential came from ``client``: forget its failures."""
        with self._lock:
            self._clients.pop(client, None)

    def clear(self) -> None:
        """Forget every client (tests, and an operator's restart)."""
        with self._lock:
            self._clients.clear()

    def _record(self, client: str, now: float) -> _Failures:
        record = self._clients.get(client)
        if record is not None and now - record.last > FORGET_AFTER_SECONDS:
            record = None
        if record is None:
            if len(self._clients) >= MAX_CLIENTS:
                self._forget_oldest(now)
            record = self._clients[client] = _Failures()
        return record

    def _forget_oldest(self, now: float) -> None:
        stale = [c for c, r in self._clients.items() if now - r.last > FORGET_AFTER_SECONDS]
        for client in stale or sorted(self._clients, key=lambda c: self._clients[c].last)[:100]:
            del self._clients[client]
