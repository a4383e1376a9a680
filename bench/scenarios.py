"""The scenarios of issue 6, each measured against its limits in the same run.

1. A full load of one organisation, rate limits off (+ the fetch floor, a py-spy profile and
   the dlt levers, in the full run).
2. The same with Xero's limits on (+ the fetch floor paced the same way).
3. Incremental runs after 2: nothing changed, then 1% of suppliers changed.
4. Ten organisations side by side against one, limits on, 300 ms latency.
5. Scenario 1 into PostgreSQL.
"platform": 1,000 organisations each on its own grant, no-change runs (bench/platform_scenario).
"burst": 300 customers opening their invites at the auth server, 50 at a time (bench/burst).
And the peak RSS of full loads at several sizes.

Every load is `bench.loader` in a child process: the product's own `xero-elt run` path into a
fresh XERO_ELT_HOME (fresh incremental state) and a fresh destination. API calls are read from
the sandbox's counters, never from the product's own count.
"""

from __future__ import annotations

import math
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import postgres
from bench.measure import Measured, run_child
from bench.profile import py_spy_command, read_profile, summary
from bench.world import (
    NO_CHANGE_CALLS_PER_ORG,
    PAGE_SIZE,
    SNAPSHOT_CALLS,
    BenchSandbox,
    Home,
    snapshot_reads_spec,
)

FLOOR_SCRIPT = str(Path(__file__).resolve().parent / "fetch_floor.py")
LIMITS_OFF = {"minute": 1_000_000, "day": 1_000_000, "app_minute": 10_000_000}
# dlt settings tried on scenario 1 as levers (see docs/benchmarks.md, "What would close it").
LEVERS: dict[str, dict[str, str]] = {
    "uncompressed intermediate files": {"DATA_WRITER__DISABLE_COMPRESSION": "true"},
    "uncompressed + 2 normalize workers": {
        "DATA_WRITER__DISABLE_COMPRESSION": "true",
        "NORMALIZE__WORKERS": "2",
        "DATA_WRITER__FILE_MAX_ITEMS": "50000",
    },
    # dlt applies it to every DuckDB connection it opens (checked: current_setting shows it).
    "DuckDB memory_limit 200 MB": {
        "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG": '{"memory_limit": "200MB"}',
    },
}
MEMORY_LEVER = "DuckDB memory_limit 200 MB"


@dataclass(frozen=True)
class Plan:
    """Sizes and switches of one benchmark run."""

    smoke: bool
    suppliers: int = 100_000
    rss_sizes: tuple[int, ...] = (25_000, 50_000, 100_000, 200_000)
    orgs: int = 10
    org_suppliers: int = 5_000
    latency_ms: int = 300
    platform_orgs: int = 1000  # scenario "platform": organisations, each on its own grant
    platform_suppliers: int = 200
    burst_clients: int = 300  # scenario "burst": customers opening their invites ...
    burst_at_once: int = 50  # ... this many at a time
    changed_fraction: float = 0.01
    postgres: bool = True
    profile: bool = True
    levers: bool = True

    @classmethod
    def full(cls) -> Plan:
        """Issue 6's sizes."""
        return cls(smoke=False)

    @classmethod
    def tiny(cls) -> Plan:
        """A few seconds a scenario: proves the machinery, measures nothing worth quoting."""
        return cls(smoke=True, suppliers=2_000, rss_sizes=(1_000, 2_000), orgs=3,
                   org_suppliers=500, latency_ms=50,
                   platform_orgs=4, platform_suppliers=10, burst_clients=20, burst_at_once=5,
                   postgres=False, profile=False, levers=False)


