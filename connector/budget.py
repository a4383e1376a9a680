"""One budget of Xero calls for the whole app, drawn before every call.

Xero limits an app, across all its organisations, to 10,000 calls in a rolling minute
(``X-AppMinLimit-Remaining``; past it a 429 with ``X-Rate-Limit-Problem: appminute``). Pacing
each organisation (``connector.client``) cannot keep many workers under that: each is within its
own organisations' limits and together they trip the app's. So every call first takes a slot
from the process's ``AppBudget``, which takes slots in small leases from an ``AppCallLedger``
that every process calling Xero for the app shares:

- the app's store (``store.app_budget``): every process on every machine (PostgreSQL), or every
  process on one machine (SQLite);
- ``LocalLedger`` (here): this process only, the plain dlt use (no app store).

A lease is up to ``lease_calls`` calls, granted while the calls counted in the window leave room
under the limit, and usable for ``hold`` seconds. The ledger counts a lease's calls until a window
after the last of them was answered (Xero has counted it by then, however slow the way there; the
holder settles the lease: what it used and when; what it did not use goes back), or, when its
holder died before settling (SIGKILL), until a window after its hold ran out. So a killed
worker's budget is never lost for longer than a window and a hold.

Xero's word wins over our count: a 429 ``appminute`` is recorded in the ledger as "no calls
before now + Retry-After", which every process honours at its next lease (the one held is given
back at once); ``X-AppMinLimit-Remaining`` below what the lease still holds shrinks the lease,
and at 0 this process waits a moment before taking more (something outside the budget, such as
another deployment of the app, is calling).
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

log = logging.getLogger(__name__)

# A lease is at most 1/LEASE_FRACTION of the limit (at least one call): a worker never holds
# much of the app's window, and the calls of one lease are sent within moments of each other.
LEASE_FRACTION = 200
# A lease is usable for at most this long (a twelfth of the window when that is shorter).
MAX_HOLD_SECONDS = 5.0
# The longest a process waits before asking the ledger again when nothing was granted.
MAX_RETRY_SECONDS = 5.0


def counted_window(window: float) -> float:
    """How long a sent call is counted: the window and a margin, since Xero starts counting
    when the call arrives, a moment after we counted it (60.5 s for Xero's minute)."""
    return window + max(0.25, window / 120)


@dataclass(frozen=True)
class AppLease:
    """What a ledger granted: ``calls`` slots under ``lease_id`` (0 and None: nothing), and when
    nothing was granted, the seconds until room is likely (``wait``)."""

    lease_id: str | None
    calls: int
    wait: float = 0.0


class AppCallLedger(Protocol):
    """Where the app's calls of the current window are booked; the app's store is one."""

    def take_app_calls(self, want: int, *, limit: int, window: float, hold: float) -> AppLease:
        """Grant up to ``want`` calls if fewer than ``limit`` are counted in the last ``window``
        seconds and no pause is in force; count them until ``hold + window`` from now."""
        ...

    def settle_app_calls(self, lease_id: str, used: int, last_used_after: float, *,
                         window: float) -> None:
        """The lease's holder used ``used`` of its calls, the last ``last_used_after`` seconds
        after the grant: count those until ``window`` after that; the rest go back."""
        ...

    def pause_app_calls(self, seconds: float) -> None:
        """No calls for the whole app before ``seconds`` from now (Xero's ``Retry-After``)."""
        ...


class LocalLedger:
    """An ``AppCallLedger`` in this process's memory: the plain dlt use, and tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._leases: dict[str, tuple[int, float, float]] = {}  # id: calls, granted, until
        self._not_before = 0.0
        self._ids = itertools.count(1)

    def take_app_calls(self, want: int, *, limit: int, window: float, hold: float) -> AppLease:
        with self._lock:
            now = self._clock()
            self._leases = {k: v for k, v in self._leases.items() if v[2] > now}
            if now < self._not_before:
                return AppLease(None, 0, self._not_before - now)
            room = limit - sum(calls for calls, _g, _u in self._leases.values())
            if room <= 0:
                return AppLease(None, 0, min(u for _c, _g, u in self._leases.values()) - now)
            lease_id = f"local-{next(self._ids)}"
            granted = min(want, room)
            self._leases[lease_id] = (granted, now, now + hold + window)
            return AppLease(lease_id, granted)

    def settle_app_calls(self, lease_id: str, used: int, last_used_after: float, *,
                         window: float) -> None:
        with self._lock:
            lease = self._leases.pop(lease_id, None)
            if lease is not None and used > 0:
                _calls, granted, until = lease
                self._leases[lease_id] = (used, granted,
                                          min(until, granted + last_used_after + window))

    def pause_app_calls(self, seconds: float) -> None:
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + seconds)

    def counted(self) -> int:
        """Calls counted in the window now (for tests)."""
        with self._lock:
            now = self._clock()
            return sum(c for c, _g, u in self._leases.values() if u > now)


@dataclass
class _Held:
    """The lease this process holds: what is left of it and what it used."""

    lease_id: str
    left: int
    taken_at: float  # our clock, when we asked for it (never after the ledger's grant)
    deadline: float
    used: int = 0
    last_used: float = 0.0  # when the last of its calls was answered (or sent, until then)
    in_flight: int = 0
    retired: bool = False  # no more calls from it; settled once the last one is answered


class AppBudget:
    """This process's draw on the app's budget: ``acquire()`` before every call to Xero.

    Threads share one lease; when it is spent or its hold ran out, one thread settles it and asks
    the ledger for the next (as many calls as threads are waiting, up to ``lease_calls``) while
    the others wait.

    Args:
        ledger: where the app's calls are booked (the app's store, or ``LocalLedger``).
        limit: calls the app allows itself in a window (``app_calls_per_minute``).
        window: the window's length in seconds (Xero's minute; tests shorten it).
        lease_calls: the most calls one lease takes (default 1/200 of the limit, at least 1).
        hold: how long a lease may be used (default a twelfth of the window, at most 5 s).
        clock: monotonic seconds (tests may pass their own).
    """

    def __init__(
        self,
        ledger: AppCallLedger,
        *,
        limit: int,
        window: float = 60.0,
        lease_calls: int | None = None,
        hold: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.limit = limit
        self.window = window
        self.lease_calls = lease_calls or max(1, limit // LEASE_FRACTION)
        self.hold = hold if hold is not None else min(MAX_HOLD_SECONDS, window / 12)
        self._counted = counted_window(window)
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._lease: _Held | None = None
        self._taking = False
        self._waiting = 0
        self._retry_at = 0.0
        self._paused_until = 0.0

    def acquire(self) -> _Held:
        """Block until this process may send one call to Xero, and book it; hand the slot back
        to ``done`` once the call was answered (or failed)."""
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    slot = self._take_slot()
                    if slot is not None:
                        return slot
            finally:
                self._waiting -= 1

    def done(self, slot: _Held) -> None:
        """The call of ``slot`` was answered: Xero has counted it by now, so its lease counts
        until a window after this moment (settled once the lease's last call is answered)."""
        with self._cond:
            slot.in_flight -= 1
            slot.last_used = max(slot.last_used, self._clock())
            settle = slot.retired and slot.in_flight == 0
        if settle:
            self._settle(slot)

    def _take_slot(self) -> _Held | None:
        """One look (the condition held): the lease a slot was booked from; otherwise None
        after this waited, or asked the ledger for a lease, and the caller looks again."""
        now = self._clock()
        if now < self._paused_until:
            self._cond.wait(self._paused_until - now)
            return None
        lease = self._lease
        if lease is not None and lease.left > 0 and now < lease.deadline:
            lease.left -= 1
            lease.used += 1
            lease.in_flight += 1
            lease.last_used = max(lease.last_used, now)
            return lease
        if self._taking:  # another thread is asking the ledger
            self._cond.wait(1.0)
            return None
        if now < self._retry_at:
            self._cond.wait(self._retry_at - now)
            return None
        self._renew_lease(min(self.lease_calls, max(1, self._waiting)))
        return None

    def _renew_lease(self, want: int) -> None:
        """Settle the lease held (if any) and ask for the next, without holding the condition
        during the ledger's round trip."""
        self._taking = True
        spent = self._retire()
        self._cond.release()
        granted: AppLease | None = None
        taken_at = self._clock()
        try:
            if spent is not None:
                self._settle(spent)
            granted = self.ledger.take_app_calls(want, limit=self.limit, window=self._counted,
                                                 hold=self.hold)
        finally:
            self._cond.acquire()
            self._taking = False
            self._cond.notify_all()
        if granted.calls > 0 and granted.lease_id is not None:
            self._lease = _Held(granted.lease_id, granted.calls, taken_at,
                                taken_at + self.hold)
        else:
            wait = min(MAX_RETRY_SECONDS, max(0.01, granted.wait))
            self._retry_at = self._clock() + wait
            log.debug("app budget: no calls free; asking again in %.2fs", wait)

    def _settle(self, held: _Held) -> None:
        after = held.last_used - held.taken_at if held.used else 0.0
        self.ledger.settle_app_calls(held.lease_id, held.used, max(0.0, after),
                                     window=self._counted)

    def _retire(self) -> _Held | None:
        """Stop using the lease held (the condition held); it, if it must be settled now (none of
        its calls in flight; otherwise the last one's ``done`` settles it)."""
        held, self._lease = self._lease, None
        if held is None:
            return None
        held.retired = True
        return held if held.in_flight == 0 else None

    def _give_back(self) -> None:
        """Retire the lease held now (the condition held); its unused calls go back."""
        held = self._retire()
        if held is not None:
            self._settle(held)

    def observe(self, headers: Mapping[str, str]) -> None:
        """Read Xero's ``X-AppMinLimit-Remaining``: never hold more than Xero says is left, and
        at 0 wait a moment (a sixtieth of the window) before the next call."""
        value = headers.get("X-AppMinLimit-Remaining")
        try:
            remaining = int(value) if value is not None else None
        except ValueError:
            remaining = None
        if remaining is None:
            return
        with self._cond:
            lease = self._lease
            if lease is not None and lease.left > remaining:
                lease.left = max(0, remaining)
            if remaining <= 0:
                self._paused_until = max(self._paused_until, self._clock() + self.window / 60)

    def throttled(self, retry_after: float | None) -> None:
        """Xero answered 429 ``appminute``: no calls from anyone before Retry-After (a
        sixtieth of the window if it sent none); the lease held goes back."""
        seconds = retry_after if retry_after is not None else self.window / 60
        log.warning("Xero's app limit was reached (429 appminute): the app waits %.1fs", seconds)
        self.ledger.pause_app_calls(seconds)
        with self._cond:
            self._paused_until = max(self._paused_until, self._clock() + seconds)
            self._give_back()
            self._cond.notify_all()

    def close(self) -> None:
        """Settle the lease held: its unused calls go back to the app at once."""
        with self._cond:
            self._give_back()


__all__ = ["AppBudget", "AppCallLedger", "AppLease", "LocalLedger", "counted_window"]
