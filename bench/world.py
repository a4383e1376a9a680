"""Sandboxes for the benchmarks and organisations connected to them, as the product stores them.

A `BenchSandbox` is one `python -m sandbox` process (started with `sandbox.handle`, the
same helper the tests use) plus one registered app. `connect_home` makes a fresh
`XERO_ELT_HOME` holding a grant from `POST /_sandbox/grants` and one `connected` connection per
organisation (`tools.sandbox_setup`, as in the tests), which is what the auth server leaves
behind after a customer connects.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connector.entities import SNAPSHOT_READS
from sandbox.handle import (
    SandboxHandle,
    SandboxProcess,
    XeroGrant,
    make_grant,
    start_sandbox_process,
)
from store import open_store
from tools.sandbox_setup import connect_organisations, store_grant

PAGE_SIZE = 1000
# Calls a run makes per organisation besides the supplier pages: one per Xero path of the tables
# read whole (Accounts, TaxRates, TrackingCategories), from the connector's entity table.
SNAPSHOT_CALLS = len(SNAPSHOT_READS)
# A no-change run: the one supplier page since the cursor, and the snapshot calls.
NO_CHANGE_CALLS_PER_ORG = 1 + SNAPSHOT_CALLS


def snapshot_reads_spec() -> list[list]:
    """`SNAPSHOT_READS` as JSON for the fetch floor's spec: `[path, collection, params]`."""
    return [[path, collection, [list(p) for p in params]]
            for path, collection, params in SNAPSHOT_READS]
# Calls a limits-off run may make per minute: high enough never to pace (the connector's
# `calls_per_minute`, which its docs say to raise only against a sandbox without limits).
UNPACED_CALLS_PER_MINUTE = 1_000_000


@dataclass
class Home:
    """A private XERO_ELT_HOME with its grant and the organisations connected in it."""

    path: Path
    grant: XeroGrant
    tenant_ids: list[str]
    # Per organisation its own grant, when each connected on their own (the platform case).
    grants: dict[str, XeroGrant] = field(default_factory=dict)

    def expire_access_tokens(self, age: timedelta) -> int:
        """Make every stored access token look `age` old (the same tokens, refreshed `age`
        ago), as the next hourly run finds them; how many grants were changed."""
        store = open_store(self.path)
        try:
            grants = store.list_grants()
            for grant in grants:
                store.save_rotated_tokens(grant.grant_id, {
                    "access_token": grant.access_token, "refresh_token": grant.refresh_token,
                    "expires_in": int((grant.access_expires_at - grant.refreshed_at)
                                      .total_seconds()),
                }, now=datetime.now(UTC) - age)
        finally:
            store.close()
        return len(grants)