@dataclass
class LoadFigures:
    """One measured load (or floor) as plain values for the results file and the report."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    sandbox_cpu_s: float | None
    calls: dict[str, Any]
    startup_s: float | None = None
    execute_s: float | None = None
    steps: dict[str, float] = field(default_factory=dict)
    step_peak_rss_mb: dict[str, float] = field(default_factory=dict)  # peak so far, per step
    records: int = 0  # top-level rows the run yielded (summary rows_loaded)
    rows_written: dict[str, int] = field(default_factory=dict)  # per table, child tables too
    table_rows: dict[str, int] = field(default_factory=dict)  # in the destination afterwards
    outcome: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_written_total(self) -> int:
        """Rows written by the run, child tables included."""
        return sum(self.rows_written.values())


@dataclass
class Bench:
    """The run's working directory, plan, progress output and collected results."""

    workdir: Path
    plan: Plan
    results: dict[str, Any] = field(default_factory=dict)
    say: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True)

    def sandbox(self, *, tenants: int, suppliers: int, rate_limits: bool,
                latency_ms: int = 0, high_volume_threshold: int | None = None) -> BenchSandbox:
        """Start a sandbox (limits off: never refuses and reports huge quotas, so the
        connector's header-driven pacing does not slow it either)."""
        self.say(f"  starting sandbox: {tenants} org x {suppliers} suppliers, "
                 f"limits {'on' if rate_limits else 'off'}, latency {latency_ms} ms")
        sb = BenchSandbox(tenants=tenants, suppliers=suppliers, rate_limits=rate_limits,
                          latency_ms=latency_ms, high_volume_threshold=high_volume_threshold)
        if not rate_limits:
            sb.handle.limits(**LIMITS_OFF)
        return sb

    def home(self, sb: BenchSandbox, name: str, tenant_ids: list[str] | None = None) -> Home:
        """A fresh XERO_ELT_HOME connected to `tenant_ids` (default every organisation)."""
        return sb.connect_home(self.workdir / name / "home", tenant_ids or sb.tenant_ids())

    def load(
        self,
        sb: BenchSandbox,
        home: Home,
        name: str,
        *,
        destination: str = "duckdb",
        env: dict[str, str] | None = None,
        wrap: list[str] | None = None,
        reconcile: bool = False,
    ) -> LoadFigures:
        """One `xero-elt run` of `home` in a child process, measured."""
        run_dir = home.path.parent
        child_env = {
            **sb.dlt_env(),
            "XERO_ELT_HOME": str(home.path),
            "DLT_DATA_DIR": str(run_dir / "dlt"),
            "DESTINATION__DUCKDB__CREDENTIALS": str(run_dir / "xero_elt.duckdb"),
            **(env or {}),
        }
        sb.fresh_minute()
        sb.start_counting()
        measured = run_child(["-m", "bench.loader"], workdir=run_dir, name=name, env=child_env,
                             spec={"destination": destination, "reconcile": reconcile},
                             sandbox_pid=sb.pid, wrap=wrap)
        figures = _load_figures(measured, sb.calls())
        if destination == "duckdb":
            figures.table_rows = duckdb_table_rows(run_dir / "xero_elt.duckdb")
        elif destination == "postgres":
            figures.table_rows = postgres.table_rows(child_env)
        self.say(f"  {name}: {figures.wall_s:.1f}s wall, {figures.calls['api']} API calls, "
                 f"{figures.records:,} records, peak RSS {figures.peak_rss_mb:.0f} MB")
        return figures

    def floor(self, sb: BenchSandbox, home: Home, name: str, *, paced: bool) -> LoadFigures:
        """The fetch floor for `home`'s organisations."""
        spec = {"api_url": sb.handle.api_url, "tenants": home.tenant_ids,
                "per_minute": 60 if paced else None, "snapshot_reads": snapshot_reads_spec()}
        sb.fresh_minute()
        sb.start_counting()
        measured = run_child([FLOOR_SCRIPT], workdir=home.path.parent, name=name,
                             env={"BENCH_ACCESS_TOKEN": home.grant.access_token}, spec=spec,
                             sandbox_pid=sb.pid)
        figures = LoadFigures(
            wall_s=measured.wall_s, cpu_s=measured.cpu_s, peak_rss_mb=measured.peak_rss_mb,
            sandbox_cpu_s=measured.sandbox_cpu_s, calls=sb.calls(),
            execute_s=measured.result["seconds"]["fetch"],
            records=int(measured.result["records"]),
        )
        self.say(f"  {name}: {figures.wall_s:.1f}s wall, {figures.calls['api']} calls")
        return figures


