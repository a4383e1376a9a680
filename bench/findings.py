"""'What would close it': the misses explained from the run's own profile, levers and memory.

Each known cost is a set of function names in the py-spy profile; its share of the samples is
read from this run's profile, so the text says what each fix could save at most, with this run's
numbers. Nothing here is asserted by hand: a statement that needs a figure is computed from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.scenarios import MEMORY_LEVER


@dataclass(frozen=True)
class Cost:
    """A known cost: where it shows in the profile, whose code it is, what would remove it."""

    what: str
    names: tuple[str, ...]  # siblings on the stack (their shares add up), never nested
    owner: str
    fix: str
    saving: float  # the part of its share a fix of ours could remove (0: dlt's or a trade-off)


KNOWN_COSTS: tuple[Cost, ...] = (
    Cost(
        what="parsing every page with `json.loads(..., parse_float=Decimal)`: every number "
             "becomes a Decimal (the fetch floor parses the same pages with plain floats)",
        names=("loads (connector/wire.py)",),
        owner="`connector/wire.py`, `loads`",
        fix="a trade-off, not a free fix: parse floats and turn only the documented money and "
            "rate fields into Decimal (`Decimal(repr(x))` is exact for Xero's 2–4 decimals); "
            "unknown numeric fields would then arrive as floats (double columns)",
        saving=0.0,
    ),
    Cost(
        what="a content hash (canonical JSON, sorted keys, then BLAKE2b) of every supplier, "
             "also on a first load, where there is no stored hash to compare it with",
        names=("_canonical (connector/source.py)", "_digest (connector/source.py)"),
        owner="`connector/suppliers.py`, `SupplierRead._rows`",
        fix="hash only a record that can be compared or kept: one whose ContactID is already "
            "in `plan.recent`, or whose UpdatedDateUTC is within `cursor_overlap_seconds` + 2 s "
            "of the newest on its page. The filter there compares each record with the newest "
            "seen *so far*; suppliers are read in ascending UpdatedDateUTC, so every record is "
            "the newest so far and is hashed all the same. Taking the page's newest before the "
            "loop makes the filter bite (the share shown here is what it would save)",
        saving=1.0,
    ),
    Cost(
        what="checking every record against its model (pydantic) and building its row: "
             "dates decoded, amounts made Decimal, child rows keyed",
        names=("validate_record (connector/models.py)",),
        owner="`connector/models.py`, `validate_record`",
        fix="the check is the product's (a bad record is reported, the others load); a "
            "validator that decodes and checks in one pass (msgspec) is a candidate, not "
            "measured",
        saving=0.0,
    ),
    Cost(
        what="building each page's Arrow tables: flattening every row, sorting values into "
             "columns by table, checking each column's types (a second walk over the rows)",
        names=("PageTables.build (connector/arrow_pages.py)",),
        owner="`connector/arrow_pages.py`",
        fix="building the columns in the same walk as the check above would save most of "
            "the flattening; not measured",
        saving=0.0,
    ),
    Cost(
        what="dlt writing each page's Arrow tables: comparing them with the schema, "
             "reordering columns, writing parquet files (a file per table and 50,000 rows)",
        names=("ArrowExtractor.write_items (dlt/extract/extractors.py)",),
        owner="dlt",
        fix="larger items (several pages per table) would pay the per-item cost less often, "
            "at the price of holding them; not measured",
        saving=0.0,
    ),
    Cost(
        what="dlt's load: the merge into DuckDB (delete-insert on the primary key)",
        names=("Pipeline.load (dlt/pipeline/pipeline.py)",),
        owner="dlt and DuckDB",
        fix="each table is merged on its own (a child table per parent key), one job at a "
            "time on DuckDB (side by side they ran out of its 100 MB); files of 50,000 rows "
            "instead of 5,000 made fewer jobs. Appending a first load instead was tried (load "
            "step 7.9 -> 3.4 s) and dropped: an append job run again after a kill doubles its "
            "rows, which the kill tests caught",
        saving=0.0,
    ),
)

PYTHON_AREAS = ("connector (ours)", "pipelines (ours)", "dlt normalize", "dlt extract",
                "dlt load", "dlt file writers", "dlt json (orjson)", "dlt (other)", "pydantic",
                "httpx/httpcore", "json (stdlib)")


def cost_share(profile: dict[str, Any], cost: Cost) -> float:
    """The share of samples (percent) a known cost had in this run's profile."""
    shares = profile.get("total_share") or {}
    return sum(float(shares.get(name, 0.0)) for name in cost.names)


