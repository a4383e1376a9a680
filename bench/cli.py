"""`python -m bench`: run the scenarios, keep the raw results, write the Markdown report.

    python -m bench                   # every scenario at issue 6's sizes -> docs/benchmarks.md
    python -m bench --smoke           # tiny sizes, ~30 s -> bench/results/benchmarks-smoke.md
    python -m bench --only 1,rss      # some scenarios (2 includes 3)
    python -m bench --from-results bench/results/latest-full.json   # re-render the report only
    python -m bench --only 5 --merge bench/results/latest-full.json  # rerun one scenario

Raw results (every figure, as JSON) go to `bench/results/` (ignored by git); the working
directory of the loads (DuckDB files, logs, py-spy output) is a temporary one, removed at the
end unless `--keep`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from bench import machine
from bench.harness import Bench, Plan
from bench.report import render
from bench.scenarios import SCENARIOS

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"
DOC = REPO_ROOT / "docs" / "benchmarks.md"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes: checks the machinery in well under a minute")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated scenarios to run, of {', '.join(SCENARIOS)} "
                             "(default all)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the Markdown report (default docs/benchmarks.md; with --smoke "
                             "bench/results/benchmarks-smoke.md)")
    parser.add_argument("--results", type=Path, default=None,
                        help="where to write the raw results JSON "
                             "(default bench/results/<kind>-<time>.json)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="working directory for the loads (default a temporary one)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the working directory (DuckDB files, logs, profiles)")
    parser.add_argument("--from-results", type=Path, default=None,
                        help="render the report from a results JSON instead of running")
    parser.add_argument("--merge", type=Path, default=None,
                        help="start from this results JSON and replace only the scenarios run "
                             "now (e.g. rerun one that failed); the report lists the rerun")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run (or re-render) and write the report; 0 if every scenario ran, 1 otherwise."""
    args = parse_args(argv)
    if args.from_results is not None:
        results = json.loads(args.from_results.read_text())
        out = args.out or _default_out(bool(results.get("plan", {}).get("smoke")))
        _write(out, render(results))
        print(f"report written to {out}")
        return 0
    plan = Plan.tiny() if args.smoke else Plan.full()
    chosen = list(SCENARIOS) if args.only is None else [s.strip() for s in args.only.split(",")]
    unknown = [s for s in chosen if s not in SCENARIOS]
    if unknown:
        print(f"unknown scenarios {unknown}; choose from {', '.join(SCENARIOS)}",
              file=sys.stderr)
        return 2
    kind = "smoke" if plan.smoke else "full"
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="xero-elt-bench-"))
    bench = Bench(workdir=workdir, plan=plan)
    described = machine.describe()
    invocation = {"date": described["date"], "commit": described["commit"], "scenarios": chosen,
                  "load_before": machine.load_average()}
    if args.merge is not None:
        base = json.loads(args.merge.read_text())
        if base.get("plan") != json.loads(json.dumps(asdict(plan))):
            print(f"{args.merge} was run with another plan; merge only like with like",
                  file=sys.stderr)
            return 2
        bench.results.update(base)
        bench.results.setdefault("reruns", []).append(invocation)
        for key in chosen:
            bench.results["errors"].pop(key, None)
    else:
        bench.results.update({
            "plan": asdict(plan), "scenarios": chosen, "machine": machine.describe(),
            "load_before": invocation["load_before"], "errors": {},
        })
    started = time.monotonic()
    bench.say(f"xero-elt benchmarks ({kind}); working directory {workdir}")
    try:
        for key in chosen:
            try:
                SCENARIOS[key](bench)
            except Exception as exc:  # keep going: the report says what failed and why
                bench.results["errors"][key] = f"{type(exc).__name__}: {exc}"
                bench.say(f"scenario {key} failed:\n{traceback.format_exc()}")
    finally:
        invocation["load_after"] = machine.load_average()
        invocation["duration_s"] = time.monotonic() - started
        if args.merge is None:
            bench.results["load_after"] = invocation["load_after"]
            bench.results["duration_s"] = invocation["duration_s"]
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    results_path = args.results or RESULTS_DIR / f"{kind}-{stamp}.json"
    _write(results_path, json.dumps(bench.results, indent=1, default=str))
    if args.results is None:
        _write(RESULTS_DIR / f"latest-{kind}.json", json.dumps(bench.results, indent=1,
                                                                 default=str))
    out = args.out or _default_out(plan.smoke)
    _write(out, render(bench.results))
    bench.say(f"results in {results_path}; report written to {out} "
              f"({invocation['duration_s']:.0f} s)")
    return 1 if bench.results["errors"] else 0


def _default_out(smoke: bool) -> Path:
    return RESULTS_DIR / "benchmarks-smoke.md" if smoke else DOC


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n")
