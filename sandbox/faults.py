"""Injected faults: the ways a real Xero call goes wrong, on demand (`POST /_sandbox/faults`).

A fault matches requests by path prefix (and optionally tenant and method) and fires `count`
times (-1: until cleared). Kinds and when they act:

* `status`     - answer `status` instead of the real response (503 plain text as Xero's
                 maintenance page; 500 and other codes in Xero's problem-JSON shape).
* `rate_limit` - a 429 with `X-Rate-Limit-Problem` (`minute` | `day` | `appminute`) and a realistic
                 `Retry-After`.
* `slow`       - wait `seconds`, then answer normally (the concurrency slot stays taken).
* `drop`       - close the connection without answering.
* `malformed`  - 200 with the real headers and a body that is not valid JSON/XML.
* `truncated`  - the real `Content-Length`, but the connection closes half-way through the body
                 (half of the gzip stream when the answer is compressed).
* `corrupt_gzip` - `Content-Encoding: gzip` whose stream has a valid header but a wrong CRC-32;
                 when the answer would not be gzipped, the body is damaged as `malformed`.
* `offline`    - one organisation's 503 "Organisation offline" (plain text; needs `tenant_id`,
                 path defaults to the Accounting API), while other organisations answer.

`status`, `rate_limit`, `offline` and `slow` act before the request is handled; `drop`,
`malformed`, `truncated` and `corrupt_gzip` act after it (so a dropped token response has really
rotated the refresh token: the "lost response" case Xero's refresh grace exists for). On
accounting calls every fault acts after the token, tenant and rate-limit checks, like a failure
behind Xero's gateway.
"""

from __future__ import annotations

import json
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http import HTTPStatus
from typing import Any

FAULT_KINDS = (
    "status", "slow", "drop", "malformed", "truncated", "rate_limit", "corrupt_gzip", "offline",
)  # fmt: skip
BEFORE_KINDS = frozenset({"status", "slow", "rate_limit", "offline"})
AFTER_KINDS = frozenset({"drop", "malformed", "truncated", "corrupt_gzip"})
ACCOUNTING_PREFIX = "/api.xro/2.0/"
_FIELDS = {
    "kind", "path", "tenant_id", "method", "count", "status", "seconds", "problem",
    "retry_after", "body", "content_type",
}  # fmt: skip

MAINTENANCE_TEXT = "The Xero API is currently offline for maintenance"
OFFLINE_TEXT = "Organisation offline"  # REFERENCE 0 / 6.1: the per-organisation 503
ERROR_DETAIL = (
    "An error occurred in Xero. Check the API Status page http://status.developer.xero.com "
    "for current service status."
)


@dataclass
class Fault:
    """One injected fault rule."""

    kind: str
    path: str = "/"
    tenant_id: str | None = None
    method: str | None = None
    count: int = 1
    status: int | None = None
    seconds: float | None = None
    problem: str | None = None
    retry_after: int | None = None
    body: str | None = None
    content_type: str | None = None
    id: str = field(default_factory=lambda: str(uuid.uuid4()))
    fired: int = 0

    def as_dict(self) -> dict[str, Any]:
        """JSON shape for the control plane (unset options left out)."""
        return {k: v for k, v in self.__dict__.items() if v is not None}

    def matches(self, method: str, path: str, tenant_id: str | None) -> bool:
        """Does this fault apply to the request?"""
        if not path.lower().startswith(self.path.lower()):
            return False
        if self.method is not None and self.method.upper() != method:
            return False
        return self.tenant_id is None or self.tenant_id == tenant_id


