"""The scenarios of issue 6, each measured against its limits in the same run.

1. A full load of one organisation, rate limits off (+ the fetch floor, a py-spy profile and
   the dlt levers, in the full run).
2. The same with Xero's limits on (+ the fetch floor paced the same way).
3. Incremental runs after 2: nothing changed, then 1% of suppliers changed.
4. Ten organisations side by side against one, limits on, 300 ms latency.
5. Scenario 1 into PostgreSQL.
"platform": 1,000 organisations each on its own grant, no-change runs (bench/platform_scenario).
"burst": 300 customers opening their invites at the auth server, 50 at a time (bench/burst).
"scale": 10,000 organisations under the app's limit, `xero-elt run` and Dagster's batched runs
beside their floor (bench/scale_scenario).
"bill": bytes and calls per organisation per month for hourly and 15-minute schedules, from
measured runs of each kind (bench/bill_scenario).
And the peak RSS of full loads at several sizes.

Every load is `bench.loader` in a child process: the product's own `xero-elt run` path into a
fresh XERO_ELT_HOME (fresh incremental state) and a fresh destination. API calls are read from
the sandbox's counters, never from the product's own count.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import postgres
from bench.bill_scenario import bill
from bench.burst import scenario as burst
from bench.dagster_scenario import many_organisations
from bench.harness import Bench, LoadFigures
from bench.platform_scenario import platform
from bench.profile import py_spy_command, read_profile, summary
from bench.scale_scenario import scale
from bench.world import (
    NO_CHANGE_CALLS_PER_ORG,
    PAGE_SIZE,
    SNAPSHOT_CALLS,
    BenchSandbox,
)

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
    "scale": scale,
    "bill": bill,
}
