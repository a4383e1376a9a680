"""Scenario "scale": many organisations under Xero's per-organisation and app-wide limits, one
no-change pass through `xero-elt run` and one through Dagster's batched runs, each beside the
floor of its calls.

The sandbox holds N organisations × 20 suppliers (N = 10,000 in the full plan;
``BENCH_SCALE_ORGANISATIONS`` overrides it), with Xero's limits on (60 calls a minute and 5 in
flight per organisation, 10,000 a minute for the app) and 300 ms latency. Each side has its own
home (one grant over every organisation) and destination, and first loads everything once (not
measured: it sets the incremental state; Dagster's side on the per-organisation layout its runs
use). Then, as an hourly pass finds them, every stored access token is made 31 minutes old and
the sandbox clock moves as far, and one no-change pass is measured:

- `xero-elt run`: one process, the shared layout;
- Dagster: the real daemon (``bench.dagster_scenario``'s), exactly one tick of the schedule
  ``xero_hourly``, at most two runs at once (two run workers on this 2-core machine), each of
  ``batch_size`` = organisations / run workers (``BENCH_SCALE_BATCH_SIZE`` overrides it): a pass
  is then one run per worker, each paying its start-up and its planned events once. At 1,000
  organisations, runs of 100 (the product's default, Dagster's advice for 1,000+ partitions) took
  63.2 s against `xero-elt run`'s 24.4 s: ten process start-ups, five after one another on two
  workers; runs of 500 took 33.0 s against 25.2 s. Wall time from the first run's start to the
  last one's end.

The floor (`bench/fetch_floor.py`, no-change form): the same four calls per organisation with
the connector's requests in flight and each organisation's 60-a-minute window, every call also
kept inside one app-wide window at the sandbox's app limit. Whatever the concurrency, a pass of
C calls under an app limit of L calls a window takes at least (⌈C / L⌉ − 1) windows.

The budget is the product's (``[sources.xero] app_calls_per_minute``, 9,500 of Xero's 10,000);
the smoke plan shrinks the app's window (``app_window_seconds``) so that it binds on a handful
of organisations, and leaves Dagster's side out (waiting for a schedule's tick costs minutes of
`make test`; the Dagster suite tests batched runs, the full plan measures them).
"""

from __future__ import annotations

import math
import os
import threading
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.dagster_scenario import DAGSTER_YAML, _daemon, _storage
from bench.harness import LoadFigures
from bench.measure import run_child
from bench.world import NO_CHANGE_CALLS_PER_ORG, snapshot_reads_spec
from connector.client import MAX_CONNECTIONS
from store import open_store

if TYPE_CHECKING:
    from bench.harness import Bench
    from bench.world import BenchSandbox, Home

FLOOR_SCRIPT = str(Path(__file__).resolve().parent / "fetch_floor.py")
SUPPLIERS = 20
HOURLY_AGE = timedelta(minutes=31)  # what an hourly pass finds: every access token expired
RUNS_AT_ONCE = 2  # two run workers on the bench machine (2 cores)
PASS_TIMEOUT_S = 3 * 3600.0
# Read by the floor at most this many organisations at once (a thread each): far above the
# requests in flight it allows (the connector's MAX_CONNECTIONS), so it never binds.
FLOOR_ORG_WORKERS = 512
# Xero's app limit, and the connector's budget under it (connector/settings.py's default).
XERO_APP_MINUTE = 10_000
XERO_APP_WINDOW_S = 60


@dataclass(frozen=True)
class ScaleSize:
    """Organisations, the app's limit and window at the sandbox, and the Dagster batches."""

    orgs: int
    app_limit: int
    app_window_s: int
    client_budget: int | None  # None: the connector's default budget
    batch_size: int
    tick_lead_s: int  # the schedule's one tick: at least this long after the daemon starts

    @property
    def app_limit_per_minute(self) -> float:
        """The app's limit as calls a minute (the smoke plan's window is shorter)."""
        return self.app_limit * 60 / self.app_window_s


