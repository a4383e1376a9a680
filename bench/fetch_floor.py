"""The fetch floor: the least a client can do to read what a full load reads.

`python bench/fetch_floor.py SPEC.json RESULT.json`, with the access token in the environment
(`BENCH_ACCESS_TOKEN`, never on the command line). For each organisation, in parallel: the
supplier pages (`where=IsSupplier==true`, `includeArchived=true`, 1000 a page, the same
parameters the connector sends) and the spec's `snapshot_reads` (`[path, collection, params]`:
Accounts, TaxRates and TrackingCategories, from the connector's entity table), at most 5 requests
in flight per organisation (Xero's limit), each body parsed with `json.loads` and then dropped.
With `per_minute` set it also keeps Xero's 60-calls-a-minute window (as the connector does), and
waits out a 429's Retry-After if one comes anyway. With `app_calls` and `app_window_s` set, every
call of every organisation also keeps one app-wide window (Xero's 10,000 calls a minute per app):
the least any client can take to make these calls under the app's limit. `if_modified_since`
makes it the no-change form (the first supplier page since then, and the snapshot reads);
`org_workers` caps the organisations read at once (default all: a thread each), which never
binds below `connections` requests in flight.

The platform form (`grants_file` in the spec, a 0600 JSON file of each organisation's own
tokens; the client secret in `BENCH_CLIENT_SECRET`): each organisation first refreshes its own
grant when `refresh` is set (one token call, the rotated tokens written back to the file), then
makes the no-change run's four calls (Contacts since `if_modified_since`, Accounts, TaxRates,
TrackingCategories). `connections` bounds the requests in flight across all organisations, as
the connector's one HTTP client does.

Deliberately standalone: it imports only the standard library and httpx, nothing of ours, so its
time is what downloading and parsing the same pages costs and nothing else.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

_T0 = time.monotonic()
IN_FLIGHT = 5
WINDOW = 60.5  # the connector's window: a little longer than Xero's 60 s
SUPPLIER_PARAMS = {"where": "IsSupplier==true", "includeArchived": "true",
                   "order": "ContactID ASC", "pageSize": "1000"}
# Requests handed to httpx at once, across organisations (main() sets it to `connections`):
# httpx's own queue of waiting requests grows quadratic in cost with thousands waiting, which
# the connector avoids the same way (connector/client.py MAX_CONNECTIONS).
GATE = threading.BoundedSemaphore(64)


class Window:
    """At most `per_minute` calls in any `seconds` (None: no pacing)."""

    def __init__(self, per_minute: int | None, seconds: float = WINDOW) -> None:
        self.per_minute = per_minute
        self.seconds = seconds
        self.sent: deque[float] = deque()
        self.lock = threading.Lock()

    def wait(self) -> None:
        if self.per_minute is None:
            return
        while True:
            with self.lock:
                now = time.monotonic()
                while self.sent and now - self.sent[0] >= self.seconds:
                    self.sent.popleft()
                if len(self.sent) < self.per_minute:
                    self.sent.append(now)
                    return
                pause = self.sent[0] + self.seconds - now
            time.sleep(max(pause, 0.01))


# The app's window, shared by every organisation (main() sets it from the spec; None: unpaced).
APP = Window(None)


def fetch_org(client: httpx.Client, api: str, tenant: str, token: str,
              per_minute: int | None, snapshot_reads: list[list[Any]], *,
              if_modified_since: str | None = None) -> dict[str, Any]:
    """Every page of one organisation (with `if_modified_since`, the first supplier page only,
    since then: a no-change run); returns calls, 429s and records read."""
    window = Window(per_minute)
    slots = threading.BoundedSemaphore(IN_FLIGHT)
    counts = {"calls": 0, "rate_limited": 0, "records": 0}
    lock = threading.Lock()
    headers = {"Authorization": f"Bearer {token}", "xero-tenant-id": tenant,
               "Accept": "application/json"}

    def get(path: str, params: dict[str, str], extra: dict[str, str] | None = None) -> Any:
        while True:
            with slots:
                window.wait()
                APP.wait()
                try:
                    with GATE:
                        response = client.get(f"{api}/{path}", params=params,
                                              headers={**headers, **(extra or {})})
                except httpx.TransportError:
                    # A dropped connection is retried (the connector does too); the
                    # sandbox's counters show the extra call if it got that far.
                    with lock:
                        counts["retried"] = counts.get("retried", 0) + 1
                        if counts["retried"] > 3:
                            raise
                    continue
            with lock:
                counts["calls"] += 1
            if response.status_code == 429:
                with lock:
                    counts["rate_limited"] += 1
                time.sleep(float(response.headers.get("Retry-After") or 1))
                continue
            response.raise_for_status()
            return json.loads(response.content)

    def supplier_page(page: int) -> int:
        body = get("Contacts", {**SUPPLIER_PARAMS, "page": str(page)})
        return len(body["Contacts"])

    def small(path: str, collection: str, params: list[list[str]]) -> int:
        body = get(path, dict(params))
        return len(body[collection])

    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        smalls = [pool.submit(small, *read) for read in snapshot_reads]
        since = {"If-Modified-Since": if_modified_since} if if_modified_since else None
        first = get("Contacts", {**SUPPLIER_PARAMS, "page": "1"}, since)
        pages = 1 if since else int(first["pagination"]["pageCount"])
        rest = [pool.submit(supplier_page, page) for page in range(2, pages + 1)]
        records = len(first["Contacts"]) + sum(f.result() for f in rest)
        records += sum(f.result() for f in smalls)
    counts["records"] = records
    return counts


def refresh(client: httpx.Client, spec: dict[str, Any], tokens: dict[str, str]) -> int:
    """One refresh-token grant at the token endpoint; `tokens` takes the rotated pair.
    Returns how many dropped requests were retried.

    A dropped connection is retried, as the connector does: Xero's 30-minute refresh grace
    accepts the same refresh token again if the lost response had rotated it."""
    for attempt in range(4):
        try:
            with GATE:
                response = client.post(spec["token_url"], data={
                    "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
                    auth=(spec["client_id"], os.environ.get("BENCH_CLIENT_SECRET", "")))
            break
        except httpx.TransportError:
            if attempt == 3:
                raise
    response.raise_for_status()
    body = json.loads(response.content)
    tokens.update(access_token=body["access_token"], refresh_token=body["refresh_token"])
    return attempt


def platform_org(client: httpx.Client, spec: dict[str, Any], tenant: str,
                 tokens: dict[str, str]) -> dict[str, Any]:
    """One organisation on its own grant: refresh it if asked, then the no-change calls."""
    token_calls = retried = 0
    if spec.get("refresh"):
        retried = refresh(client, spec, tokens)
        token_calls = 1
    counts = fetch_org(client, spec["api_url"], tenant, tokens["access_token"],
                       spec.get("per_minute"), spec["snapshot_reads"],
                       if_modified_since=spec["if_modified_since"])
    return {**counts, "token_calls": token_calls,
            "retried": counts.get("retried", 0) + retried}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[0]).read_text())
    grants_file = Path(spec["grants_file"]) if spec.get("grants_file") else None
    grants = json.loads(grants_file.read_text()) if grants_file else {}
    started = time.monotonic()
    connections = int(spec.get("connections") or 64)
    global GATE, APP
    GATE = threading.BoundedSemaphore(connections)
    if spec.get("app_calls"):
        APP = Window(int(spec["app_calls"]), float(spec["app_window_s"]))
    org_workers = int(spec.get("org_workers") or len(spec["tenants"]))
    limits = httpx.Limits(max_connections=connections,
                          max_keepalive_connections=max(32, connections // 2))
    # The connector's own timeouts (connector/settings.py), so a stalled request costs both alike.
    timeout = httpx.Timeout(30.0, connect=10.0)
    with httpx.Client(timeout=timeout, limits=limits) as client, \
            ThreadPoolExecutor(max(1, org_workers)) as orgs:
        if grants_file:
            futures = [orgs.submit(platform_org, client, spec, tenant, grants[tenant])
                       for tenant in spec["tenants"]]
        else:
            token = os.environ["BENCH_ACCESS_TOKEN"]
            futures = [orgs.submit(fetch_org, client, spec["api_url"], tenant, token,
                                   spec.get("per_minute"), spec["snapshot_reads"],
                                   if_modified_since=spec.get("if_modified_since"))
                       for tenant in spec["tenants"]]
        results = [f.result() for f in futures]
    finished = time.monotonic()
    if grants_file and spec.get("refresh"):
        grants_file.write_text(json.dumps(grants))  # the rotated tokens, for the next floor
    Path(argv[1]).write_text(json.dumps({
        "calls": sum(r["calls"] for r in results),
        "token_calls": sum(r.get("token_calls", 0) for r in results),
        "rate_limited": sum(r["rate_limited"] for r in results),
        "retried": sum(r.get("retried", 0) for r in results),
        "records": sum(r["records"] for r in results),
        "seconds": {"fetch": finished - started, "in_process": finished - _T0},
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