def _main_trace_steps(
    result: dict[str, Any],
) -> tuple[dict[str, float], dict[str, int], dict[str, float]]:
    """Step seconds, rows written and peak RSS so far of the source's load: the first extract,
    normalize and load recorded (one `pipeline.run` trace, or one trace per step when the run
    calls the steps itself), before the bookkeeping run that follows."""
    steps: dict[str, float] = {}
    rows: dict[str, int] = {}
    peaks: dict[str, float] = {}
    main = ("extract", "normalize", "load")
    for trace in result.get("traces") or []:
        for step in trace["steps"]:
            name = step["step"]
            if name in steps or name in peaks:
                continue
            if step.get("seconds") is not None:
                steps[name] = float(step["seconds"])
            if step.get("peak_rss_mb") is not None:
                peaks[name] = float(step["peak_rss_mb"])
            if step.get("rows") and not rows:
                rows = {k: int(v) for k, v in step["rows"].items() if not k.startswith("_dlt")}
        if all(name in steps for name in main):
            break
    if "run" not in steps and all(name in steps for name in main):
        steps["run"] = sum(steps[name] for name in main)
    return steps, rows, peaks


def _load_figures(measured: Measured, calls: dict[str, Any]) -> LoadFigures:
    result = measured.result
    summary = result.get("summary") or {}
    steps, rows, peaks = _main_trace_steps(result)
    seconds = result.get("seconds") or {}
    records = sum(int(o.get("rows_loaded") or 0) for o in summary.get("organisations", []))
    startup = None
    if seconds.get("execute") is not None:
        startup = measured.wall_s - float(seconds["execute"])
    return LoadFigures(
        wall_s=measured.wall_s, cpu_s=measured.cpu_s, peak_rss_mb=measured.peak_rss_mb,
        sandbox_cpu_s=measured.sandbox_cpu_s, calls=calls, startup_s=startup,
        execute_s=seconds.get("execute"), steps=steps, step_peak_rss_mb=peaks,
        records=records, rows_written=rows,
        outcome=summary.get("outcome"),
        extra={"summary_calls": {
            "api": sum(int(o.get("api_calls") or 0) for o in summary.get("organisations", [])),
            "token": summary.get("token_calls"),
            "connections": summary.get("connections_calls"),
        }},
    )


def duckdb_table_rows(path: Path) -> dict[str, int]:
    """Rows per table of the `xero` dataset in a DuckDB file (dlt's own tables left out)."""
    import duckdb

    con = duckdb.connect(str(path), read_only=True)
    try:
        tables = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'xero' "
            "and table_type = 'BASE TABLE' and table_name not like '\\_dlt%' escape '\\' "
            "order by table_name").fetchall()]
        query = 'select count(*) from xero."{}"'  # names from information_schema, quoted
        return {t: int(con.execute(query.format(t)).fetchone()[0]) for t in tables}
    finally:
        con.close()


# --- the scenarios ------------------------------------------------------------------------------


def full_load_limits_off(bench: Bench) -> None:
    """Scenario 1, its levers and profile, and the N = plan.suppliers point of the memory
    series."""
    plan = bench.plan
    bench.say(f"scenario 1: full load, {plan.suppliers:,} suppliers, limits off")
    sb = bench.sandbox(tenants=1, suppliers=plan.suppliers, rate_limits=False)
    try:
        floor_home = bench.home(sb, "s1-floor")
        floor = bench.floor(sb, floor_home, "fetch-floor", paced=False)
        load = bench.load(sb, bench.home(sb, "s1-load"), "load")
        s1: dict[str, Any] = {
            "sandbox": sb.describe(), "sandbox_startup_s": sb.startup_seconds,
            "call_floor": sb.full_load_call_floor(sb.tenant_ids()),
            "suppliers": sb.supplier_count(sb.tenant_ids()[0]),
            "floor": asdict(floor), "load": asdict(load), "levers": {}, "profile": None,
        }
        bench.results["s1"] = s1
        bench.results.setdefault("rss", {})[str(plan.suppliers)] = _rss_point(load, floor)
        if plan.levers:
            for index, (label, env) in enumerate(LEVERS.items()):
                lever = bench.load(sb, bench.home(sb, f"s1-lever{index}"), f"lever{index}",
                                   env=env)
                s1["levers"][label] = {"env": env, "load": asdict(lever)}
        if plan.profile:
            s1["profile"] = _profile(bench, sb)
    finally:
        sb.stop()


def _profile(bench: Bench, sb: BenchSandbox) -> dict[str, Any] | None:
    home = bench.home(sb, "s1-profile")
    raw = home.path.parent / "py-spy.raw"
    wrap = py_spy_command(raw)
    if wrap is None:
        bench.say("  py-spy is not installed: no profile (pip install py-spy)")
        return None
    load = bench.load(sb, home, "profiled", wrap=wrap)
    profile = read_profile(raw)
    if profile is None or not profile.samples:
        return None
    return {"wall_s": load.wall_s, **summary(profile)}


