"""What a run did, per organisation and entity: rows, API calls, outcome, error.

The source fills a ``SyncStats`` while it extracts; the pipelines layer reads it afterwards to write
``sync_runs`` and its summary. It is thread-safe: organisations load in parallel.
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from connector.errors import DailyLimitReached, OrganisationOffline, RateLimited, XeroError

OK = "ok"
FAILED = "failed"
SKIPPED = "skipped"
DEFERRED = "deferred"
OUTCOMES = (OK, FAILED, SKIPPED, DEFERRED)


def outcome_for(error: BaseException) -> str:
    """``deferred`` for rate and budget limits and an organisation Xero has offline (the next run
    picks up), ``failed`` otherwise."""
    deferred = DailyLimitReached | RateLimited | OrganisationOffline
    return DEFERRED if isinstance(error, deferred) else FAILED


@dataclass(frozen=True)
class AccessLost:
    """Xero took access away: the caller records it (the connector writes no status).

    ``status`` is what the organisation's connection should become: ``needs_reconnection``
    (a dead grant, a user who lost the role) or ``disconnected`` (Xero no longer lists it).
    ``tenant_id`` None means every organisation of the grant.
    """

    status: str
    reason: str
    grant_id: str
    tenant_id: str | None = None


@dataclass
class EntityStats:
    """One (organisation, entity) of a run."""

    tenant_id: str
    entity: str
    organisation: str | None = None
    rows: int = 0
    api_calls: int = 0
    bytes_received: int = 0  # as Xero sent them (gzip): what its egress allowance meters
    bytes_decoded: int = 0  # the same answers unzipped
    outcome: str | None = None  # None while running; one of OUTCOMES at the end
    error: str | None = None
    skipped_records: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Plain values for JSON and for ``sync_runs`` rows."""
        return {
            "tenant_id": self.tenant_id,
            "organisation": self.organisation,
            "entity": self.entity,
            "rows": self.rows,
            "api_calls": self.api_calls,
            "bytes_received": self.bytes_received,
            "bytes_decoded": self.bytes_decoded,
            "outcome": self.outcome,
            "error": self.error,
            "skipped_records": self.skipped_records,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "warnings": list(self.warnings),
        }


class SyncStats:
    """Per (tenant, entity) counters for one run, plus tenant-less identity calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], EntityStats] = {}
        self.identity_calls: Counter[str] = Counter()  # "token", "connections"
        self._access_lost: list[AccessLost] = []

    def entry(self, tenant_id: str, entity: str, organisation: str | None = None) -> EntityStats:
        """The entry for (tenant, entity), created on first use."""
        with self._lock:
            key = (tenant_id, entity)
            stats = self._entries.get(key)
            if stats is None:
                stats = self._entries[key] = EntityStats(tenant_id, entity, organisation)
            elif organisation and not stats.organisation:
                stats.organisation = organisation
            return stats

    def start(self, tenant_id: str, entity: str, organisation: str | None = None) -> None:
        """Mark (tenant, entity) as started now (first call only)."""
        stats = self.entry(tenant_id, entity, organisation)
        with self._lock:
            if stats.started_at is None:
                stats.started_at = datetime.now(UTC)

    def count_call(self, tenant_id: str, entity: str) -> None:
        """One HTTP request sent to the Accounting API for (tenant, entity)."""
        stats = self.entry(tenant_id, entity)
        with self._lock:
            stats.api_calls += 1

    def count_bytes(self, tenant_id: str, entity: str, received: int, decoded: int) -> None:
        """An answer's size for (tenant, entity): on the wire and decoded."""
        stats = self.entry(tenant_id, entity)
        with self._lock:
            stats.bytes_received += received
            stats.bytes_decoded += decoded

    def count_identity_call(self, kind: str) -> None:
        """One token or /connections call (tenant-less)."""
        with self._lock:
            self.identity_calls[kind] += 1

    def add_rows(self, tenant_id: str, entity: str, count: int) -> None:
        """Rows handed to dlt for (tenant, entity)."""
        stats = self.entry(tenant_id, entity)
        with self._lock:
            stats.rows += count

    def skip_record(self, tenant_id: str, entity: str, message: str) -> None:
        """A record that failed validation and was left out (the others still load)."""
        stats = self.entry(tenant_id, entity)
        with self._lock:
            stats.skipped_records += 1
            if len(stats.warnings) < 20:
                stats.warnings.append(message)

    def warn(self, tenant_id: str, entity: str, message: str) -> None:
        """Something the operator should see (a field changed type, ...)."""
        stats = self.entry(tenant_id, entity)
        with self._lock:
            if message not in stats.warnings and len(stats.warnings) < 20:
                stats.warnings.append(message)

    def finish(self, tenant_id: str, entity: str, outcome: str, error: str | None = None) -> None:
        """Record how (tenant, entity) ended; the first outcome recorded wins."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        stats = self.entry(tenant_id, entity)
        with self._lock:
            if stats.outcome is None:
                stats.outcome = outcome
                stats.error = error
                stats.finished_at = datetime.now(UTC)
                if stats.started_at is None:
                    stats.started_at = stats.finished_at

    def fail(self, tenant_id: str, entity: str, error: BaseException) -> None:
        """Record an error as the outcome of (tenant, entity)."""
        text = str(error) if isinstance(error, XeroError) else f"{type(error).__name__}: {error}"
        self.finish(tenant_id, entity, outcome_for(error), text)

    def lose_access(self, lost: AccessLost) -> None:
        """Report that Xero took access away (recorded once per grant and tenant)."""
        with self._lock:
            if not any((a.grant_id, a.tenant_id) == (lost.grant_id, lost.tenant_id)
                       for a in self._access_lost):
                self._access_lost.append(lost)

    def access_lost(self) -> list[AccessLost]:
        """What Xero took away during the run, for the caller to record."""
        with self._lock:
            return list(self._access_lost)

    def entries(self) -> list[EntityStats]:
        """Every (tenant, entity) seen, in the order they started."""
        with self._lock:
            return list(self._entries.values())

    def get(self, tenant_id: str, entity: str) -> EntityStats | None:
        """The entry for (tenant, entity), if any."""
        with self._lock:
            return self._entries.get((tenant_id, entity))

    def api_calls(self, tenant_id: str | None = None) -> int:
        """Accounting API calls in this run (for one organisation, or all)."""
        with self._lock:
            return sum(
                s.api_calls for s in self._entries.values()
                if tenant_id is None or s.tenant_id == tenant_id
            )

    def as_dicts(self) -> list[dict[str, Any]]:
        """Every entry as a plain dict."""
        return [s.as_dict() for s in self.entries()]


__all__ = ["DEFERRED", "FAILED", "OK", "OUTCOMES", "SKIPPED", "AccessLost", "EntityStats",
           "SyncStats", "outcome_for"]
