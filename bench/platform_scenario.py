"""Scenario "platform": many organisations, each on its own grant, no-change runs.

As when every customer connects their own organisation: one refresh token per organisation.
A first load sets the incremental state (measured, not the verdict). Then two no-change runs:

- *hourly*: every stored access token is older than its 30 minutes (as an hourly run finds
  them: the home's tokens are made to look 31 minutes old and the sandbox clock moves 31
  minutes on), so every organisation's grant is refreshed once;
- *within the half hour*: the tokens the hourly run stored are still valid and must be reused
  (no token call at all).

Each is set against its floor (`bench/fetch_floor.py`, platform form): the same token calls
and the four no-change calls per organisation, with the same number of requests in flight as
the connector's HTTP client allows.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from datetime import UTC, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.harness import LoadFigures
from bench.measure import BenchError, run_child
from bench.world import NO_CHANGE_CALLS_PER_ORG, BenchSandbox, Home, snapshot_reads_spec
from connector.client import MAX_CONNECTIONS
from pipelines.destinations import DUCKDB_GLOBAL_CONFIG

if TYPE_CHECKING:
    from bench.harness import Bench

FLOOR_SCRIPT = str(Path(__file__).resolve().parent / "fetch_floor.py")
TOKEN_LIFE = timedelta(minutes=30)  # Xero's access tokens
HOURLY_AGE = timedelta(minutes=31)  # what an hourly run finds: every access token expired
RUNS_PER_DAY = 24
TARGET_FIRST_LOAD_MB = 400.0  # issue 22: the platform's first load, peak RSS
TARGET_STATE_MB = 2.0  # issue 22: dlt's state of the pipeline, in all
# Requests in flight across all organisations: the connector's one HTTP client allows this
# many, and the floor is held to the same.
CONNECTIONS = MAX_CONNECTIONS


def platform(bench: Bench) -> None:
    """Scenario "platform": plan.platform_orgs organisations on their own grants."""
    plan = bench.plan
    orgs, suppliers = plan.platform_orgs, plan.platform_suppliers
    bench.say(f"scenario platform: {orgs:,} organisations x {suppliers} suppliers, each its "
              f"own grant, limits on, {plan.latency_ms} ms latency")
    sb = bench.sandbox(tenants=orgs, suppliers=suppliers, rate_limits=True,
                       latency_ms=plan.latency_ms)
    try:
        tenants = sb.tenant_ids()
        home = sb.connect_home_per_organisation(bench.workdir / "pf-load" / "home", tenants)
        floor_home = sb.connect_home_per_organisation(bench.workdir / "pf-floor" / "home",
                                                      tenants)
        figures: dict[str, Any] = {
            "sandbox": sb.describe(), "orgs": len(tenants), "suppliers": suppliers,
            "grants": len(home.grants), "latency_ms": plan.latency_ms,
            "connections": CONNECTIONS,
            "call_floor": NO_CHANGE_CALLS_PER_ORG * len(tenants),
        }
        first = bench.load(sb, home, "platform-first-load")
        # An hour later: the tokens of the first load are past their 30 minutes, at Xero too.
        home.expire_access_tokens(HOURLY_AGE)
        sb.handle.advance(HOURLY_AGE.total_seconds())
        since = sb.handle.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        figures["state_mb"] = sum(
            f.stat().st_size for f in (home.path / "pipelines").glob("*/state.json")) / 2**20
        figures["first"] = asdict(first)
        figures["hourly"] = asdict(bench.load(sb, home, "platform-hourly"))
        figures["reused"] = asdict(bench.load(sb, home, "platform-within-half-hour"))
        figures["state_copies"] = _state_copies(home.path.parent / "xero_elt.duckdb")
        figures["fresh"] = _fresh_machine(bench, sb, home)
        grants_file = _grants_file(floor_home)
        figures["floor_hourly"] = asdict(_floor(
            bench, sb, floor_home, grants_file, "platform-floor-hourly", refresh=True,
            since=since))
        figures["floor_reused"] = asdict(_floor(
            bench, sb, floor_home, grants_file, "platform-floor-reused", refresh=False,
            since=since))
        bench.results["platform"] = figures
    finally:
        sb.stop()


def _fresh_machine(bench: Bench, sb: BenchSandbox, home: Home) -> dict[str, Any]:
    """A no-change run on a machine that has the store and the DuckDB file but not dlt's
    working folder (its state, schemas, packages): dlt restores the state from the destination,
    with DuckDB at xero-elt's 100 MB (``pipelines.destinations.DUCKDB_GLOBAL_CONFIG``)."""
    pipelines = home.path / "pipelines"
    shutil.rmtree(pipelines, ignore_errors=True)
    try:
        load = bench.load(sb, home, "platform-fresh-machine")
    except BenchError as exc:
        return {"error": str(exc).splitlines()[0][:300]}
    return {"load": asdict(load), "memory_limit": DUCKDB_GLOBAL_CONFIG.get("memory_limit"),
            "state_kb": sum(f.stat().st_size for f in pipelines.glob("*/state.json")) / 1024}


