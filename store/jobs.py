"""Background jobs of the auth server (a sync or a purge of one connection), kept in the store.

Kept here rather than in a server's memory so that every server on the store sees them: a
repeated request (a client retrying after a timeout, two servers behind a balancer) finds the job
already queued or running and gets it back instead of starting a second process; a unique index
makes that hold even when two servers race. A running job's runner writes a heartbeat; a job
whose heartbeat stopped (its server died) is closed as failed the next time anyone asks, so it
never blocks the connection for good.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from store.records import StoreError, from_text, to_text, utcnow
from store.webhook_outbox import EventType, insert_events

# A runner writes its heartbeat every HEARTBEAT_SECONDS; one silent for ABANDONED_AFTER is dead.
HEARTBEAT_SECONDS = 15.0
ABANDONED_AFTER = timedelta(seconds=120)
_OPEN = ("queued", "running")


class JobState(StrEnum):
    """Where a job stands (``GET /api/v1/jobs/{id}``)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class JobsBusy(StoreError):
    """As many jobs as the cap allows are queued or running already."""


@dataclass(frozen=True)
class Job:
    """One job's record."""

    job_id: str
    kind: str
    connection_id: str
    state: str
    requested_by: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    outcome: str | None

    @property
    def open(self) -> bool:
        """Queued or running."""
        return self.state in _OPEN

    def summary(self) -> dict[str, Any]:
        """JSON-ready (the API's ``job`` object)."""
        return {"id": self.job_id, "kind": self.kind, "state": self.state,
                "connection_id": self.connection_id, "requested_by": self.requested_by,
                "created_at": to_text(self.created_at), "started_at": to_text(self.started_at),
                "finished_at": to_text(self.finished_at), "outcome": self.outcome}


def _job(row: Mapping[str, Any]) -> Job:
    return Job(job_id=row["job_id"], kind=row["kind"], connection_id=row["connection_id"],
               state=row["state"], requested_by=row["requested_by"],
               created_at=from_text(row["created_at"]),  # type: ignore[arg-type]
               started_at=from_text(row["started_at"]),
               finished_at=from_text(row["finished_at"]), outcome=row["outcome"])


class JobQueries:
    """The jobs' queries, mixed into ``Store`` (which supplies ``_read`` and ``_write``)."""

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Mapping[str, Any]]:
        raise NotImplementedError

    def _write(self) -> Any:
        raise NotImplementedError

    def get_connection(self, connection_id: str) -> Any:
        raise NotImplementedError

    def open_job(self, kind: str, connection_id: str, *, requested_by: str | None,
                 cap: int | None = None) -> tuple[Job, bool]:
        """The open job of ``kind`` for the connection if there is one (and False), else a new
        queued one (and True). JobsBusy when ``cap`` jobs are open already."""
        self.close_abandoned_jobs()
        existing = self._open_job(kind, connection_id)
        if existing is not None:
            return existing, False
        if cap is not None:
            busy = self._read("SELECT count(*) AS n FROM jobs WHERE state IN (?, ?)", _OPEN)
            if int(busy[0]["n"]) >= cap:
                raise JobsBusy(f"{cap} background jobs are running already")
        job_id = "job_" + secrets.token_hex(8)
        now = to_text(utcnow())
        try:
            with self._write() as tx:
                tx.execute(
                    "INSERT INTO jobs (job_id, kind, connection_id, state, requested_by,"
                    " created_at, heartbeat_at) VALUES (?,?,?,?,?,?,?)",
                    (job_id, kind, connection_id, JobState.QUEUED.value, requested_by, now,
                     now))
        except StoreError:
            # Another server opened the same job a moment ago (the unique index said no).
            existing = self._open_job(kind, connection_id)
            if existing is None:
                raise
            return existing, False
        return self.get_job(job_id), True

    def _open_job(self, kind: str, connection_id: str) -> Job | None:
        rows = self._read("SELECT * FROM jobs WHERE kind = ? AND connection_id = ?"
                          " AND state IN (?, ?)", (kind, connection_id, *_OPEN))
        return _job(rows[0]) if rows else None

    def get_job(self, job_id: str) -> Job:
        """A job's record; StoreError if there is none."""
        self.close_abandoned_jobs()
        return self._job(job_id)

    def _job(self, job_id: str) -> Job:
        rows = self._read("SELECT * FROM jobs WHERE job_id = ?", (job_id,))
        if not rows:
            raise StoreError(f"no job {job_id!r} in the store")
        return _job(rows[0])

    def list_jobs(self, connection_id: str | None = None, limit: int = 20) -> list[Job]:
        """Jobs, newest first, optionally of one connection."""
        self.close_abandoned_jobs()
        if connection_id is None:
            rows = self._read("SELECT * FROM jobs ORDER BY created_at DESC LIMIT ?", (limit,))
        else:
            rows = self._read("SELECT * FROM jobs WHERE connection_id = ?"
                              " ORDER BY created_at DESC LIMIT ?", (connection_id, limit))
        return [_job(r) for r in rows]

    def start_job(self, job_id: str) -> None:
        """The job's process started."""
        now = to_text(utcnow())
        with self._write() as tx:
            tx.execute("UPDATE jobs SET state = ?, started_at = ?, heartbeat_at = ?"
                       " WHERE job_id = ? AND state = ?",
                       (JobState.RUNNING.value, now, now, job_id, JobState.QUEUED.value))

    def job_heartbeat(self, job_id: str) -> None:
        """The job's runner is alive."""
        with self._write() as tx:
            tx.execute("UPDATE jobs SET heartbeat_at = ? WHERE job_id = ?",
                       (to_text(utcnow()), job_id))

    def finish_job(self, job_id: str, *, ok: bool, outcome: str) -> Job:
        """Close the job; a failed purge also puts ``purge.failed`` in the outbox, in the same
        transaction."""
        job = self._job(job_id)
        state = JobState.SUCCEEDED if ok else JobState.FAILED
        now = utcnow()
        with self._write() as tx:
            changed = tx.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, outcome = ? WHERE job_id = ?"
                " AND state IN (?, ?)", (state.value, to_text(now), outcome[:300], job_id,
                                         *_OPEN))
            if changed and not ok and job.kind == "purge":
                insert_events(tx, self.get_connection(job.connection_id),
                              [EventType.PURGE_FAILED], now)
        return self._job(job_id)

    def close_abandoned_jobs(self, now: datetime | None = None) -> int:
        """Fail the open jobs whose runner stopped writing its heartbeat; how many."""
        cutoff = to_text((now or utcnow()) - ABANDONED_AFTER)
        rows = self._read("SELECT job_id FROM jobs WHERE state IN (?, ?) AND heartbeat_at < ?",
                          (*_OPEN, cutoff))
        for row in rows:
            self.finish_job(row["job_id"], ok=False,
                            outcome="abandoned: the server running it stopped; ask again")
        return len(rows)