def _full_load(results: dict[str, Any]) -> str:
    s1 = results.get("s1")
    if not s1:
        return ""
    load, floor = s1["load"], s1["floor"]
    wall, cpu = load["wall_s"], load["cpu_s"]
    steps = load.get("steps", {})
    target = 30.0
    missed_time = wall >= target
    missed_floor = wall > 2 * floor["wall_s"]
    if not (missed_time or missed_floor):
        return ""
    lines = [
        "### Full-load time",
        "",
        f"The {s1['suppliers']:,}-supplier load took {wall:.1f} s against {target:.0f} s and "
        f"{wall / floor['wall_s']:.1f}× the fetch floor's {floor['wall_s']:.1f} s. Fetching is "
        f"not what is slow: the floor downloads and parses every page in {floor['wall_s']:.1f} "
        f"s using {floor['cpu_s']:.1f} CPU-seconds, and the sandbox spent "
        f"{(load['sandbox_cpu_s'] or 0):.1f} CPU-seconds serving the load. The loading process "
        f"itself used **{cpu:.1f} CPU-seconds**: extract {steps.get('extract', 0):.1f} s "
        f"(fetching, checking each record, writing dlt's files), normalize "
        f"{steps.get('normalize', 0):.1f} s, load {steps.get('load', 0):.1f} s.",
        "",
    ]
    profile = s1.get("profile")
    if profile and profile.get("total_share"):
        areas = {a: share for a, _c, share in profile["areas"]}
        python = sum(areas.get(a, 0.0) for a in PYTHON_AREAS)
        lines += [
            f"{python:.0f}% of the profile's samples are Python code (ours, dlt's, pydantic, "
            "json, httpx), which runs one thread at a time within a process: the fetching "
            "threads add no parallelism to it, and only work dlt moves into other processes "
            "(normalize workers, a lever below) can use the second core. So the wall time "
            "follows the CPU seconds, and closing the gap means removing work. What the work "
            "is, by known cost (share of all samples in this run's profile):",
            "",
            "| cost | share | whose | what would remove it |",
            "|---|---|---|---|",
        ]
        removable = 0.0
        for cost in KNOWN_COSTS:
            share = cost_share(profile, cost)
            if share < 0.5:
                continue
            removable += share * cost.saving
            lines.append(f"| {cost.what} | {share:.1f}% | {cost.owner} | {cost.fix} |")
        estimate = cpu * (1 - removable / 100)
        verdict = (
            f"The fixes of ours above would remove about {removable:.0f}% of the samples "
            f"(an estimate: each cost's share times the part its fix removes), bringing the "
            f"CPU to about {estimate:.0f} s, still "
            + ("above" if estimate >= target else "under")
            + f" the {target:.0f}-second target."
            if removable >= 1 else
            "None of these costs has a measured fix of ours left to take: the Decimal "
            "parsing is a trade-off we keep (exact money for every numeric field, known or "
            "new), the record check and the Arrow tables have candidates not yet measured "
            "(above), and the others are dlt's and DuckDB's.")
        lines += [
            "",
            verdict + " Rows reach dlt as Arrow tables built per page "
            "(`connector/arrow_pages.py`), so dlt's normalize step is gone (its seconds "
            "above); what is left is Python's per-record work before that (decoding, "
            "checking, building rows and columns), dlt writing the tables, and DuckDB "
            "ingesting them. The fetching threads and this work share one interpreter: moving the "
            "per-record work to another process is the remaining lever of that size.",
            "",
        ]
    levers = s1.get("levers") or {}
    if levers:
        lines.append("Measured levers (same load, settings only; see the table under "
                     "scenario 1):")
        lines.append("")
        for label, lever in levers.items():
            other = lever["load"]
            lines.append(f"- {label}: wall {other['wall_s']:.1f} s "
                         f"({100 * (other['wall_s'] / wall - 1):+.0f}%), CPU "
                         f"{other['cpu_s']:.1f} s ({100 * (other['cpu_s'] / cpu - 1):+.0f}%), "
                         f"peak RSS {other['peak_rss_mb']:.0f} MB.")
        lines.append("")
    return "\n".join(lines)


