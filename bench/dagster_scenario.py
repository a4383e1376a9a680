"""Scenario "dagster": 200 organisations at Xero-like latency, no-change runs, through
`xero-elt run` (one process, the shared layout) and through Dagster (the real daemon, runs over
batches of organisation partitions, the per-organisation layout), side by side.

Each side first loads everything once (not measured: it sets the incremental state), then one
no-change pass is measured: wall time from the first run's start to the last one's end, and the
sandbox's call counts against the floor of a no-change run's calls per organisation (one per
Xero path: `bench.world.NO_CHANGE_CALLS_PER_ORG`).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench import dagster_timeline
from bench.world import NO_CHANGE_CALLS_PER_ORG

if TYPE_CHECKING:
    from bench.harness import Bench
    from bench.world import BenchSandbox, Home

ROOT = Path(__file__).resolve().parent.parent
# BENCH_DAGSTER_ORGANISATIONS: fewer, to try the scenario out (the report says how many ran).
ORGANISATIONS = int(os.environ.get("BENCH_DAGSTER_ORGANISATIONS", "200"))
SUPPLIERS = 20
# Dagster's own storage in PostgreSQL, as docs/deploy.md sets it up for many machines (SQLite
# storage serialises the event log writes of runs side by side); SQLite when there is none.
POSTGRES_STORAGE = """\
run_storage:
  module: dagster_postgres.run_storage
  class: PostgresRunStorage
  config:
    postgres_url: "{url}"
event_log_storage:
  module: pipelines.dagster_storage
  class: PooledPostgresEventLogStorage
  config:
    postgres_url: "{url}"
schedule_storage:
  module: dagster_postgres.schedule_storage
  class: PostgresScheduleStorage
  config:
    postgres_url: "{url}"
"""
DAGSTER_YAML = """\
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
concurrency:
  runs:
    max_concurrent_runs: {runs}
    tag_concurrency_limits:
      - key: dagster/partition
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    default_limit: {runs}
telemetry:
  enabled: false
"""
# Runs Dagster may start at once on the bench machine (2 cores: each run is a Python process).
DAGSTER_RUNS = 4
PASS_TIMEOUT_S = 3600.0
# The schedule during the first loads: a cron that does not fire while a benchmark runs.
NEVER_IN_A_BENCH = "0 0 29 2 *"


def many_organisations(bench: Bench) -> None:
    """200 organisations, no-change runs: `xero-elt run` against Dagster."""
    if bench.plan.smoke:
        # The daemon waits for a schedule tick (up to a minute) and starts a process per run:
        # more than the smoke run's whole budget. tests/pipelines/test_dagster_daemon.py covers
        # the machinery; `python -m bench --only dagster` measures it.
        bench.say("scenario dagster: not part of --smoke (see docs/deploy.md)")
        return
    orgs = ORGANISATIONS
    bench.say(f"scenario dagster: {orgs} organisations x {SUPPLIERS} suppliers, limits on, "
              f"{bench.plan.latency_ms} ms latency, no-change runs")
    sb = bench.sandbox(tenants=orgs, suppliers=SUPPLIERS, rate_limits=True,
                       latency_ms=bench.plan.latency_ms)
    try:
        cron_home = bench.home(sb, "sd-cron")
        bench.load(sb, cron_home, "cron-first-load")
        cron = bench.load(sb, cron_home, "cron-no-change")
        dagster = _dagster_no_change(bench, sb, bench.home(sb, "sd-dagster"))
        bench.results["dagster"] = {
            "sandbox": sb.describe(), "orgs": orgs, "latency_ms": bench.plan.latency_ms,
            "call_floor": NO_CHANGE_CALLS_PER_ORG * orgs, "dagster_runs_at_once": DAGSTER_RUNS,
            "cron": asdict(cron), "dagster": dagster,
        }
    finally:
        sb.stop()


def _dagster_no_change(bench: Bench, sb: BenchSandbox, home: Home) -> dict[str, Any]:
    """The daemon's first loads (sensor), then one scheduled no-change pass, measured."""
    import dagster as dg

    run_dir = home.path.parent
    dagster_home = run_dir / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    storage, database = _storage(bench)
    (dagster_home / "dagster.yaml").write_text(storage + DAGSTER_YAML.format(runs=DAGSTER_RUNS))
    env = {
        **os.environ, **sb.dlt_env(), "XERO_ELT_HOME": str(home.path),
        "DLT_DATA_DIR": str(run_dir / "dlt"), "DAGSTER_HOME": str(dagster_home),
        "DESTINATION__DUCKDB__CREDENTIALS": str(run_dir / "xero_elt.duckdb"),
        "PIPELINES__DAGSTER__SENSOR_INTERVAL_SECONDS": "5",
        # The measured tick is a pass over every organisation, minutes after their first loads:
        # with schedules on, nothing would be due yet (store.schedules).
        "PIPELINES__SCHEDULE__ENABLED": "false",
    }
    orgs = len(home.tenant_ids)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    # Create the storage before the daemon starts: two processes creating it at once can leave
    # SQLite's alembic table with two heads, after which neither opens it.
    try:
        dg.DagsterInstance.get().dispose()
        return _measure(bench, sb, env, run_dir, orgs, storage_kind="PostgreSQL"
                        if database else "SQLite")
    finally:
        if database:
            from bench import postgres

            postgres.drop_database(database)