class BenchSandbox:
    """One sandbox process with an app registered; stop() when done."""

    def __init__(self, *, tenants: int, suppliers: int, rate_limits: bool, latency_ms: int = 0,
                 seed: int = 42, high_volume_threshold: int | None = None) -> None:
        self.tenants = tenants
        self.suppliers = suppliers
        self.rate_limits = rate_limits
        self.latency_ms = latency_ms
        self.process: SandboxProcess = start_sandbox_process(
            startup_timeout=600, tenants=tenants, suppliers=suppliers, rate_limits=rate_limits,
            latency_ms=latency_ms, seed=seed,
        )
        self.handle = SandboxHandle(self.process.url, self.process)
        # An organisation of 100,000 suppliers has more contacts than Xero's high-volume
        # threshold, which would refuse the IsSupplier filter: the scenarios measure the filtered
        # read (comparable with earlier runs) unless they ask for a threshold.
        self.high_volume_threshold = high_volume_threshold
        self.handle.settings(high_volume_threshold=high_volume_threshold or 10**9)
        self.app = self.handle.create_app(["http://127.0.0.1:8765/callback"], name="xero-elt bench")
        self.tenant_info = self.handle.tenants()

    @property
    def pid(self) -> int:
        """The sandbox's process id (its CPU is sampled around each run)."""
        return self.process.process.pid

    @property
    def startup_seconds(self) -> float:
        """How long the sandbox took to seed and start listening."""
        return self.process.startup_seconds

    def describe(self) -> str:
        """One line: organisations, suppliers, limits, latency."""
        limits = "limits on" if self.rate_limits else "limits off"
        latency = f", {self.latency_ms} ms latency" if self.latency_ms else ""
        return f"{self.tenants} org × {self.suppliers:,} suppliers, {limits}{latency}"

    def tenant_ids(self) -> list[str]:
        """Every organisation, in seed order."""
        return [t["tenantId"] for t in self.tenant_info]

    def supplier_count(self, tenant_id: str) -> int:
        """Suppliers of an organisation (archived included), from the sandbox's counts."""
        for tenant in self.handle.tenants():
            if tenant["tenantId"] == tenant_id:
                return int(tenant["counts"]["suppliers"])
        raise KeyError(tenant_id)

    def full_load_call_floor(self, tenant_ids: list[str]) -> int:
        """ceil(suppliers / 1000) + SNAPSHOT_CALLS (3) calls per organisation (issue 6's call
        floor); for a high-volume organisation ceil(contacts / 1000) + 3, plus the one refused
        call that
        tells the connector so."""
        floor = 0
        for tenant in self.handle.tenants():
            if tenant["tenantId"] not in tenant_ids:
                continue
            counts = tenant["counts"]
            threshold = self.high_volume_threshold
            if threshold is not None and counts["contacts"] > threshold:
                floor += math.ceil(counts["contacts"] / PAGE_SIZE) + SNAPSHOT_CALLS + 1
            else:
                floor += math.ceil(counts["suppliers"] / PAGE_SIZE) + SNAPSHOT_CALLS
        return floor

    def connect_home(self, path: Path, tenant_ids: list[str]) -> Home:
        """A fresh XERO_ELT_HOME with a new grant and `tenant_ids` connected."""
        path.mkdir(parents=True, exist_ok=True)
        store = open_store(path)
        try:
            grant, _ = connect_organisations(store, self.handle, self.app, list(tenant_ids),
                                             email="bench@example.test")
        finally:
            store.close()
        return Home(path, grant, list(tenant_ids))

    def connect_home_per_organisation(self, path: Path, tenant_ids: list[str]) -> Home:
        """A fresh XERO_ELT_HOME with one grant per organisation, as when every customer
        connects their own organisation through the auth server."""
        path.mkdir(parents=True, exist_ok=True)
        names = {t["tenantId"]: t["name"] for t in self.tenant_info}
        admins: dict[str, str] = {}  # each organisation's own admin (its customer) consents
        for user in self.handle.users():
            if user["role"] == "admin" and len(user["tenant_ids"]) == 1:
                admins.setdefault(user["tenant_ids"][0], user["email"])
        store = open_store(path)
        grants: dict[str, XeroGrant] = {}
        try:
            for tenant_id in tenant_ids:
                grant = make_grant(self.handle, self.app, user=admins.get(tenant_id),
                                   tenant_ids=[tenant_id])
                store_grant(store, grant, names, [tenant_id], email="bench@example.test")
                grants[tenant_id] = grant
        finally:
            store.close()
        return Home(path, grants[tenant_ids[0]], list(tenant_ids), grants)

    def dlt_env(self) -> dict[str, str]:
        """`SOURCES__XERO__*` pointing the connector at this sandbox and app."""
        env = self.handle.dlt_env(self.app)
        if not self.rate_limits:
            env["SOURCES__XERO__CALLS_PER_MINUTE"] = str(UNPACED_CALLS_PER_MINUTE)
        return env

    def fresh_minute(self) -> None:
        """Move the sandbox clock 61 s on, so the last run's calls leave the minute window."""
        if self.rate_limits:
            self.handle.advance(61)

    def start_counting(self) -> None:
        """Empty the request log and counters."""
        self.handle.clear_requests()

    def calls(self) -> dict[str, Any]:
        """Calls since `start_counting`, split into API, token and connections calls."""
        stats = self.handle.stats()
        split = {"api": 0, "token": 0, "connections": 0, "other": 0}
        by_endpoint: dict[str, int] = {}
        for path, item in stats["by_path"].items():
            total = int(item["total"])
            if path.startswith("/api.xro/2.0/"):
                split["api"] += total
                endpoint = path.removeprefix("/api.xro/2.0/")
                by_endpoint[endpoint] = by_endpoint.get(endpoint, 0) + total
            elif path.startswith("/connect/token"):
                split["token"] += total
            elif path.startswith("/connections"):
                split["connections"] += total
            else:
                split["other"] += total
        return {**split, "rate_limited": int(stats["rate_limited"]), "by_endpoint": by_endpoint,
                "by_status": stats["by_status"], "tenant_spans": self._tenant_spans(),
                "bytes_out": int(stats.get("bytes_out", 0))}

    def _tenant_spans(self) -> dict[str, list[float]]:
        """Per organisation, its first and last API call in seconds after the first call of
        all (from the request log): organisations loading side by side overlap."""
        times: dict[str, list[float]] = {}
        for entry in self.handle.requests(path="/api.xro/2.0/"):
            if entry.get("tenant_id"):
                moment = datetime.fromisoformat(entry["time"]).timestamp()
                times.setdefault(entry["tenant_id"], []).append(moment)
        if not times:
            return {}
        start = min(min(v) for v in times.values())
        return {tenant: [min(v) - start, max(v) - start] for tenant, v in times.items()}

    def stop(self) -> None:
        """Stop the sandbox process."""
        self.handle.close()
        self.process.stop()