def size_of(bench: Bench) -> ScaleSize:
    """The plan's size; ``BENCH_SCALE_ORGANISATIONS`` overrides the organisations."""
    override = os.environ.get("BENCH_SCALE_ORGANISATIONS")
    if bench.plan.smoke:
        # 6 organisations make 24 calls a pass: an app limit of 10 in 6 s makes them wait two
        # windows, and so does the connector's budget of 9 (the floor paces to the 10).
        return ScaleSize(orgs=int(override or 6), app_limit=10, app_window_s=6,
                         client_budget=9, batch_size=3, tick_lead_s=20)
    return ScaleSize(orgs=int(override or 10_000), app_limit=XERO_APP_MINUTE,
                     app_window_s=XERO_APP_WINDOW_S, client_budget=None,
                     batch_size=int(os.environ.get("BENCH_SCALE_BATCH_SIZE") or math.ceil(
                         int(override or 10_000) / RUNS_AT_ONCE)),
                     tick_lead_s=40)


def scale(bench: Bench) -> None:
    """Scenario "scale": a no-change pass by `xero-elt run` and by Dagster, at N organisations."""
    size = size_of(bench)
    latency = bench.plan.latency_ms
    bench.say(f"scenario scale: {size.orgs:,} organisations x {SUPPLIERS} suppliers, limits on "
              f"(app {size.app_limit:,} calls in {size.app_window_s} s), {latency} ms latency")
    sb = bench.sandbox(tenants=size.orgs, suppliers=SUPPLIERS, rate_limits=True,
                       latency_ms=latency)
    try:
        cron_home = bench.home(sb, "sc-cron")
        dagster_home = bench.home(sb, "sc-dagster")
        per_org = {"PIPELINES__LAYOUT": "per_organisation"}
        # The first loads at Xero's app limit (the smoke plan's small one would only slow them).
        first_limit = max(size.app_limit, XERO_APP_MINUTE)
        sb.handle.limits(app_minute=first_limit, app_window_seconds=size.app_window_s)
        first_env = _client_env(size, first_limit * 95 // 100)
        started = time.monotonic()
        first = bench.load(sb, cron_home, "scale-cron-first-load", env=first_env)
        cron_first_s = time.monotonic() - started
        dagster_first = None if bench.plan.smoke else bench.load(
            sb, dagster_home, "scale-dagster-first-load", env=first_env | per_org)
        first_loads_s = time.monotonic() - started
        sb.handle.limits(app_minute=size.app_limit, app_window_seconds=size.app_window_s)
        client_env = _client_env(size, size.client_budget)
        # The homes' own app budgets still count the first loads' calls for a window.
        _quiet(time.monotonic(), size)
        # Dagster's one schedule tick, far enough on for the pass and floor of `xero-elt run`
        # to come first (about as long as its first load took) and the daemon to start after.
        tick = _tick(size.tick_lead_s + cron_first_s)
        _an_hour_later(sb, cron_home)
        since = sb.handle.now().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
        cron = bench.load(sb, cron_home, "scale-cron-no-change", env=client_env)
        floor = _floor(bench, sb, cron_home, size, since)
        ahead = (tick - datetime.now(UTC)).total_seconds()
        if not size.tick_lead_s <= ahead <= size.tick_lead_s + 60:
            tick = _tick(size.tick_lead_s)  # they took longer (or shorter) than thought
        dagster = None if bench.plan.smoke else _dagster_pass(
            bench, sb, dagster_home, size, client_env | per_org, tick)
        bench.results["scale"] = {
            "sandbox": sb.describe(), "orgs": size.orgs, "suppliers": SUPPLIERS,
            "latency_ms": latency, "app_limit": size.app_limit,
            "app_window_s": size.app_window_s,
            "app_limit_per_minute": size.app_limit_per_minute,
            "client_budget": size.client_budget, "batch_size": size.batch_size,
            "runs_at_once": RUNS_AT_ONCE, "connections": MAX_CONNECTIONS,
            "call_floor": NO_CHANGE_CALLS_PER_ORG * size.orgs,
            "first_loads_s": first_loads_s, "cron_first": asdict(first),
            "dagster_first": asdict(dagster_first) if dagster_first else None,
            "cron": asdict(cron),
            "floor": asdict(floor), "dagster": dagster,
        }
    finally:
        sb.stop()


def _client_env(size: ScaleSize, budget: int | None) -> dict[str, str]:
    """The connector's app budget in the size's window (None and Xero's window: the
    product's defaults)."""
    if size.app_window_s == XERO_APP_WINDOW_S and (budget is None or size.client_budget is None):
        return {}
    return {"SOURCES__XERO__APP_CALLS_PER_MINUTE": str(budget),
            "SOURCES__XERO__APP_WINDOW_SECONDS": str(size.app_window_s)}


def _quiet(since: float, size: ScaleSize) -> None:
    """Wait until a window (and its margin) has passed since `since`: a home's app budget
    counts its calls that long, in real time, whatever the sandbox clock says."""
    margin = size.app_window_s + max(0.25, size.app_window_s / 120) + 0.5
    time.sleep(max(0.0, since + margin - time.monotonic()))


def _an_hour_later(sb: BenchSandbox, home: Home) -> None:
    """As the next hourly pass finds things: every access token of the home 31 minutes old,
    and the sandbox clock as far on (its rate windows empty)."""
    home.expire_access_tokens(HOURLY_AGE)
    sb.handle.advance(HOURLY_AGE.total_seconds())


def _access_token(home: Home) -> str:
    """The home's current access token (the pass just refreshed it)."""
    store = open_store(home.path)
    try:
        return store.list_grants()[0].access_token
    finally:
        store.close()


def _floor(bench: Bench, sb: BenchSandbox, home: Home, size: ScaleSize,
           since: str) -> LoadFigures:
    """The no-change calls of every organisation at the connector's concurrency, each
    organisation in its 60-a-minute window and all of them in the app's."""
    spec = {"api_url": sb.handle.api_url, "tenants": home.tenant_ids, "per_minute": 60,
            "snapshot_reads": snapshot_reads_spec(), "if_modified_since": since,
            "connections": MAX_CONNECTIONS, "org_workers": FLOOR_ORG_WORKERS,
            "app_calls": size.app_limit,
            "app_window_s": size.app_window_s + max(0.25, size.app_window_s / 120)}
    sb.fresh_minute()
    sb.start_counting()
    measured = run_child([FLOOR_SCRIPT], workdir=home.path.parent, name="scale-floor",
                         env={"BENCH_ACCESS_TOKEN": _access_token(home)}, spec=spec,
                         sandbox_pid=sb.pid)
    figures = LoadFigures(
        wall_s=measured.wall_s, cpu_s=measured.cpu_s, peak_rss_mb=measured.peak_rss_mb,
        sandbox_cpu_s=measured.sandbox_cpu_s, calls=sb.calls(),
        execute_s=measured.result["seconds"]["fetch"], records=int(measured.result["records"]),
    )
    bench.say(f"  scale-floor: {figures.wall_s:.1f}s wall, {figures.calls['api']} calls, "
              f"{figures.calls['rate_limited']} x 429")
    return figures


# --- Dagster ------------------------------------------------------------------------------------


def _dagster_pass(bench: Bench, sb: BenchSandbox, home: Home, size: ScaleSize,
                  client_env: dict[str, str], tick: datetime) -> dict[str, Any]:
    """One tick of the schedule over every organisation (partitions added first, as the
    sensor adds them), measured; the peak RSS of every process the daemon started."""
    import dagster as dg

    run_dir = home.path.parent
    dagster_home = run_dir / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    storage, database = _storage(bench) if bench.plan.postgres else ("", None)
    (dagster_home / "dagster.yaml").write_text(
        storage + DAGSTER_YAML.format(runs=RUNS_AT_ONCE))
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    try:
        with dg.DagsterInstance.get() as instance:
            # The sensor's work, done before the daemon starts so the tick finds every partition.
            instance.add_dynamic_partitions("xero_organisations", home.tenant_ids)
            _an_hour_later(sb, home)
            env = {
                **os.environ, **sb.dlt_env(), **client_env, "XERO_ELT_HOME": str(home.path),
                "DLT_DATA_DIR": str(run_dir / "dlt"), "DAGSTER_HOME": str(dagster_home),
                "DESTINATION__DUCKDB__CREDENTIALS": str(run_dir / "xero_elt.duckdb"),
                "PIPELINES__DAGSTER__SENSOR_INTERVAL_SECONDS": "30",
                # A pass over every entity of every organisation, as `xero-elt run`'s side
                # measures (bench.loader runs with RunOptions.schedule=False).
                "PIPELINES__SCHEDULE__ENABLED": "false",
                "PIPELINES__DAGSTER__BATCH_SIZE": str(size.batch_size),
                # Dagster's schedules run in UTC: exactly one tick, at `tick`.
                "PIPELINES__DAGSTER__SCHEDULE_CRON": f"{tick.minute} {tick.hour} * * *",
            }
            sb.start_counting()
            bench.say(f"  dagster: waiting for the schedule's tick at {tick:%H:%M} UTC")
            with _daemon(env, run_dir) as daemon:
                with _PeakRss(daemon.pid) as peaks:
                    runs = _wait_tick(instance, math.ceil(size.orgs / size.batch_size), tick)
                calls = sb.calls()
        return _dagster_figures(bench, runs, calls, peaks.by_kind(), database is not None)
    finally:
        if database:
            from bench import postgres

            postgres.drop_database(database)


def _tick(lead_s: float) -> datetime:
    """The first whole minute at least `lead_s` from now (time for the daemon to start)."""
    soon = datetime.now(UTC) + timedelta(seconds=lead_s)
    return soon.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _wait_tick(instance: Any, count: int, tick: datetime) -> list[Any]:
    """The tick's `count` runs once all have finished."""
    import dagster as dg

    deadline = time.monotonic() + PASS_TIMEOUT_S
    late = tick.timestamp() + 120
    while time.monotonic() < deadline:
        records = instance.get_run_records(dg.RunsFilter(
            job_name="xero_sync_job", tags={"dagster/schedule_name": "xero_hourly"}))
        done = [r for r in records if r.dagster_run.is_finished]
        if len(done) >= count:
            return done
        if not records and time.time() > late:
            raise TimeoutError(f"no run of the tick at {tick:%H:%M} UTC (daemon.log)")
        time.sleep(2)
    raise TimeoutError(f"the tick's {count} runs did not all finish")


def _dagster_figures(bench: Bench, runs: list[Any], calls: dict[str, Any],
                     peaks: dict[str, list[float]], postgres: bool) -> dict[str, Any]:
    started = min(r.start_time for r in runs)
    ended = max(r.end_time for r in runs)
    failed = sum(1 for r in runs if not r.dagster_run.is_success)
    wall = ended - started
    workers = peaks.get("run worker", [])
    bench.say(f"  dagster-no-change: {wall:.1f}s wall, {len(runs)} runs ({failed} failed), "
              f"{calls['api']} API calls, {calls['rate_limited']} x 429, run workers' peak RSS "
              f"{max(workers, default=0):.0f} MB")
    return {"wall_s": wall, "calls": calls, "runs": len(runs), "failed_runs": failed,
            "mean_run_s": sum(r.end_time - r.start_time for r in runs) / len(runs),
            "peak_rss_mb": peaks, "storage": "PostgreSQL" if postgres else "SQLite"}


class _PeakRss:
    """Polls, twice a second, every process of a session (the daemon's: its code server and
    the run workers it launches) for its peak RSS so far (``VmHWM``): the last reading before a
    process ends is its peak, to within the half second before it exits."""

    # The code server starts each run in a process of its own (multiprocessing, spawned).
    KINDS = (("spawn_main", "run worker"), ("execute_run", "run worker"),
             ("resource_tracker", "other"), ("grpc", "code server"),
             ("dagster-daemon", "daemon"))

    def __init__(self, session: int) -> None:
        self.session = session
        self.seen: dict[int, tuple[str, float]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> _PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def by_kind(self) -> dict[str, list[float]]:
        """Peak RSS (MB) per process, grouped by what it was."""
        found: dict[str, list[float]] = {}
        for kind, peak in self.seen.values():
            found.setdefault(kind, []).append(round(peak, 1))
        return {kind: sorted(values, reverse=True) for kind, values in found.items()}

    def _poll(self) -> None:
        while not self._stop.wait(0.5):
            for proc in Path("/proc").iterdir():
                if proc.name.isdigit():
                    self._read(proc)

    def _read(self, proc: Path) -> None:
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[3]) != self.session:  # after ")": state, ppid, pgrp, session
                return
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            status = (proc / "status").read_text()
        except (OSError, IndexError, ValueError):
            return
        kind = next((k for key, k in self.KINDS if key in cmdline), "other")
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                self.seen[int(proc.name)] = (kind, int(line.split()[1]) / 1024)


# --- the report ---------------------------------------------------------------------------------

TARGET_FLOOR_MULTIPLE = 1.25  # issue 24: `xero-elt run` within 1.25× its floor
TARGET_DAGSTER_MULTIPLE = 1.5  # issue 24: Dagster within 1.5× of `xero-elt run`


def least_seconds(calls: int, limit: int, window_s: float) -> float:
    """The least time `calls` take under `limit` calls in any `window_s` (rolling): the last
    window's calls go out a window after the one before's."""
    return (math.ceil(calls / limit) - 1) * window_s


def per_minute(calls: int, wall_s: float) -> float:
    """Calls a minute over a pass."""
    return calls * 60 / wall_s if wall_s else 0.0


def _verdict(met: bool, multiple: float | None = None, target: float | None = None) -> str:
    if met:
        return "**met**"
    if multiple is not None and target:
        return f"**missed** by {multiple / target:.2f}×"
    return "**missed**"


def verdicts(results: dict[str, Any]) -> list[list[str]]:
    """Rows of the targets table: 0 × 429, `xero-elt run` against its floor, Dagster against
    `xero-elt run`."""
    data = results.get("scale")
    if not data:
        return []
    cron, floor, dagster = data["cron"], data["floor"], data["dagster"]
    orgs = f"{data['orgs']:,} organisations"
    to_floor = cron["wall_s"] / floor["wall_s"] if floor["wall_s"] else None
    if dagster is None:  # the smoke plan: `xero-elt run` and its floor only
        return [
            [f"scale, {orgs}: 0 × 429 (`xero-elt run`; Dagster not run in this plan)",
             str(cron["calls"]["rate_limited"]), _verdict(cron["calls"]["rate_limited"] == 0)],
            [f"scale, {orgs}: `xero-elt run` within {TARGET_FLOOR_MULTIPLE}× its floor",
             f"{to_floor:.2f}×" if to_floor is not None else "–",
             _verdict(to_floor is not None and to_floor <= TARGET_FLOOR_MULTIPLE, to_floor,
                      TARGET_FLOOR_MULTIPLE)],
        ]
    refused = cron["calls"]["rate_limited"] + dagster["calls"]["rate_limited"]
    to_cron = dagster["wall_s"] / cron["wall_s"] if cron["wall_s"] else None
    return [
        [f"scale, {orgs}: 0 × 429 in both passes",
         f"{cron['calls']['rate_limited']} (`xero-elt run`), "
         f"{dagster['calls']['rate_limited']} (Dagster)", _verdict(refused == 0)],
        [f"scale, {orgs}: `xero-elt run` within {TARGET_FLOOR_MULTIPLE}× its floor",
         f"{to_floor:.2f}× ({cron['wall_s']:.1f} s vs {floor['wall_s']:.1f} s)"
         if to_floor is not None else "–",
         _verdict(to_floor is not None and to_floor <= TARGET_FLOOR_MULTIPLE, to_floor,
                  TARGET_FLOOR_MULTIPLE)],
        [f"scale, {orgs}: Dagster within {TARGET_DAGSTER_MULTIPLE}× of `xero-elt run`",
         f"{to_cron:.2f}× ({dagster['wall_s']:.1f} s vs {cron['wall_s']:.1f} s)"
         if to_cron is not None else "–",
         _verdict(to_cron is not None and to_cron <= TARGET_DAGSTER_MULTIPLE, to_cron,
                  TARGET_DAGSTER_MULTIPLE)],
    ]


def render(results: dict[str, Any]) -> str:
    """The scenario's section of docs/benchmarks.md (empty when it did not run)."""
    data = results.get("scale")
    if not data:
        return ""
    cron, floor, dagster = data["cron"], data["floor"], data["dagster"]
    limit = data["app_limit_per_minute"]
    least = least_seconds(data["call_floor"], data["app_limit"], data["app_window_s"])

    def side(load: dict[str, Any]) -> list[str]:
        c = load["calls"]
        rate = per_minute(c["api"], load["wall_s"])
        return [f"{load['wall_s']:.1f} s", f"{c['api']:,} (floor {data['call_floor']:,})",
                f"{rate:,.0f} ({rate / limit:.0%} of the limit)", str(c["rate_limited"]),
                str(c["token"]), f"{c.get('bytes_out', 0):,}"]

    if dagster is None:  # the smoke plan
        dagster = {"calls": {"api": 0, "rate_limited": 0, "token": 0}, "wall_s": 0.0,
                   "peak_rss_mb": {}, "runs": 0, "failed_runs": 0, "mean_run_s": 0.0,
                   "storage": "–", "skipped": True}
    workers = dagster["peak_rss_mb"].get("run worker", [])
    dagster_side = ["not run in this plan"] * 6 if dagster.get("skipped") else side(dagster)
    rows = list(zip(
        ["wall time, no-change pass", "API calls", "calls a minute", "429 responses",
         "token calls", "bytes sent by the sandbox"],
        side(cron), side(floor), dagster_side, strict=True))
    rows.append(("peak RSS", f"{cron['peak_rss_mb']:.0f} MB (one process)",
                 f"{floor['peak_rss_mb']:.0f} MB",
                 f"run workers {', '.join(f'{w:.0f}' for w in workers)} MB"
                 if workers else "–"))
    rows.append(("processes", "1", "1", "–" if dagster.get("skipped") else
                 f"{dagster['runs']} runs of up to "
                 f"{data['batch_size']} organisations ({dagster['failed_runs']} failed), "
                 f"mean {dagster['mean_run_s']:.1f} s, {data['runs_at_once']} at once; "
                 f"storage {dagster['storage']}"))
    budget = (f"its default budget of {data['client_budget']:,}" if data["client_budget"]
              else "its default budget (`app_calls_per_minute` 9,500)")
    table = ["| | `xero-elt run` | floor | Dagster |", "|---|---|---|---|"]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join([
        f"## Scale: {data['orgs']:,} organisations under the app's limit, no change", "",
        f"Sandbox: {data['sandbox']}; the app's limit {data['app_limit']:,} calls in "
        f"{data['app_window_s']} s ({limit:,.0f} a minute); the connector under "
        f"{budget}. Both sides loaded everything once first (not measured; "
        f"{data['first_loads_s']:.0f} s for the two); the pass finds every access token "
        "expired, as an hourly one does. `xero-elt run` is one process on the shared layout; "
        "Dagster is the daemon's one schedule tick, runs over partition ranges of "
        f"{data['batch_size']:,} organisations (`batch_size`: the organisations over the run "
        f"workers), {data['runs_at_once']} at once. The floor (`bench/fetch_floor.py`) makes "
        f"the same calls with {data['connections']} requests in flight, each organisation in "
        "its own 60-a-minute window and all in the app's; "
        + (f"no pass of {data['call_floor']:,} calls can take less than {least:.1f} s under "
           "the limit." if least else
           f"{data['call_floor']:,} calls fit in one window of the app's limit."), "",
        *table, "",
    ])


# --- the sizing table of docs/deploy.md -----------------------------------------------------------

SIZING_ORGS = (1_000, 10_000)
SIZING_INTERVALS = (("hourly", 60), ("every 15 minutes", 15))
CONNECTOR_BUDGET = 9_500  # `[sources.xero] app_calls_per_minute`'s default
TOKEN_LIFE_MIN = 30  # Xero's access tokens
DAYS_A_MONTH = 30.4


def sizing(data: dict[str, Any]) -> str:
    """docs/deploy.md's sizing table, computed from one `scale` result (a Markdown table and
    the arithmetic under it): nothing in it is typed in by hand."""
    measured = data["orgs"]
    cron, dagster = data["cron"], data["dagster"]
    calls_per_org = cron["calls"]["api"] / measured
    bytes_per_org = cron["calls"]["bytes_out"] / measured
    cron_s_per_org = cron["wall_s"] / measured
    worker_s_per_org = dagster["wall_s"] * data["runs_at_once"] / measured
    rows = []
    for orgs in SIZING_ORGS:
        for label, minutes in SIZING_INTERVALS:
            calls = calls_per_org * orgs
            app_bound_s = calls / CONNECTOR_BUDGET * 60
            cron_s = max(cron_s_per_org * orgs, app_bound_s)
            workers = math.ceil(worker_s_per_org * orgs / (minutes * 60))
            if app_bound_s > minutes * 60:
                raise ValueError(f"{orgs} organisations {label}: more calls than the app may make")
            passes_a_day = 24 * 60 / minutes
            refreshes = 24 * 60 / max(minutes, TOKEN_LIFE_MIN)
            rows.append([
                f"{orgs:,}", label,
                f"{cron_s:,.0f} s" + ("" if cron_s <= minutes * 60 else " (too long)"),
                f"{max(workers, 1)}", f"{calls:,.0f} a pass; {calls / minutes:,.0f} a minute "
                f"on average, at most {CONNECTOR_BUDGET:,} in any minute",
                f"{orgs * refreshes:,.0f} (a grant each); {refreshes:,.0f} (one grant)",
                f"{bytes_per_org * orgs * passes_a_day * DAYS_A_MONTH / 1e9:,.2f} GB",
            ])
    table = ["| organisations | freshness | one `xero-elt run` pass | Dagster run workers | API "
             "calls | token calls a day | bytes a month (no changes) |",
             "|---|---|---|---|---|---|---|"]
    table += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join([
        *table, "",
        f"Measured ({data['orgs']:,} organisations): {calls_per_org:g} API calls and "
        f"{bytes_per_org:,.0f} bytes from Xero per organisation in a no-change pass; "
        f"`xero-elt run` {cron['wall_s']:.1f} s for the pass ({cron_s_per_org * 1000:.1f} ms "
        f"an organisation); Dagster {dagster['wall_s']:.1f} s with {data['runs_at_once']} run "
        f"workers, one a core ({worker_s_per_org:.3f} worker-seconds an organisation).",
        "Computed from those: calls and bytes × organisations × passes; a pass's time × "
        "organisations / measured organisations (a straight line: the fixed start-up of a "
        "process is counted again for every organisation, which errs on the long side), but "
        f"never less than its calls at the connector's budget ({CONNECTOR_BUDGET:,} a minute); "
        "run workers = worker-seconds a "
        "pass / the interval, rounded up; token calls: an access token lives "
        f"{TOKEN_LIFE_MIN} minutes, so a grant is refreshed once a pass when passes are "
        f"{TOKEN_LIFE_MIN} minutes apart or more, and every {TOKEN_LIFE_MIN} minutes when "
        "closer (as docs/benchmarks.md's platform scenario measured: every expired token "
        "refreshed once, every valid one reused).",
    ])