def _state_copies(database: Path) -> list[int]:
    """Sizes (bytes, compressed) of the state copies dlt keeps in the destination."""
    import duckdb

    con = duckdb.connect(str(database), read_only=True)
    try:
        return [int(r[0]) for r in con.execute(
            "select length(state) from xero._dlt_pipeline_state order by created_at").fetchall()]
    finally:
        con.close()


def _grants_file(home: Home) -> Path:
    """The floor's own grants' tokens in a 0600 file (too many for the environment)."""
    path = home.path.parent / "floor-grants.json"
    data = {tenant: {"access_token": g.access_token, "refresh_token": g.refresh_token or ""}
            for tenant, g in home.grants.items()}
    path.touch(mode=0o600)
    os.chmod(path, 0o600)
    path.write_text(json.dumps(data))
    return path


def _floor(bench: Bench, sb: BenchSandbox, home: Home, grants_file: Path, name: str, *,
           refresh: bool, since: str) -> LoadFigures:

    app = sb.app
    spec = {"api_url": sb.handle.api_url, "token_url": sb.handle.token_url,
            "client_id": app["client_id"], "tenants": home.tenant_ids,
            "grants_file": str(grants_file), "refresh": refresh, "if_modified_since": since,
            "per_minute": 60, "connections": CONNECTIONS,
            "snapshot_reads": snapshot_reads_spec()}
    sb.fresh_minute()
    sb.start_counting()
    measured = run_child([FLOOR_SCRIPT], workdir=home.path.parent, name=name,
                         env={"BENCH_CLIENT_SECRET": app.get("client_secret") or ""},
                         spec=spec, sandbox_pid=sb.pid)
    figures = LoadFigures(
        wall_s=measured.wall_s, cpu_s=measured.cpu_s, peak_rss_mb=measured.peak_rss_mb,
        sandbox_cpu_s=measured.sandbox_cpu_s, calls=sb.calls(),
        execute_s=measured.result["seconds"]["fetch"],
        records=int(measured.result["records"]),
    )
    retried = int(measured.result.get("retried") or 0)
    bench.say(f"  {name}: {figures.wall_s:.1f}s wall, {figures.calls['api']} API calls, "
              f"{figures.calls['token']} token calls, {retried} dropped requests retried")
    return figures