def into_postgres(bench: Bench) -> None:
    """Scenario 5: scenario 1's load into a throwaway PostgreSQL database."""
    plan = bench.plan
    bench.say(f"scenario 5: full load, {plan.suppliers:,} suppliers, limits off, into PostgreSQL")
    problem = postgres.unavailable() if plan.postgres else "not part of this plan (--smoke)"
    if problem:
        bench.say(f"  skipped: {problem}")
        bench.results["s5"] = {"skipped": problem}
        return
    sb = bench.sandbox(tenants=1, suppliers=plan.suppliers, rate_limits=False)
    database = f"xero_elt_bench_{uuid.uuid4().hex[:8]}"
    postgres.create_database(database)
    try:
        floor = bench.floor(sb, bench.home(sb, "s5-floor"), "fetch-floor", paced=False)
        load = bench.load(sb, bench.home(sb, "s5-load"), "load-postgres", destination="postgres",
                          env={"DESTINATION__POSTGRES__CREDENTIALS": postgres.dsn(database)})
        bench.results["s5"] = {
            "sandbox": sb.describe(), "server": postgres.server_version(),
            "call_floor": sb.full_load_call_floor(sb.tenant_ids()),
            "floor": asdict(floor), "load": asdict(load),
        }
    finally:
        sb.stop()
        postgres.drop_database(database)


def limits_on_and_incremental(bench: Bench) -> None:
    """Scenarios 2 and 3 on one sandbox with Xero's limits on."""
    plan = bench.plan
    bench.say(f"scenario 2: full load, {plan.suppliers:,} suppliers, limits on")
    sb = bench.sandbox(tenants=1, suppliers=plan.suppliers, rate_limits=True)
    try:
        tenant = sb.tenant_ids()[0]
        floor = bench.floor(sb, bench.home(sb, "s2-floor"), "fetch-floor-paced", paced=True)
        home = bench.home(sb, "s2-load")
        load = bench.load(sb, home, "load")
        bench.results["s2"] = {
            "sandbox": sb.describe(), "call_floor": sb.full_load_call_floor([tenant]),
            "floor": asdict(floor), "load": asdict(load),
        }
        bench.say("scenario 3: incremental runs after scenario 2")
        unchanged = bench.load(sb, home, "no-change")
        reconciled = bench.load(sb, home, "reconcile-no-change", reconcile=True)
        changed_ids = _pick_suppliers(home.path.parent / "xero_elt.duckdb",
                                      plan.changed_fraction)
        overlap = _overlap_rows(home.path.parent / "xero_elt.duckdb")
        started = time.monotonic()
        for index, contact_id in enumerate(changed_ids):
            sb.handle.mutate(tenant_id=tenant, entity="contacts", op="update", id=contact_id,
                             fields={"Name": f"Bench changed supplier {index}"},
                             touch_updated=True)
        mutation_s = time.monotonic() - started
        changed = bench.load(sb, home, "one-percent-changed")
        bench.results["s3"] = {
            "sandbox": sb.describe(),
            "no_change": {"call_floor": NO_CHANGE_CALLS_PER_ORG, "load": asdict(unchanged)},
            "reconcile": {"load": asdict(reconciled), "full_bytes": load.calls["bytes_out"]},
            "changed": {"call_floor": math.ceil(len(changed_ids) / PAGE_SIZE) + SNAPSHOT_CALLS,
                        "suppliers_changed": len(changed_ids), "mutation_s": mutation_s,
                        "overlap_rows": overlap,
                        "load": asdict(changed)},
        }
    finally:
        sb.stop()