def _memory(results: dict[str, Any]) -> str:
    rss = results.get("rss") or {}
    if len(rss) < 2:
        return ""
    sizes = sorted(rss, key=int)
    peaks = {int(k): rss[k]["load"]["peak_rss_mb"] for k in sizes}
    top = max(peaks.values())
    small, large = int(sizes[0]), int(sizes[-1])
    growth = peaks[large] - peaks[small]
    if top < 400 and growth <= 0.1 * peaks[small]:
        return ""
    lines = ["### Peak memory", ""]
    steps = {int(k): rss[k]["load"].get("step_peak_rss_mb") or {} for k in sizes}
    if all(steps.values()):
        lines += [
            "Peak RSS so far at the end of each dlt step (the process's `ru_maxrss`), by "
            "number of suppliers:",
            "",
            "| suppliers | extract | normalize | load (= the peak) |",
            "|---|---|---|---|",
            *[f"| {size:,} | {s.get('extract', 0):.0f} MB | {s.get('normalize', 0):.0f} MB | "
              f"{s.get('load', 0):.0f} MB |" for size, s in steps.items()],
            "",
        ]
        ext = [s.get("extract", 0) for s in steps.values()]
        norm_rise = [s.get("normalize", 0) - s.get("extract", 0) for s in steps.values()]
        load_rise = [s.get("load", 0) - s.get("normalize", 0) for s in steps.values()]
        lines += [
            f"Extract stays between {min(ext):.0f} and {max(ext):.0f} MB whatever the size: "
            "pages are streamed (a bounded queue of pages, dlt's bounded write buffers). "
            f"The peak is raised by normalize (by {norm_rise[0]:.0f} MB at {small:,} "
            f"suppliers, {norm_rise[-1]:.0f} MB at {large:,}) and by the load into DuckDB "
            f"(by {load_rise[0]:.0f} MB at {small:,}, {load_rise[-1]:.0f} MB at {large:,}), "
            "both inside dlt and DuckDB.",
            "",
        ]
        lever = ((results.get("s1") or {}).get("levers") or {}).get(MEMORY_LEVER)
        base = (results.get("s1") or {}).get("load")
        if lever and base:
            peak, capped = base["peak_rss_mb"], lever["load"]["peak_rss_mb"]
            size = results["s1"]["suppliers"]
            if capped < 0.9 * peak:
                verdict = (
                    f"Capping DuckDB's own memory helps: with `memory_limit` at 200 MB (the "
                    f"lever under scenario 1) the {size:,}-supplier load peaked at "
                    f"{capped:.0f} MB against {peak:.0f} MB ({capped - peak:+.0f} MB), so part "
                    "of the load step's growth is DuckDB's buffer pool, which by default may "
                    "take most of the machine's RAM. Setting it is a one-line destination "
                    "setting (`[destination.duckdb.credentials] global_config`, or the "
                    "`DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG` variable the lever used); "
                    f"it cost {lever['load']['wall_s'] - base['wall_s']:+.1f} s of wall time "
                    "here. What remains above the extract step is the merge's query memory "
                    "(dlt stages every table, child tables included, and merges it on its key).")
            elif capped > 1.05 * peak:
                verdict = (
                    f"DuckDB's cache is part of the peak: with `memory_limit` at 200 MB instead "
                    f"of the 100 MB we set (the lever under scenario 1) the {size:,}-supplier "
                    f"load peaked at {capped:.0f} MB against {peak:.0f} MB "
                    f"({capped - peak:+.0f} MB). A lower limit would cut it, at the price of "
                    "the room a merge of a large organisation has.")
            else:
                verdict = (
                    f"DuckDB's cache does not move it: with `memory_limit` at 200 MB (the lever "
                    f"under scenario 1) the {size:,}-supplier load peaked at {capped:.0f} MB "
                    f"against {peak:.0f} MB; what is left is the merge's query memory (dlt "
                    "stages every table and merges it on its key) and memory the allocator "
                    "keeps.")
            lines += [verdict, ""]
        lines += [
            "What else could close it, not measured in this run: loading in several packages "
            "of a bounded number of suppliers (one `pipeline.run` per so many pages, at the "
            "cost of more transactions), so that DuckDB merges a bounded slice at a time. "
            "Profiled on the platform's first load of 1,000 organisations (an RSS sampler "
            "naming the main thread's frame at each new high): the highs come as a load turn "
            "ends and DuckDB checkpoints the file, and with DuckDB's `memory_limit` at 50 MB "
            "instead of 100 MB that load peaked at 375 MB, so DuckDB's cache of a growing "
            "file is most of what grows. memray's high-water mark is no guide here: it "
            "counted 1 GB alive in pyarrow's ParquetWriter while no more than 10 writers were "
            "(it missed their frees).",
            "",
        ]
    else:
        lines += [f"Peak RSS grows by {growth:.0f} MB from {small:,} to {large:,} suppliers.",
                  ""]
    return "\n".join(lines)