# --- the report ------------------------------------------------------------------------------


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f} s"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def verdicts(results: dict[str, Any], target: float) -> list[list[str]]:
    """Rows of the targets table: each no-change run against its floor (≤ `target`×)."""
    pf = results.get("platform")
    if not pf:
        return []
    rows = []
    for key, label in (("hourly", "hourly (every token refreshed)"),
                       ("reused", "within the half hour (tokens reused)")):
        load, floor = pf[key], pf[f"floor_{key}"]
        multiple = _ratio(load["wall_s"], floor["wall_s"])
        met = multiple is not None and multiple <= target
        rows.append([
            f"platform, {pf['orgs']:,} organisations on their own grants, no change, "
            f"{label}: within {target}× its floor",
            f"{multiple:.2f}× ({_s(load['wall_s'])} vs {_s(floor['wall_s'])}); "
            f"{load['calls']['api']:,} API + {load['calls']['token']:,} token calls, floor "
            f"{floor['calls']['api']:,} + {floor['calls']['token']:,}"
            if multiple is not None else "–",
            ("**met**" if met else f"**missed** by {multiple / target:.2f}×")
            if multiple is not None else "–",
        ])
    peak = pf["first"]["peak_rss_mb"]
    rows.append([f"platform, {pf['orgs']:,} organisations: first load peak RSS under "
                 f"{TARGET_FIRST_LOAD_MB:.0f} MB", f"{peak:.0f} MB",
                 "**met**" if peak < TARGET_FIRST_LOAD_MB
                 else f"**missed** by {peak - TARGET_FIRST_LOAD_MB:.0f} MB"])
    if pf.get("state_mb") is not None:
        copies = pf.get("state_copies") or []
        largest = max([pf["state_mb"], *(c / 2**20 for c in copies)])
        rows.append([f"platform, {pf['orgs']:,} organisations: dlt state under "
                     f"{TARGET_STATE_MB:.0f} MB (the local file and every copy in the "
                     "destination)", f"{largest * 1024:.0f} KB at most",
                     "**met**" if largest < TARGET_STATE_MB else "**missed**"])
    fresh = pf.get("fresh")
    if fresh:
        rows.append([f"platform, {pf['orgs']:,} organisations: a fresh machine's first run "
                     "restores the state and loads, DuckDB at 100 MB", _fresh_text(pf, fresh),
                     "**met**" if _fresh_ok(pf, fresh) else "**missed**"])
    return rows


def _fresh_ok(pf: dict[str, Any], fresh: dict[str, Any]) -> bool:
    """The fresh machine's run ended well, read nothing again and made a no-change run's calls."""
    load = fresh.get("load")
    return bool(load) and load["records"] == 0 and load["calls"]["api"] == pf["call_floor"] \
        and load["calls"]["rate_limited"] == 0


def _fresh_text(pf: dict[str, Any], fresh: dict[str, Any]) -> str:
    load = fresh.get("load")
    if not load:
        return f"failed: {fresh.get('error')}"
    return (f"exit 0 in {_s(load['wall_s'])}, {load['records']:,} records read again, "
            f"{load['calls']['api']:,} API calls (a no-change run's {pf['call_floor']:,}), "
            f"peak RSS {load['peak_rss_mb']:.0f} MB, DuckDB memory_limit "
            f"{fresh.get('memory_limit')}; restored state {fresh.get('state_kb', 0):.0f} KB")


