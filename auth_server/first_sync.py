"""The first sync after a company is confirmed, started in the background.

The auth server must not import ``pipelines`` (imports flow ``pipelines -> auth_server``), so by
default it runs ``python -m pipelines run --tenant ID --wait 600`` as a subprocess; whoever builds
the server may pass a callable instead (``on_connected``). Either way the person on the success
page is free to leave: the page only reads the connection record's ``sync_state``,
``last_synced_at`` and ``last_sync_rows``, which the run keeps up to date.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from connector.store import Connection, Store, StoreError, utcnow

log = logging.getLogger(__name__)

OnConnected = Callable[[Connection], Any]
"""Called (in a background thread) with the newly connected record. It may return the number of
rows loaded; an exception marks the sync failed."""

WAIT_SECONDS = 600


def pipeline_command(tenant_id: str) -> list[str]:
    """The default first-sync command: this Python, the ``pipelines`` CLI, one organisation."""
    return [sys.executable, "-m", "pipelines", "run", "--tenant", tenant_id,
            "--wait", str(WAIT_SECONDS)]


class FirstSync:
    """Starts first syncs and marks their outcome if the sync itself did not."""

    def __init__(self, store: Store, on_connected: OnConnected | None = None) -> None:
        self.store = store
        self.on_connected = on_connected
        self.threads: list[threading.Thread] = []

    def start(self, conn: Connection) -> None:
        """Mark the record ``syncing`` and start the sync; returns at once."""
        if not conn.tenant_id:
            return
        self.store.update_connection(conn.connection_id, sync_state="syncing")
        target = self._run_callable if self.on_connected else self._run_subprocess
        thread = threading.Thread(target=target, args=(conn,), daemon=True,
                                  name=f"first-sync-{conn.connection_id}")
        self.threads = [t for t in self.threads if t.is_alive()] + [thread]
        thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for running first syncs (tests, shutdown)."""
        for thread in list(self.threads):
            thread.join(timeout)

    def _run_callable(self, conn: Connection) -> None:
        assert self.on_connected is not None
        try:
            rows = self.on_connected(conn)
        except Exception as exc:
            log.error("first sync of %s failed: %s", conn.connection_id, type(exc).__name__)
            self._finish(conn, ok=False)
            return
        self._finish(conn, ok=True, rows=rows if isinstance(rows, int) else None)

    def _run_subprocess(self, conn: Connection) -> None:
        assert conn.tenant_id
        logs = Path(self.store.home) / "logs"
        try:
            logs.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(logs / f"first-sync-{conn.connection_id}.log", "ab") as out:
                code = subprocess.call(pipeline_command(conn.tenant_id), stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as exc:
            log.error("could not start the first sync of %s: %s", conn.connection_id, exc)
            self._finish(conn, ok=False)
            return
        log.info("first sync of %s exited with %s", conn.connection_id, code)
        self._finish(conn, ok=code == 0)

    def _finish(self, conn: Connection, *, ok: bool, rows: int | None = None) -> None:
        """Record the outcome unless the sync (``pipelines run``) already did."""
        try:
            current = self.store.get_connection(conn.connection_id)
            if current.sync_state != "syncing":
                return
            fields: dict[str, Any] = {
                "sync_state": "synced" if ok else "failed",
                "last_sync_outcome": "ok" if ok else "failed",
            }
            if ok:
                fields["last_synced_at"] = current.last_synced_at or utcnow()
                if rows is not None:
                    fields["last_sync_rows"] = rows
            self.store.update_connection(conn.connection_id, **fields)
        except StoreError as exc:
            log.error("could not record the first sync of %s: %s", conn.connection_id, exc)