def _calls(results: dict[str, Any]) -> str:
    s3 = results.get("s3")
    if not s3:
        return ""
    changed = s3["changed"]
    load = changed["load"]
    extra = load["calls"]["api"] - changed["call_floor"]
    if extra <= 0:
        return ""
    overlap = changed.get("overlap_rows")
    return "\n".join([
        "### One call over the floor after a 1% change",
        "",
        f"{changed['suppliers_changed']:,} changed suppliers fill exactly "
        f"{changed['suppliers_changed'] / 1000:.0f} page(s) of 1,000; the 60-second overlap "
        "of `If-Modified-Since` (the cursor minus `cursor_overlap_seconds`) brings back the "
        "suppliers saved in the last minute before the cursor as well"
        + (f" ({overlap:,} of them)" if overlap is not None else "")
        + f", so Contacts took {extra} more page(s) than ceil(changed / 1000). "
        "These rows are recognised by their hash and not written. What would close it: a "
        "shorter overlap (`cursor_overlap_seconds`, a setting). The overlap is there for "
        "records Xero saves late with an earlier UpdatedDateUTC, so this is a trade-off to "
        "decide, not a free fix; when the changes and the overlap together fit in the pages "
        "the floor counts, the run meets it (the no-change run does).",
        "",
    ])


def _side_by_side(results: dict[str, Any]) -> str:
    s4 = results.get("s4")
    if not s4:
        return ""
    one, every = s4["one"], s4["all"]
    multiple = every["wall_s"] / one["wall_s"] if one["wall_s"] else 0.0
    if multiple <= 1.5:
        return ""
    floor_multiple = (s4["floor_all"]["wall_s"] / s4["floor_one"]["wall_s"]
                      if s4["floor_one"]["wall_s"] else 0.0)
    orgs = s4["orgs"]
    return "\n".join([
        f"### {orgs} organisations against one",
        "",
        f"The organisations do load side by side (their API calls overlap, see scenario 4), "
        f"but {orgs} organisations are {orgs} times the rows, and at these sizes the API's "
        f"latency is not what a load waits for: the loading process used "
        f"{every['cpu_s']:.1f} CPU-seconds for {orgs} organisations against "
        f"{one['cpu_s']:.1f} for one, and the sandbox {(every['sandbox_cpu_s'] or 0):.1f} "
        f"against {(one['sandbox_cpu_s'] or 0):.1f} to render the pages"
        + (f"; all {every['calls']['api']} API calls were made within "
           f"{max(e for _s, e in every['calls']['tenant_spans'].values()):.1f} s of the "
           f"first, in a {every['wall_s']:.1f}-second run: the rest was turning rows into "
           "tables"
           if every["calls"].get("tenant_spans") else "")
        + ". Even the fetch floor, which does no per-row work, took "
        f"{floor_multiple:.1f}× as long for {orgs} as for one, because the sandbox's "
        "rendering grows with the pages (against real Xero that part is Xero's servers'). "
        "What would close the gap is the loader's per-row CPU — the same costs as in the "
        "full load, above — plus the cores the other work on this machine was using.",
        "",
    ])


def closing_notes(results: dict[str, Any]) -> str:
    """The section, or '' when every target this run measured was met."""
    parts = [p for p in (_full_load(results), _memory(results), _calls(results),
                         _side_by_side(results)) if p]
    if not parts:
        return ""
    return "\n".join(["## What would close the gaps", "", *parts])