def render(results: dict[str, Any]) -> str:
    """The scenario's section of docs/benchmarks.md."""
    pf = results.get("platform")
    if not pf:
        return ""
    first, hourly, reused = pf["first"], pf["hourly"], pf["reused"]
    fh, fr = pf["floor_hourly"], pf["floor_reused"]

    def calls(load: dict[str, Any]) -> str:
        return f"{load['calls']['api']:,} API, {load['calls']['token']:,} token"

    rows = [
        ["wall time, end to end", _s(first["wall_s"]), _s(hourly["wall_s"]),
         _s(reused["wall_s"])],
        ["calls", calls(first), calls(hourly), calls(reused)],
        ["429 responses", str(first["calls"]["rate_limited"]),
         str(hourly["calls"]["rate_limited"]), str(reused["calls"]["rate_limited"])],
        ["CPU of the loading process", _s(first["cpu_s"]), _s(hourly["cpu_s"]),
         _s(reused["cpu_s"])],
        ["peak RSS", f"{first['peak_rss_mb']:.0f} MB", f"{hourly['peak_rss_mb']:.0f} MB",
         f"{reused['peak_rss_mb']:.0f} MB"],
        ["floor (same calls, same concurrency)", "–", f"{_s(fh['wall_s'])} ({calls(fh)})",
         f"{_s(fr['wall_s'])} ({calls(fr)})"],
        ["as a multiple of its floor", "–", _x(_ratio(hourly["wall_s"], fh["wall_s"])),
         _x(_ratio(reused["wall_s"], fr["wall_s"]))],
    ]
    orgs = pf["orgs"]
    per_run = hourly["calls"]["token"]
    where = []
    for label, load in (("hourly", hourly), ("within 30 min", reused)):
        spans = load["calls"].get("tenant_spans") or {}
        api_span = max((end for _start, end in spans.values()), default=None)
        steps = load.get("steps") or {}
        source = sum(steps.get(k) or 0.0 for k in ("extract", "normalize", "load"))
        rest = load["execute_s"] - source if load.get("execute_s") is not None else None
        where.append(
            f"{label}: {_s(load['wall_s'])} end to end, of which interpreter start-up and "
            f"imports {_s(load.get('startup_s'))}, dlt extract {_s(steps.get('extract'))} "
            f"(all {load['calls']['api']:,} API calls within {_s(api_span)} of the first), "
            f"normalize {_s(steps.get('normalize'))}, load {_s(steps.get('load'))}, and the "
            f"rest of the run (the bookkeeping run of sync_runs and connections, the views, "
            f"the store) {_s(rest)}")
    state = (f" The pipeline's dlt state after the first load is {pf['state_mb']:.1f} MB — per "
             "organisation only cursors and flags (the supplier cursor, reconciliation time "
             "and sweep; one digest per snapshot entity); what the runs remember about each "
             "record (supplier ids, hashes, last values) is the table `_xero_memory` beside "
             "the data (`connector/memory.py`) — and dlt serialises, compresses and stores it "
             "in every run that changes it (every run: the cursors move)."
             if pf.get("state_mb") is not None else "")
    copies = pf.get("state_copies")
    if copies is not None:
        state += (f" After the three runs the destination holds {len(copies)} copies of it "
                  f"({', '.join(f'{c / 2**20:.1f}' for c in copies)} MB compressed): runs keep "
                  "the newest two, and read a copy back only when it is newer than their own "
                  "(`pipelines/state_rows.py`).")
    fresh = pf.get("fresh")
    if fresh:
        state += (" Then, as on a fresh machine (the store and the DuckDB file kept, dlt's "
                  "working folder with its state deleted), one more no-change run: "
                  f"{_fresh_text(pf, fresh)}.")
    table = ["|  | first load (sets state) | no change, hourly | no change, within 30 min |",
             "|---|---|---|---|"] + ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join([
        f"## Platform: {orgs:,} organisations, each its own grant",
        "",
        f"Sandbox: {pf['sandbox']}; {pf['grants']:,} grants (one refresh token per "
        "organisation, as when every customer connects their own). The hourly run finds "
        f"every access token past its {TOKEN_LIFE.seconds // 60} minutes (the home's tokens "
        "made to look 31 minutes old, the sandbox clock moved on as much); the run right after "
        "it finds them valid. The floor (`bench/fetch_floor.py`, platform form) makes the same "
        f"token calls and {NO_CHANGE_CALLS_PER_ORG} calls per organisation with at most "
        f"{pf['connections']} requests in flight, as the connector's HTTP client.",
        "",
        *table,
        "",
        "Where the time goes — " + "; ".join(where) + "." + state,
        "",
        f"Token calls are calls too. An access token lives {TOKEN_LIFE.seconds // 60} "
        "minutes, so an hourly run always finds it expired: this run made "
        f"{per_run:,} token calls for {orgs:,} grants, so a platform running every hour spends "
        f"{orgs:,} × {RUNS_PER_DAY} = {orgs * RUNS_PER_DAY:,} token calls a day (measured: "
        f"{per_run * RUNS_PER_DAY:,}) beside {pf['call_floor'] * RUNS_PER_DAY:,} API calls. "
        "A run within the half hour reused every stored token: "
        f"{reused['calls']['token']:,} token calls.",
        "",
    ])


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"