def high_volume(bench: Bench) -> None:
    """A high-volume organisation (more contacts than the threshold): Xero refuses the
    IsSupplier filter; the connector learns it from one 400 and reads every contact."""
    suppliers = max(1000, bench.plan.suppliers // 4)
    threshold = suppliers // 2
    bench.say(f"high volume: {suppliers:,} suppliers, threshold {threshold:,} contacts")
    sb = bench.sandbox(tenants=1, suppliers=suppliers, rate_limits=False,
                       high_volume_threshold=threshold)
    try:
        home = bench.home(sb, "hv-load")
        load = bench.load(sb, home, "load")
        again = bench.load(sb, home, "reconcile", reconcile=True)
        bench.results["hv"] = {
            "sandbox": sb.describe(), "threshold": threshold,
            "call_floor": sb.full_load_call_floor(sb.tenant_ids()),
            "load": asdict(load), "reconcile": asdict(again),
        }
    finally:
        sb.stop()


def _pick_suppliers(duckdb_path: Path, fraction: float) -> list[str]:
    """Every (1/fraction)-th supplier by ContactID, from a loaded DuckDB file."""
    import duckdb

    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        ids = [r[0] for r in con.execute(
            "select contact_id from xero.suppliers order by contact_id").fetchall()]
    finally:
        con.close()
    step = max(1, round(1 / fraction))
    return ids[::step]


def _overlap_rows(duckdb_path: Path, seconds: int = 61) -> int:
    """Suppliers updated within the cursor overlap (60 s, sent to the second) before the
    newest: the ones an incremental read gets again."""
    import duckdb

    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        return int(con.execute(
            "select count(*) from xero.suppliers where updated_date_utc >= "
            "(select max(updated_date_utc) from xero.suppliers) - to_seconds(?)",
            [seconds]).fetchone()[0])
    finally:
        con.close()


def side_by_side(bench: Bench) -> None:
    """Scenario 4: ten organisations against one, limits on, Xero-like latency."""
    plan = bench.plan
    bench.say(f"scenario 4: {plan.orgs} organisations x {plan.org_suppliers:,} suppliers, "
              f"limits on, {plan.latency_ms} ms latency")
    sb = bench.sandbox(tenants=plan.orgs, suppliers=plan.org_suppliers, rate_limits=True,
                       latency_ms=plan.latency_ms)
    try:
        tenants = sb.tenant_ids()
        one_home = bench.home(sb, "s4-one", tenants[:1])
        all_home = bench.home(sb, "s4-all", tenants)
        one_floor = bench.floor(sb, bench.home(sb, "s4-one-floor", tenants[:1]),
                                "fetch-floor-one", paced=True)
        all_floor = bench.floor(sb, bench.home(sb, "s4-all-floor", tenants),
                                "fetch-floor-all", paced=True)
        one = bench.load(sb, one_home, "one-organisation")
        every = bench.load(sb, all_home, "all-organisations")
        bench.results["s4"] = {
            "sandbox": sb.describe(), "orgs": len(tenants), "latency_ms": plan.latency_ms,
            "call_floor_one": sb.full_load_call_floor(tenants[:1]),
            "call_floor_all": sb.full_load_call_floor(tenants),
            "floor_one": asdict(one_floor), "floor_all": asdict(all_floor),
            "one": asdict(one), "all": asdict(every),
        }
    finally:
        sb.stop()


def memory_series(bench: Bench) -> None:
    """Full loads at each size of the series not measured yet (limits off): peak RSS vs N."""
    done = bench.results.setdefault("rss", {})
    for size in bench.plan.rss_sizes:
        if str(size) in done:
            continue
        bench.say(f"memory series: full load, {size:,} suppliers, limits off")
        sb = bench.sandbox(tenants=1, suppliers=size, rate_limits=False)
        try:
            floor = bench.floor(sb, bench.home(sb, f"rss{size}-floor"), "fetch-floor",
                                paced=False)
            load = bench.load(sb, bench.home(sb, f"rss{size}-load"), "load")
            done[str(size)] = _rss_point(load, floor)
        finally:
            sb.stop()


def _rss_point(load: LoadFigures, floor: LoadFigures) -> dict[str, Any]:
    return {"load": asdict(load), "floor": asdict(floor)}


from bench.burst import scenario as burst  # noqa: E402  (it needs Bench above)
from bench.dagster_scenario import many_organisations  # noqa: E402  (it needs Bench above)
from bench.platform_scenario import platform  # noqa: E402  (it needs Bench above)

SCENARIOS: dict[str, Callable[[Bench], None]] = {
    "1": full_load_limits_off,
    "2": limits_on_and_incremental,
    "4": side_by_side,
    "5": into_postgres,
    "hv": high_volume,
    "rss": memory_series,
    "platform": platform,
    "dagster": many_organisations,
    "burst": burst,
}
