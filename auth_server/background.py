"""The auth server's background jobs: a sync or a purge of one connection, each a process.

The auth server must not import ``pipelines`` (imports flow ``pipelines -> auth_server``), so a
job runs ``python -m pipelines …`` as a subprocess, its output in ``XERO_ELT_HOME/logs/<name>.log``.
Every job is a row of the store's ``jobs`` table (``store/jobs.py``), so:

- a repeated request (a client retrying after a timeout, two servers behind a balancer) gets the
  job already queued or running, never a second process on the same connection;
- at most ``[auth_server] max_background_jobs`` jobs are open at once across the servers of a
  store; a request beyond that is refused (the API answers 429 with Retry-After) — except a
  customer's first sync, which is never refused (it only waits its turn for the organisation);
- anyone can read a job's state and outcome (``GET /api/v1/jobs/{id}``); a failed purge puts
  ``purge.failed`` in the webhook outbox.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

from store import Store, StoreError
from store.jobs import HEARTBEAT_SECONDS, Job

log = logging.getLogger(__name__)

# What a `python -m pipelines` exit code means for the person reading the job.
_OUTCOMES = {
    0: "done",
    2: "refused: the connection or the configuration does not allow it (see the log)",
    3: "partial: some of the organisation's data failed to load (see the log)",
    75: "waited too long for another run of this organisation; ask again once it ends",
}

Work = Callable[[], tuple[bool, str]]
"""A job's work, run in its thread: (succeeded, outcome)."""


class Jobs:
    """Starts jobs and records them; ``cap`` open jobs at most (None: no cap)."""

    def __init__(self, store: Store, cap: int | None = None) -> None:
        self.store = store
        self.cap = cap
        self.threads: list[threading.Thread] = []

    def submit(self, kind: str, connection_id: str, work: Work, *, requested_by: str,
               capped: bool = True) -> tuple[Job, bool]:
        """The open job of this kind for the connection (False), or a new one started (True).

        Raises:
            JobsBusy: ``capped`` and ``cap`` jobs are open already.
        """
        job, created = self.store.open_job(kind, connection_id, requested_by=requested_by,
                                           cap=self.cap if capped else None)
        if created:
            thread = threading.Thread(target=self._run, args=(job, work), daemon=True,
                                      name=f"{kind}-{connection_id}")
            self.threads = [t for t in self.threads if t.is_alive()] + [thread]
            thread.start()
        return job, created

    def join(self, timeout: float | None = None) -> None:
        """Wait for the jobs started here (tests, shutdown)."""
        for thread in list(self.threads):
            thread.join(timeout)

    def _run(self, job: Job, work: Work) -> None:
        done = threading.Event()

        def heartbeat() -> None:
            while not done.wait(HEARTBEAT_SECONDS):
                try:
                    self.store.job_heartbeat(job.job_id)
                except StoreError as exc:
                    log.warning("job %s: could not write its heartbeat: %s", job.job_id, exc)

        beat = threading.Thread(target=heartbeat, daemon=True, name=f"{job.job_id}-heartbeat")
        ok, outcome = False, "failed: the job stopped unexpectedly (see the server log)"
        try:
            self.store.start_job(job.job_id)
            beat.start()
            ok, outcome = work()
        except Exception as exc:
            log.error("job %s (%s of %s) failed: %s", job.job_id, job.kind, job.connection_id,
                      type(exc).__name__)
        finally:
            done.set()
            try:
                self.store.finish_job(job.job_id, ok=ok, outcome=outcome)
            except StoreError as exc:
                log.error("could not record the end of job %s: %s", job.job_id, exc)
        log.info("job %s (%s of %s): %s", job.job_id, job.kind, job.connection_id, outcome)


def cli_work(store: Store, args: list[str], *, log_name: str,
             on_exit: Callable[[int], None] | None = None) -> Work:
    """Work that runs ``python -m pipelines ARGS`` with its output in ``logs/<log_name>.log``."""

    def work() -> tuple[bool, str]:
        logs = Path(store.home) / "logs"
        try:
            logs.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(logs / f"{log_name}.log", "ab") as out:
                code = subprocess.call([sys.executable, "-m", "pipelines", *args], stdout=out,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        except OSError as exc:
            log.error("could not start %s: %s", log_name, type(exc).__name__)
            code = -1
        if on_exit is not None:
            on_exit(code)
        outcome = _OUTCOMES.get(code, f"failed (exit {code}); see logs/{log_name}.log")
        return code == 0, outcome

    return work
