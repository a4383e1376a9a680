"""Mutations armed to happen mid-read, so a test in another process can edit data between two
page requests deterministically (`POST /_sandbox/mutations` with `"after_requests": N`).

An armed mutation waits for accounting requests of its tenant under its path prefix (default
`/api.xro/2.0/Contacts`, case-insensitive) that pass Xero's gateway checks (token, tenant, role,
scope, rate limits): it lets N of them through and is applied just before the sandbox answers
the next one, so that answer already reflects it. N = 0 means "before the next one". Several may
be armed at once; on one request they apply in the order they were armed. Applied ones are kept
(with the request that triggered them and any error) for `GET /_sandbox/mutations/scheduled`.
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

DEFAULT_PATH = "/api.xro/2.0/Contacts"
APPLIED_KEPT = 1000  # applied entries kept for inspection (a bound, not a feature)


@dataclass
class ScheduledMutation:
    """One armed mutation: the body for `sandbox.mutations.apply_mutation` and its trigger."""

    tenant_id: str
    path: str
    remaining: int  # matching requests still to let through before it applies
    body: dict[str, Any]
    id: str | None  # the record id the mutation answers with, when known in advance
    armed_at: str
    applied_at: str | None = None
    request: dict[str, Any] | None = None  # the request it was applied before
    error: str | None = None

    def matches(self, tenant_id: str, path: str) -> bool:
        return self.tenant_id == tenant_id and path.lower().startswith(self.path.lower())

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for the control plane."""
        out: dict[str, Any] = {
            "tenant_id": self.tenant_id,
            "path": self.path,
            "mutation": copy.deepcopy(self.body),
            "id": self.id,
            "armed_at": self.armed_at,
        }
        if self.applied_at is None:
            out["after_requests"] = self.remaining
        else:
            out.update(applied_at=self.applied_at, request=self.request, error=self.error)
        return out


class MutationSchedule:
    """The armed mutations of one sandbox, and those already applied. Thread-safe."""

    def __init__(self) -> None:
        self._armed: list[ScheduledMutation] = []
        self._applied: list[ScheduledMutation] = []
        self._lock = threading.Lock()

    def arm(self, item: ScheduledMutation) -> None:
        """Start waiting for `item`'s matching requests."""
        with self._lock:
            self._armed.append(item)

    def due(self, tenant_id: str, path: str) -> list[ScheduledMutation]:
        """Count one matching request; return (and disarm) the mutations due before it."""
        if not self._armed:  # fast path: the common case takes no lock
            return []
        with self._lock:
            due: list[ScheduledMutation] = []
            for item in list(self._armed):
                if not item.matches(tenant_id, path):
                    continue
                if item.remaining == 0:
                    self._armed.remove(item)
                    due.append(item)
                else:
                    item.remaining -= 1
            return due

    def applied(
        self,
        item: ScheduledMutation,
        when: datetime,
        request: dict[str, Any],
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        """Record that `item` was applied (answering `result`) or failed (`error`) before
        `request`; an id not known when it was armed is taken from the result."""
        item.applied_at, item.request, item.error = when.isoformat(), request, error
        if result is not None and item.id is None:
            item.id = result.get("id")
        with self._lock:
            self._applied.append(item)
            del self._applied[:-APPLIED_KEPT]

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """{"armed": [...], "applied": [...]}, oldest first."""
        with self._lock:
            return {
                "armed": [item.as_dict() for item in self._armed],
                "applied": [item.as_dict() for item in self._applied],
            }

    def clear(self) -> None:
        """Disarm everything and forget what was applied (reset)."""
        with self._lock:
            self._armed.clear()
            self._applied.clear()