def _storage(bench: Bench) -> tuple[str, str | None]:
    """The dagster.yaml storage section and the throwaway database it uses (None: SQLite)."""
    from bench import postgres

    if postgres.unavailable():
        bench.say("  dagster: no PostgreSQL, so Dagster keeps its storage in SQLite")
        return "", None
    database = f"xero_elt_bench_dagster_{os.getpid()}"
    postgres.create_database(database)
    url = postgres.dsn(database).replace("postgresql://", "postgresql+psycopg2://", 1)
    return POSTGRES_STORAGE.format(url=url), database


def _measure(bench: Bench, sb: BenchSandbox, env: dict[str, str], run_dir: Path, orgs: int,
             storage_kind: str) -> dict[str, Any]:
    """Two daemon sessions: the sensor's first loads with the schedule out of the way, then
    exactly one schedule tick (a cron naming the next minute but one), measured alone."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        with _daemon(env | {"PIPELINES__DAGSTER__SCHEDULE_CRON": NEVER_IN_A_BENCH}, run_dir):
            _wait_runs(instance, orgs)  # the sensor's first loads: state for every org
        _start_counting(bench, sb)
        tick = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=2)
        once = f"{tick.minute} {tick.hour} * * *"  # Dagster's schedules run in UTC
        with _daemon(env | {"PIPELINES__DAGSTER__SCHEDULE_CRON": once}, run_dir):
            runs = _wait_runs(instance, orgs, scheduled=True)
            calls = sb.calls()
        timeline = dagster_timeline.timelines(instance, runs, tick.timestamp())
    started = min(r.start_time for r in runs)
    ended = max(r.end_time for r in runs)
    failed = sum(1 for r in runs if not r.dagster_run.is_success)
    bench.say(f"  dagster-no-change: {ended - started:.1f}s wall, {calls['api']} API calls, "
              f"{failed} failed runs")
    return {"wall_s": ended - started, "calls": calls, "runs": len(runs), "failed_runs": failed,
            "mean_run_s": sum(r.end_time - r.start_time for r in runs) / len(runs),
            "storage": storage_kind, "timeline": {"runs": timeline},
            "tick_to_end_s": ended - tick.timestamp()}


@contextlib.contextmanager
def _daemon(env: dict[str, str], run_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`dagster-daemon run` for the block (the process, leader of its own session: its code
    server and run workers are in that session); stopped (its runs with it) at the end."""
    with (run_dir / "daemon.log").open("a") as log:
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-m",
             "pipelines.dagster_defs"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
            stderr=log, start_new_session=True)
        try:
            yield daemon
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(60)


