"""The benchmark's machinery, shared by every scenario: the plan (sizes and switches), a run's
working directory and results (``Bench``), one measured load or fetch floor in a child process
(``LoadFigures``) and reading a destination's row counts.

Scenarios live in ``bench.scenarios`` (issue 6's), ``bench.platform_scenario``,
``bench.dagster_scenario``, ``bench.scale_scenario`` (which reuses the Dagster scenario's daemon)
and ``bench.burst``; they import this module.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import postgres
from bench.measure import Measured, run_child
from bench.world import BenchSandbox, Home, snapshot_reads_spec

FLOOR_SCRIPT = str(Path(__file__).resolve().parent / "fetch_floor.py")
LIMITS_OFF = {"minute": 1_000_000, "day": 1_000_000, "app_minute": 10_000_000}
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
        entities: list[str] | None = None,
    ) -> LoadFigures:
        """One `xero-elt run` of `home` in a child process, measured (`entities` as
        `--entities`; None: every entity)."""
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
                             spec={"destination": destination, "reconcile": reconcile,
                                   "entities": entities},
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