def parse_fault(body: Any) -> Fault:
    """Build a Fault from a control-plane body; ValueError with a clear message when wrong."""
    if not isinstance(body, dict):
        raise ValueError('a fault is a JSON object, e.g. {"kind": "status", "status": 503}')
    unknown = set(body) - _FIELDS
    if unknown:
        raise ValueError(f"unknown fault field(s) {sorted(unknown)}; known: {sorted(_FIELDS)}")
    kind = body.get("kind")
    if kind not in FAULT_KINDS:
        raise ValueError(f"fault 'kind' must be one of {list(FAULT_KINDS)}, got {kind!r}")
    # An organisation is offline for the Accounting API; identity and /connections still answer.
    default_path = ACCOUNTING_PREFIX if kind == "offline" else "/"
    fault = Fault(kind=kind, path=body.get("path", default_path))
    if not isinstance(fault.path, str) or not fault.path.startswith("/"):
        raise ValueError("fault 'path' must be a path prefix starting with '/'")
    fault.tenant_id = _optional(body, "tenant_id", str)
    if kind == "offline" and not fault.tenant_id:
        raise ValueError("an 'offline' fault needs 'tenant_id': the organisation that is offline")
    fault.method = _optional(body, "method", str)
    count = body.get("count", 1)
    if not isinstance(count, int) or isinstance(count, bool) or (count < 1 and count != -1):
        raise ValueError("fault 'count' must be a positive integer, or -1 for 'until cleared'")
    fault.count = count
    fault.body = _optional(body, "body", str)
    fault.content_type = _optional(body, "content_type", str)
    if kind == "status":
        status = body.get("status")
        if not isinstance(status, int) or isinstance(status, bool) or not 400 <= status <= 599:
            raise ValueError("a 'status' fault needs 'status': an HTTP error code 400-599")
        fault.status = status
    elif kind == "slow":
        seconds = body.get("seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise ValueError("a 'slow' fault needs 'seconds': a non-negative number")
        fault.seconds = float(seconds)
    elif kind == "rate_limit":
        problem = body.get("problem", "minute")
        if problem not in ("minute", "day", "appminute"):
            raise ValueError("a 'rate_limit' fault's 'problem' is 'minute', 'day' or 'appminute'")
        fault.problem = problem
        fault.retry_after = _optional(body, "retry_after", int)
    return fault


def _optional(body: dict[str, Any], key: str, kind: type) -> Any:
    value = body.get(key)
    if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
        raise ValueError(f"fault {key!r} must be a {kind.__name__}")
    return value


class FaultBook:
    """The active faults, consumed in the order they were added. Thread-safe."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        """Activate a fault."""
        with self._lock:
            self._faults.append(fault)
        return fault

    def clear(self) -> int:
        """Remove every fault; returns how many were active."""
        with self._lock:
            n = len(self._faults)
            self._faults.clear()
            return n

    def active(self) -> list[dict[str, Any]]:
        """The faults still armed."""
        with self._lock:
            return [f.as_dict() for f in self._faults]

    def take(self, method: str, path: str, tenant_id: str | None) -> Fault | None:
        """The first fault matching the request, using up one of its firings."""
        if not self._faults:  # fast path: no lock when nothing is armed
            return None
        with self._lock:
            for i, fault in enumerate(self._faults):
                if fault.matches(method, path, tenant_id):
                    fault.fired += 1
                    if fault.count > 0:
                        fault.count -= 1
                        if fault.count == 0:
                            del self._faults[i]
                    return fault
        return None


def status_answer(fault: Fault) -> tuple[int, dict[str, str], bytes]:
    """The response a `status` fault gives instead of the real one."""
    status = fault.status or 500
    if fault.body is not None:
        ctype = fault.content_type or "text/plain; charset=utf-8"
        return status, {"Content-Type": ctype}, fault.body.encode()
    if status == 503:
        return status, {"Content-Type": "text/plain; charset=utf-8"}, MAINTENANCE_TEXT.encode()
    if status in (502, 504):
        phrase = HTTPStatus(status).phrase
        html = f"<html><head><title>{status} {phrase}</title></head><body><h1>{phrase}</h1>"
        return status, {"Content-Type": "text/html"}, (html + "</body></html>").encode()
    try:
        title = HTTPStatus(status).phrase
    except ValueError:
        title = "Error"
    detail = ERROR_DETAIL if status >= 500 else title
    problem = {
        "Type": None,
        "Title": "An error occurred" if status >= 500 else title,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
    body = json.dumps(problem).encode()
    return status, {"Content-Type": "application/json; charset=utf-8"}, body


def offline_answer() -> tuple[int, dict[str, str], bytes]:
    """Xero's 503 for one organisation that is offline (plain text, as its 503 bodies are)."""
    return 503, {"Content-Type": "text/plain; charset=utf-8"}, OFFLINE_TEXT.encode()


def rate_limit_answer(fault: Fault, now: datetime) -> tuple[int, dict[str, str], bytes]:
    """A 429 as Xero sends it when a minute or day limit is hit (body empty: undocumented).

    The caller merges these headers over the real remaining counts, so only the exhausted one
    reads 0.
    """
    if fault.problem == "day":
        midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
        default_retry = max(3600, int((midnight - now).total_seconds()))
        remaining = {"X-DayLimit-Remaining": "0"}
    elif fault.problem == "appminute":
        default_retry = max(1, 60 - now.second)
        remaining = {"X-AppMinLimit-Remaining": "0"}
    else:
        default_retry = max(1, 60 - now.second)
        remaining = {"X-MinLimit-Remaining": "0"}
    retry = fault.retry_after if fault.retry_after is not None else default_retry
    headers = {
        "Retry-After": str(retry),
        "X-Rate-Limit-Problem": fault.problem or "minute",
        **remaining,
    }
    return 429, headers, b""


def malformed(body: bytes) -> bytes:
    """A body that starts like the real one and then stops being JSON (or XML)."""
    cut = body[: max(1, len(body) // 2)]
    return cut + b"\x00<!-- upstream error -->{"