def _start_counting(bench: Bench, sb: BenchSandbox) -> None:
    """Count calls from here: nothing runs until the measured schedule tick."""
    sb.fresh_minute()
    sb.start_counting()
    bench.say("  dagster: first loads done, waiting for the schedule's no-change pass")


def _finished(instance: Any, scheduled: bool = False) -> list[Any]:
    import dagster as dg

    records = instance.get_run_records(dg.RunsFilter(job_name="xero_sync_job"))
    return [r for r in records if r.dagster_run.is_finished
            and (not scheduled or "dagster/schedule_name" in r.dagster_run.tags)]


def _covered(instance: Any, runs: list[Any]) -> int:
    """Organisations (partitions) the runs covered: a batched run covers several."""
    from pipelines.dagster_defs import run_partitions

    order = instance.get_dynamic_partitions("xero_organisations")
    return sum(len(run_partitions(r.dagster_run.tags, order)) for r in runs)


def _wait_runs(instance: Any, orgs: int, scheduled: bool = False) -> list[Any]:
    """The finished runs, once they have covered ``orgs`` organisations between them."""
    deadline = time.monotonic() + PASS_TIMEOUT_S
    while time.monotonic() < deadline:
        done = _finished(instance, scheduled)
        if _covered(instance, done) >= orgs:
            return done
        time.sleep(5)
    covered = _covered(instance, _finished(instance, scheduled))
    raise TimeoutError(f"Dagster runs covered only {covered} of {orgs} organisations")


TARGET_MULTIPLE = 1.5  # issue 24: the Dagster pass within 1.5x the same pass by `xero-elt run`


def verdicts(results: dict[str, Any]) -> list[list[str]]:
    """The targets table's row: Dagster's no-change pass against `xero-elt run`'s."""
    data = results.get("dagster")
    if not data or not data["cron"]["wall_s"]:
        return []
    cron, dagster = data["cron"]["wall_s"], data["dagster"]["wall_s"]
    multiple = dagster / cron
    return [[f"{data['orgs']} organisations, no-change pass on Dagster within "
             f"{TARGET_MULTIPLE}× the same pass by `xero-elt run`",
             f"{multiple:.2f}× ({dagster:.1f} s vs {cron:.1f} s)",
             "**met**" if multiple <= TARGET_MULTIPLE
             else f"**missed** by {multiple / TARGET_MULTIPLE:.2f}×"]]


def render(results: dict[str, Any]) -> str:
    """The report's section for this scenario (empty when it did not run)."""
    data = results.get("dagster")
    if not data:
        return ""
    cron, dagster, floor = data["cron"], data["dagster"], data["call_floor"]

    def calls(c: dict[str, Any]) -> str:
        return f"{c['api']} (floor {floor}, {c['api'] - floor:+d}); {c['token']} token"

    rows = [
        ("wall time, no-change pass", f"{cron['wall_s']:.1f} s", f"{dagster['wall_s']:.1f} s"),
        ("from the schedule's tick to the last run's end", "—",
         f"{dagster['tick_to_end_s']:.1f} s" if dagster.get("tick_to_end_s") else "—"),
        ("API calls", calls(cron["calls"]), calls(dagster["calls"])),
        ("runs", "1 process", f"{dagster['runs']} ({dagster['failed_runs']} failed), "
                              f"mean {dagster['mean_run_s']:.1f} s, "
                              f"{data['dagster_runs_at_once']} at once"),
        ("Dagster's own storage", "—", dagster.get("storage", "SQLite")),
    ]
    table = ["| | `xero-elt run` | Dagster |", "|---|---|---|"]
    table += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join([
        f"## {data['orgs']} organisations: `xero-elt run` and Dagster, no-change runs", "",
        f"Sandbox: {data['sandbox']}. Both sides loaded everything once first (not measured); "
        "then one no-change pass each: cron's one process with every organisation side by "
        "side, and Dagster's daemon starting runs over batches of organisation partitions "
        "(`[pipelines.dagster] batch_size`).", "",
        *table, "",
        *dagster_timeline.render(dagster.get("timeline") or {}),
    ])
