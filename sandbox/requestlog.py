"""The sandbox's request log: every request to a Xero path (what ``GET /_sandbox/requests``
lists) and the counters behind ``GET /_sandbox/stats``."""

from __future__ import annotations

import threading
from collections import Counter, defaultdict, deque
from datetime import datetime
from typing import Any

from sandbox.web import Request, Response

REDACTED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def log_entry(started: datetime, req: Request, response: Response) -> dict[str, Any]:
    """The log's record of one request and its answer (secret headers redacted)."""
    dropped = response.fault is not None and response.fault.kind == "drop"
    return {
        "time": started.isoformat(),
        "method": req.method,
        "path": req.path,
        "query": req.query,
        "status": None if dropped else response.status,
        "tenant_id": response.tenant_id or req.headers.get("xero-tenant-id"),
        "headers": {
            k: ("REDACTED" if k in REDACTED_HEADERS else v) for k, v in req.headers.items()
        },
        "fault": req.fault,
    }


class _Tally:
    """Calls per status and response body bytes sent, for one slice of the stats."""

    __slots__ = ("by_status", "bytes_out")

    def __init__(self) -> None:
        self.by_status: Counter[str] = Counter()
        self.bytes_out = 0

    def add(self, status: str, bytes_out: int) -> None:
        self.by_status[status] += 1
        self.bytes_out += bytes_out

    def summary(self) -> dict[str, Any]:
        return {
            "total": sum(self.by_status.values()),
            "by_status": dict(self.by_status),
            "bytes_out": self.bytes_out,
        }


class RequestLog:
    """Every request to a Xero path, newest last (the latest `maxlen` kept, to bound memory),
    plus counters for `GET /_sandbox/stats` that count everything since the last clear."""

    def __init__(self, maxlen: int = 50_000) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._all = _Tally()
        self._by_path: defaultdict[str, _Tally] = defaultdict(_Tally)
        self._by_tenant: defaultdict[str, _Tally] = defaultdict(_Tally)
        self._faults: Counter[str] = Counter()

    def append(self, entry: dict[str, Any], bytes_out: int = 0) -> None:
        """Record one request and the body bytes its answer puts on the wire."""
        status = str(entry["status"]) if entry["status"] is not None else "none"
        with self._lock:
            self._entries.append(entry)
            self._all.add(status, bytes_out)
            self._by_path[entry["path"]].add(status, bytes_out)
            if entry["tenant_id"]:
                self._by_tenant[entry["tenant_id"]].add(status, bytes_out)
            if entry.get("fault"):
                self._faults[entry["fault"]] += 1

    def entries(
        self, path: str | None = None, tenant_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Entries, optionally only those under a path prefix and/or for a tenant."""
        with self._lock:
            items = list(self._entries)
        if path:
            items = [e for e in items if e["path"].lower().startswith(path.lower())]
        if tenant_id:
            items = [e for e in items if e["tenant_id"] == tenant_id]
        return items

    def clear(self) -> None:
        """Empty the log and its counters."""
        with self._lock:
            self._entries.clear()
            self._all = _Tally()
            self._by_path.clear()
            self._by_tenant.clear()
            self._faults.clear()

    def stats(self) -> dict[str, Any]:
        """Counters per status, path and tenant (calls and body bytes) since the last clear."""
        with self._lock:
            return {
                **self._all.summary(),
                "rate_limited": self._all.by_status.get("429", 0),
                "faults": dict(self._faults),
                "by_path": {p: t.summary() for p, t in self._by_path.items()},
                "by_tenant": {t: tally.summary() for t, tally in self._by_tenant.items()},
            }
