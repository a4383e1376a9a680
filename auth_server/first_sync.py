"""The first sync after a company is confirmed, started in the background.

The auth server must not import ``pipelines`` (imports flow ``pipelines -> auth_server``), so by
default it runs ``python -m pipelines run --tenant ID --wait 600`` as a subprocess; whoever builds
the server may pass a callable instead (``on_connected``). Either way the person on the success
page is free to leave: the page only reads the connection record's ``sync_state``,
``last_synced_at`` and ``last_sync_rows``, which the run keeps up to date.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any

from auth_server.background import Jobs, Work, cli_work
from store import Connection, Store, StoreError, schedules, utcnow
from store.jobs import Job, JobsBusy

log = logging.getLogger(__name__)

OnConnected = Callable[[Connection], Any]
"""Called (in a background thread) with the newly connected record. It may return the number of
rows loaded; an exception marks the sync failed."""

WAIT_SECONDS = 600


def pipeline_command(tenant_id: str, every_entity: bool = False) -> list[str]:
    """The default first-sync command: this Python, the ``pipelines`` CLI, one organisation.

    ``every_entity`` names every entity (``--entities``), so the run reads them all whatever
    the schedule says is due (``store.schedules``): a sync asked for through the API means
    now. A first load reads everything anyway."""
    command = [sys.executable, "-m", "pipelines", "run", "--tenant", tenant_id,
               "--wait", str(WAIT_SECONDS)]
    if every_entity:
        command += ["--entities", ",".join(schedules.scheduled_entities())]
    return command


class FirstSync:
    """Starts syncs of one organisation as background jobs (``auth_server/background.py``) and
    marks their outcome if the sync itself did not: a customer's first sync (never refused) and
    the API's ``…/sync`` (counted against ``max_background_jobs``)."""

    def __init__(self, store: Store, on_connected: OnConnected | None = None,
                 jobs: Jobs | None = None) -> None:
        self.store = store
        self.on_connected = on_connected
        self.jobs = jobs or Jobs(store)

    def start(self, conn: Connection, *, requested_by: str = "first sync",
              capped: bool = False, every_entity: bool = False) -> Job | None:
        """Mark the record ``syncing`` and start the sync, unless one is queued or running;
        returns at once with the job (None for a connection without an organisation).
        ``every_entity``: read every entity, not only what the schedule says is due.

        Raises:
            JobsBusy: ``capped`` and the server runs as many jobs as it allows.
        """
        if not conn.tenant_id:
            return None
        if self.on_connected:
            work: Work = functools.partial(self._run_callable, conn)
        else:
            work = cli_work(self.store, pipeline_command(conn.tenant_id, every_entity)[3:],
                            log_name=f"first-sync-{conn.connection_id}",
                            on_exit=lambda code: self._finish(conn, ok=code == 0))
        # Marked before the job starts: a quick sync may finish (and record itself) at once.
        self.store.update_connection(conn.connection_id, sync_state="syncing")
        try:
            job, _ = self.jobs.submit("sync", conn.connection_id, work,
                                      requested_by=requested_by, capped=capped)
        except JobsBusy:
            self.store.update_connection(conn.connection_id, sync_state=conn.sync_state)
            raise
        return job

    def join(self, timeout: float | None = None) -> None:
        """Wait for running syncs (tests, shutdown)."""
        self.jobs.join(timeout)

    def _run_callable(self, conn: Connection) -> tuple[bool, str]:
        assert self.on_connected is not None
        try:
            rows = self.on_connected(conn)
        except Exception as exc:
            log.error("first sync of %s failed: %s", conn.connection_id, type(exc).__name__)
            self._finish(conn, ok=False)
            return False, f"failed: {type(exc).__name__}"
        self._finish(conn, ok=True, rows=rows if isinstance(rows, int) else None)
        return True, "done"

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
