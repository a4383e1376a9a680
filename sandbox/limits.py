"""Xero's API rate limits, per app+organisation pair and per app, on the sandbox clock.

Limits (Xero's defaults, changeable through `POST /_sandbox/limits`): 5 calls in flight, 60 per
minute and 5,000 per day for each app+tenant pair; 10,000 per minute for an app across tenants.
The app's window is a minute, as Xero's; `app_window_seconds` shortens it for tests (say 30 calls
in 6 seconds: the app limit's behaviour in a tenth of the time).

Windows are *rolling* (a log of call times per key), as Xero's documentation has described them:
call 61 within any 60 seconds is refused, and `Retry-After` is the time until the oldest call in
the window leaves it - so a day-limit `Retry-After` is usually many hours. Refused calls (429)
do not use up quota. With enforcement off (`--no-rate-limits`) calls are still counted so the
`X-*-Remaining` headers keep telling the truth (floored at 0).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from sandbox.clock import Clock

MINUTE = 60.0
DAY = 86_400.0


@dataclass(frozen=True)
class LimitConfig:
    """The limits in force; `enforced=False` only counts."""

    concurrent: int = 5
    minute: int = 60
    day: int = 5000
    app_minute: int = 10_000
    app_window_seconds: int = 60
    enforced: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON shape used by the control plane."""
        return {
            "concurrent": self.concurrent,
            "minute": self.minute,
            "day": self.day,
            "app_minute": self.app_minute,
            "app_window_seconds": self.app_window_seconds,
            "enforced": self.enforced,
        }


@dataclass
class _TenantWindows:
    minute: deque[float] = field(default_factory=deque)
    day: deque[float] = field(default_factory=deque)
    in_flight: int = 0


@dataclass
class Admission:
    """The outcome of `RateLimiter.admit`: headers to send and, if admitted, a slot to release."""

    admitted: bool
    headers: dict[str, str]
    problem: str | None = None
    retry_after: int | None = None
    _release: Callable[[], None] | None = None

    def release(self) -> None:
        """Give back the concurrency slot (idempotent; call when the response is written)."""
        if self._release is not None:
            release, self._release = self._release, None
            release()


def _prune(window: deque[float], older_than: float) -> None:
    while window and window[0] <= older_than:
        window.popleft()


def _seconds_until(moment: float, now: float) -> int:
    return max(1, math.ceil(moment - now))


