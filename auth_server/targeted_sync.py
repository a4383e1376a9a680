"""Turns stored Xero events into targeted supplier reads, in the background.

Woken by the receiver (or every ``xero_webhook_poll_seconds``, for events another replica stored
or a busy organisation left pending), the dispatcher waits ``xero_webhook_coalesce_seconds`` so
a burst becomes one read, then per organisation with pending events:

- not connected here (unknown, disconnected, …): its events are marked ``ignored``;
- connected: one ``python -m pipelines run --tenant T --webhook-events --wait W`` subprocess
  (the auth server must not import ``pipelines``), unless one for it is still running. That run
  takes the organisation's run lock like any run, so it never overlaps a scheduled one; it
  reads the pending events itself once it holds the lock and marks them processed after its
  load committed. Events that arrive meanwhile stay pending for the next round.

A run that fails (or cannot get the lock within W) leaves its events pending; the organisation
is tried again after a delay that doubles up to ``MAX_BACKOFF_SECONDS``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from auth_server.settings import AuthServerSettings
from store import ConnectionStatus, Store, StoreError, utcnow

log = logging.getLogger(__name__)

RunTargeted = Callable[[str], int]
"""Runs the targeted sync of one organisation (a tenant id); returns its exit code."""

WAIT_SECONDS = 600
# Finished events are kept this long (Xero retries a delivery for about a day: a retry after
# the row is gone would be read once more, harmlessly) and pruned about hourly.
KEEP_FINISHED = timedelta(days=7)
PRUNE_EVERY_SECONDS = 3600.0
FIRST_BACKOFF_SECONDS = 5.0
MAX_BACKOFF_SECONDS = 600.0


def targeted_command(tenant_id: str) -> list[str]:
    """The targeted-sync command: this Python, the ``pipelines`` CLI, one organisation."""
    return [sys.executable, "-m", "pipelines", "run", "--tenant", tenant_id,
            "--webhook-events", "--wait", str(WAIT_SECONDS)]


class TargetedSync:
    """The dispatcher thread and the targeted runs it started."""

    def __init__(self, store: Store, settings: AuthServerSettings,
                 run_targeted: RunTargeted | None = None) -> None:
        self.store = store
        self.settings = settings
        self.run_targeted = run_targeted or self._subprocess
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._running: dict[str, threading.Thread] = {}
        self._retry_at: dict[str, float] = {}  # tenant -> monotonic time of the next try
        self._backoff: dict[str, float] = {}
        self._pruned_at = 0.0  # monotonic; 0: prune on the first round

    def wake(self) -> None:
        """New events were stored: look soon (after the coalescing window). Starts the
        dispatcher if nothing did yet (a server embedded without ``serve_forever``)."""
        self._wake.set()
        if not self._stop.is_set():
            self.start()

    def start(self) -> None:
        """Start the dispatcher thread (once)."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="xero-webhook-dispatch")
                self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop dispatching; runs already started finish on their own."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def join(self, timeout: float | None = None) -> None:
        """Wait for the targeted runs started so far (tests)."""
        with self._lock:
            threads = list(self._running.values())
        for thread in threads:
            thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self.settings.xero_webhook_poll_seconds)
            if self._stop.is_set():
                return
            if woken:
                # Gather the rest of a burst; events keep arriving (and being stored) meanwhile.
                self._stop.wait(self.settings.xero_webhook_coalesce_seconds)
            self._wake.clear()
            try:
                self.dispatch()
            except StoreError as exc:
                log.warning("could not look for pending Xero events: %s", exc)
            except Exception:
                log.exception("the Xero webhook dispatcher failed a round")

    def dispatch(self) -> list[str]:
        """One round: ignore what is not ours, start a run per connected organisation with
        pending events (none already running, none waiting out a backoff); the tenants
        started."""
        started = []
        now = time.monotonic()
        if now - self._pruned_at >= PRUNE_EVERY_SECONDS or not self._pruned_at:
            self._pruned_at = now
            self.store.prune_xero_events(utcnow() - KEEP_FINISHED)
        for tenant_id in self.store.pending_xero_event_tenants():
            statuses = {c.status for c in self.store.connections_for_tenant(tenant_id)}
            if ConnectionStatus.CONNECTED.value not in statuses:
                ignored = self.store.ignore_xero_events(tenant_id)
                log.info("%d Xero event(s) of organisation %s ignored: not connected here",
                         ignored, tenant_id)
                continue
            with self._lock:
                running = self._running.get(tenant_id)
                if running is not None and running.is_alive():
                    continue
                if self._retry_at.get(tenant_id, 0.0) > now:
                    continue
                thread = threading.Thread(target=self._run, args=(tenant_id,), daemon=True,
                                          name=f"targeted-sync-{tenant_id[:8]}")
                self._running[tenant_id] = thread
            thread.start()
            started.append(tenant_id)
        return started

    def _run(self, tenant_id: str) -> None:
        try:
            code = self.run_targeted(tenant_id)
        except Exception as exc:
            log.error("targeted sync of %s could not run: %s", tenant_id, type(exc).__name__)
            code = 1
        with self._lock:
            if code == 0:
                self._backoff.pop(tenant_id, None)
                self._retry_at.pop(tenant_id, None)
            else:
                delay = min(MAX_BACKOFF_SECONDS,
                            self._backoff.get(tenant_id, FIRST_BACKOFF_SECONDS / 2) * 2)
                self._backoff[tenant_id] = delay
                self._retry_at[tenant_id] = time.monotonic() + delay
                log.warning("targeted sync of %s exited with %s; its events stay pending, "
                            "next try in %.0f s", tenant_id, code, delay)
        if code == 0:
            self.wake()  # events that arrived during the run

    def _subprocess(self, tenant_id: str) -> int:
        logs = Path(self.store.home) / "logs"
        logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(logs / f"targeted-sync-{tenant_id}.log", "ab") as out:
            return subprocess.call(targeted_command(tenant_id), stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
