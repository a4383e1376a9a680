"""The one retry policy for calls to Xero: which kinds of failure are tried again, how often, and
how long to wait between tries.

Whether an answer is worth trying again is decided where it is read, in one place each:
``client.validate_response`` for the Accounting API, ``identity`` for the token endpoint and
``/connections``. They raise ``Retriable`` naming the kind of failure and what to raise if the
policy gives up. How often each kind is tried again and how long to wait is decided here, once,
by a tenacity policy (as dlt's own ``requests`` helper does with ``wait_exponential_retry_after``):

- ``TRANSIENT`` (5xx, timeouts, dropped connections): tried again ``max_retries`` times, after a
  backoff;
- ``THROTTLED`` (a minute or unknown 429): tried again 8 times while the wait stays within
  ``max_retry_after_seconds``, after Xero's ``Retry-After`` (else a backoff capped there); a day
  429 is not retriable: the reader stops the organisation instead;
- ``DAMAGED`` (a body cut short, malformed or undecodable): tried again once, after a backoff;
- ``UNAUTHORIZED`` (a 401 for the access token): tried again once, at once, with a fresh token.

The backoff is exponential from ``backoff_seconds``, capped at ``max_backoff_seconds``, with
jitter so that organisations and processes retrying together spread out. Each kind is counted on
its own within one call (a 429 does not use up the retries a 503 may need).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import httpx
import tenacity

from connector.settings import XeroSettings

log = logging.getLogger(__name__)

T = TypeVar("T")

TRANSIENT = "transient"
THROTTLED = "throttled"
DAMAGED = "damaged"
UNAUTHORIZED = "unauthorized"

# Minute 429s sat out per call before the organisation is given up for this run.
MAX_THROTTLED = 8


class Retriable(Exception):
    """An answer worth trying again, as its reader decided.

    Args:
        kind: ``TRANSIENT``, ``THROTTLED``, ``DAMAGED`` or ``UNAUTHORIZED`` (the policy's table).
        give_up: the error to raise when the policy stops trying, given how many times this kind
            was met in the call.
        retry_after: Xero's ``Retry-After`` in seconds, when it sent one.
        note: what happened, for the log line of a retry.
        before_retry: called after the wait, before the next try (a fresh token, forgetting a
            rate counter); what it raises ends the call.
    """

    def __init__(
        self,
        kind: str,
        give_up: Callable[[int], BaseException],
        *,
        retry_after: float | None = None,
        note: str = "",
        before_retry: Callable[[], object] | None = None,
    ) -> None:
        super().__init__(note or kind)
        self.kind = kind
        self.give_up = give_up
        self.retry_after = retry_after
        self.note = note
        self.before_retry = before_retry
        self.tries = 0  # how many times this kind was met in the call, this one included


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with jitter: ``base * 2**(attempt - 1)``, capped, times 0.5–1.5."""

    base: float
    cap: float

    def delay(self, attempt: int) -> float:
        """Seconds to wait before retry number ``attempt`` (1 for the first retry)."""
        return min(self.cap, self.base * 2 ** (max(1, attempt) - 1)) * random.uniform(0.5, 1.5)


def backoff_delay(settings: XeroSettings, attempt: int) -> float:
    """The settings' backoff before retry number ``attempt`` (1 for the first retry)."""
    return Backoff(settings.backoff_seconds, settings.max_backoff_seconds).delay(attempt)


def retry_after(response: httpx.Response) -> float | None:
    """Xero's ``Retry-After`` in seconds (never negative), or None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class RetryPolicy:
    """How many times each kind of ``Retriable`` is tried again, and the waits between tries.

    Args:
        limits: retries allowed per kind within one call (a kind not named is not retried).
        backoff: the wait for every kind but ``UNAUTHORIZED`` (and ``THROTTLED`` with
            Retry-After).
        max_retry_after: the longest wait a ``THROTTLED`` answer may ask for; beyond it (or its
            backoff capped at it) the policy gives up.
    """

    limits: Mapping[str, int]
    backoff: Backoff
    max_retry_after: float = math.inf

    @classmethod
    def for_api(cls, settings: XeroSettings) -> RetryPolicy:
        """The policy for Xero's Accounting API (``connector.client``)."""
        return cls(
            limits={TRANSIENT: settings.max_retries, THROTTLED: MAX_THROTTLED, DAMAGED: 1,
                    UNAUTHORIZED: 1},
            backoff=Backoff(settings.backoff_seconds, settings.max_backoff_seconds),
            max_retry_after=settings.max_retry_after_seconds,
        )

    @classmethod
    def transient_only(cls, settings: XeroSettings, attempts: int,
                       backoff: Backoff | None = None) -> RetryPolicy:
        """``attempts`` tries in all for transient failures (identity calls, token refresh)."""
        return cls(limits={TRANSIENT: attempts - 1},
                   backoff=backoff or Backoff(settings.backoff_seconds,
                                              settings.max_backoff_seconds))

    def _wait(self, failure: Retriable) -> float:
        if failure.kind == UNAUTHORIZED:
            return 0.0
        if failure.kind == THROTTLED:
            if failure.retry_after is not None:
                return failure.retry_after
            return min(self.backoff.delay(failure.tries), self.max_retry_after)
        return self.backoff.delay(failure.tries)

    def _stop(self, failure: Retriable, wait: float) -> bool:
        if failure.tries > self.limits.get(failure.kind, 0):
            return True
        return failure.kind == THROTTLED and wait > self.max_retry_after

    def call(self, attempt: Callable[[], T], *,
             sleep: Callable[[float], None] | None = None) -> T:
        """Run ``attempt`` until it returns, trying again on ``Retriable`` within the limits.

        Anything else it raises passes through at once. When the policy gives up, the failure's
        ``give_up`` error is raised.

        Args:
            attempt: one try.
            sleep: how to wait (default ``time.sleep``, looked up at each wait).
        """
        counts: Counter[str] = Counter()
        pause = sleep or (lambda seconds: time.sleep(seconds))
        last: list[Retriable] = []  # the failure being waited out

        def wait(state: tenacity.RetryCallState) -> float:
            assert state.outcome is not None
            failure = state.outcome.exception()
            assert isinstance(failure, Retriable)
            counts[failure.kind] += 1
            failure.tries = counts[failure.kind]
            last[:] = [failure]
            return self._wait(failure)

        def stop(state: tenacity.RetryCallState) -> bool:
            return self._stop(last[0], state.upcoming_sleep)

        def before_sleep(state: tenacity.RetryCallState) -> None:
            if last[0].kind != UNAUTHORIZED:
                log.info("%s; retrying in %.1fs", last[0].note or last[0].kind,
                         state.upcoming_sleep)

        def do_sleep(seconds: float) -> None:
            failure = last[0]
            if failure.kind != UNAUTHORIZED:  # a refused token is retried at once (a fresh one)
                pause(float(seconds))
            if failure.before_retry is not None:
                failure.before_retry()

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(Retriable),
            wait=wait,
            stop=stop,
            before_sleep=before_sleep,
            sleep=do_sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except Retriable as failure:
            raise failure.give_up(failure.tries) from None


__all__ = [
    "DAMAGED",
    "MAX_THROTTLED",
    "THROTTLED",
    "TRANSIENT",
    "UNAUTHORIZED",
    "Backoff",
    "Retriable",
    "RetryPolicy",
    "backoff_delay",
    "retry_after",
]