class RateLimiter:
    """Counts calls and decides 429s; all methods are thread-safe."""

    def __init__(self, clock: Clock, config: LimitConfig | None = None) -> None:
        self._clock = clock
        self._default = config or LimitConfig()
        self.config = self._default
        self._lock = threading.Lock()
        self._app: defaultdict[str, deque[float]] = defaultdict(deque)
        self._tenant: defaultdict[tuple[str, str], _TenantWindows] = defaultdict(_TenantWindows)

    def reset(self) -> None:
        """Forget every call and return to the limits the sandbox started with."""
        with self._lock:
            self.config = self._default
            self._app.clear()
            self._tenant.clear()

    def configure(self, **changes: Any) -> LimitConfig:
        """Change some limits (keys of `LimitConfig`); unknown keys raise ValueError."""
        allowed = set(LimitConfig.__dataclass_fields__)
        unknown = set(changes) - allowed
        if unknown:
            raise ValueError(f"unknown limit(s) {sorted(unknown)}; known: {sorted(allowed)}")
        for key, value in changes.items():
            if key == "enforced":
                if not isinstance(value, bool):
                    raise ValueError("'enforced' must be true or false")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"limit {key!r} must be a non-negative integer")
            elif key == "app_window_seconds" and value < 1:
                raise ValueError("'app_window_seconds' must be at least 1")
        with self._lock:
            self.config = replace(self.config, **changes)
            return self.config

    def app_headers(self, client_id: str | None) -> dict[str, str]:
        """`X-AppMinLimit-Remaining` without counting a call (for refused answers)."""
        if client_id is None:
            return {}
        with self._lock:
            now = self._clock.now().timestamp()
            app = self._app[client_id]
            _prune(app, now - self.config.app_window_seconds)
            return {"X-AppMinLimit-Remaining": str(max(0, self.config.app_minute - len(app)))}

    def admit(self, client_id: str, tenant_id: str | None) -> Admission:
        """Count one call of `client_id` (for `tenant_id`, if tenant-scoped) or refuse it."""
        with self._lock:
            cfg = self.config
            now = self._clock.now().timestamp()
            app = self._app[client_id]
            _prune(app, now - cfg.app_window_seconds)
            windows: _TenantWindows | None = None
            if tenant_id is not None:
                windows = self._tenant[(client_id, tenant_id)]
                _prune(windows.minute, now - MINUTE)
                _prune(windows.day, now - DAY)

            problem, retry_after = (None, None)
            if cfg.enforced:
                problem, retry_after = self._problem(cfg, now, app, windows)
            if problem is None:
                app.append(now)
                if windows is not None:
                    windows.minute.append(now)
                    windows.day.append(now)
                    windows.in_flight += 1
            headers = self._headers(cfg, app, windows)
            if problem is not None:
                return Admission(False, headers, problem, retry_after)
            release = self._releaser(windows) if windows is not None else None
            return Admission(True, headers, _release=release)

    def _releaser(self, windows: _TenantWindows) -> Callable[[], None]:
        def release() -> None:
            with self._lock:
                windows.in_flight -= 1

        return release

    @staticmethod
    def _problem(
        cfg: LimitConfig, now: float, app: deque[float], windows: _TenantWindows | None
    ) -> tuple[str | None, int | None]:
        # The day limit is reported first: waiting out a minute is pointless when the day is spent.
        if windows is not None:
            if len(windows.day) >= cfg.day:
                oldest = windows.day[0] if windows.day else now
                return "day", _seconds_until(oldest + DAY, now)
            if len(windows.minute) >= cfg.minute:
                oldest = windows.minute[0] if windows.minute else now
                return "minute", _seconds_until(oldest + MINUTE, now)
        if len(app) >= cfg.app_minute:
            oldest = app[0] if app else now
            return "appminute", _seconds_until(oldest + cfg.app_window_seconds, now)
        if windows is not None and windows.in_flight >= cfg.concurrent:
            # Xero's Retry-After on a concurrency refusal is unconfirmed; like the reference's
            # reconstruction, none is sent, so clients must fall back to a short backoff.
            return "concurrent", None
        return None, None

    @staticmethod
    def _headers(
        cfg: LimitConfig, app: deque[float], windows: _TenantWindows | None
    ) -> dict[str, str]:
        headers: dict[str, str] = {}
        if windows is not None:
            headers["X-DayLimit-Remaining"] = str(max(0, cfg.day - len(windows.day)))
            headers["X-MinLimit-Remaining"] = str(max(0, cfg.minute - len(windows.minute)))
        headers["X-AppMinLimit-Remaining"] = str(max(0, cfg.app_minute - len(app)))
        return headers

    def snapshot(self) -> dict[str, Any]:
        """Current counts per app and per app+tenant (for `GET /_sandbox/limits`)."""
        with self._lock:
            now = self._clock.now().timestamp()
            tenants = []
            for (client_id, tenant_id), w in self._tenant.items():
                _prune(w.minute, now - MINUTE)
                _prune(w.day, now - DAY)
                tenants.append(
                    {
                        "client_id": client_id,
                        "tenant_id": tenant_id,
                        "minute": len(w.minute),
                        "day": len(w.day),
                        "in_flight": w.in_flight,
                    }
                )
            apps = {}
            for client_id, window in self._app.items():
                _prune(window, now - self.config.app_window_seconds)
                apps[client_id] = len(window)
            return {"limits": self.config.as_dict(), "apps": apps, "tenants": tenants}
