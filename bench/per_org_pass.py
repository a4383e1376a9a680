"""Where a per-organisation no-change pass spends its time, beside the same pass shared.

`python -m bench.per_org_pass --orgs 30 [--destination postgres] [--py-spy OUT.raw]`: one
sandbox of N organisations x 20 suppliers (limits off, no latency: the local cost alone), two
homes connected to all of them; each is loaded once (not measured), then one no-change pass is
measured through `execute(RunOptions(layout=...))` — the per-organisation layout (what a Dagster
batch runs: since the cursors moved beside the data, one run of the batch through one pipeline
in a private working folder; before, a pipeline per organisation, in threads) and the shared one
(one `xero-elt run`).

Inside the per-organisation pass every touch of the destination (`pipelines.runlocks`) is timed:
how long each run waited for the dataset's load turn and how long it held it, per kind of touch
(the pre-flight, the state version check, the load, the bookkeeping `pipeline.run`, the views…).
With `--py-spy` the measured per-organisation pass is sampled (this process, every thread, idle
ones included) and summarised by `bench.profile`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.harness import LIMITS_OFF
from bench.world import BenchSandbox, Home

SUPPLIERS = 20


class TurnClock:
    """Waits for and holds of the dataset's load turn, per kind of touch, across threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wait: dict[str, float] = defaultdict(float)
        self.hold: dict[str, float] = defaultdict(float)
        self.count: dict[str, int] = defaultdict(int)
        self.local = threading.local()

    def add(self, kind: str, waited: float, held: float) -> None:
        with self.lock:
            self.wait[kind] += waited
            self.hold[kind] += held
            self.count[kind] += 1

    def table(self, runs: int) -> list[dict[str, Any]]:
        return [{"touch": k, "turns": self.count[k], "turns_per_org": self.count[k] / runs,
                 "wait_s_per_org": self.wait[k] / runs, "hold_s_per_org": self.hold[k] / runs}
                for k in sorted(self.hold, key=lambda k: -self.hold[k])]


@contextlib.contextmanager
def timed_turns(clock: TurnClock) -> Iterator[None]:
    """Time every turn of `pipelines.runlocks.TurnTakingPipeline` by the method that took it."""
    from pipelines import runlocks

    cls = runlocks.TurnTakingPipeline
    original_turn = cls._turn
    wrapped = {}

    @contextlib.contextmanager
    def turn(self: Any, *args: Any, **kwargs: Any) -> Iterator[None]:
        write = kwargs.get("write", args[0] if args else True)
        if getattr(self, "_holding", False) or (getattr(self, "_reading", False)
                                                and not write):  # no lock taken
            with original_turn(self, *args, **kwargs):
                yield
            return
        kind = getattr(clock.local, "kind", None) or "other"
        asked = time.perf_counter()
        with original_turn(self, *args, **kwargs):
            got = time.perf_counter()
            try:
                yield
            finally:
                clock.add(kind, got - asked, time.perf_counter() - got)

    def labelled(name: str, method: Any) -> Any:
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            outer = getattr(clock.local, "kind", None)
            clock.local.kind = outer or _caller_kind(name)
            try:
                return method(self, *args, **kwargs)
            finally:
                clock.local.kind = outer
        return call

    def labelled_cm(name: str, method: Any) -> Any:
        @contextlib.contextmanager
        def call(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            outer = getattr(clock.local, "kind", None)
            clock.local.kind = outer or _caller_kind(name)
            try:
                with method(self, *args, **kwargs) as value:
                    yield value
            finally:
                clock.local.kind = outer
        return call

    cls._turn = turn  # type: ignore[method-assign]
    for name in ("load", "run", "sync_destination", "keep_turn"):
        if not hasattr(cls, name):  # keep_turn: only where runs keep a turn
            continue
        wrapped[name] = getattr(cls, name)
        setattr(cls, name, labelled(name, wrapped[name]))
    wrapped["sql_client"] = cls.sql_client
    cls.sql_client = labelled_cm("sql_client", cls.sql_client)  # type: ignore[method-assign]
    try:
        yield
    finally:
        cls._turn = original_turn  # type: ignore[method-assign]
        for name, method in wrapped.items():
            setattr(cls, name, method)


def _caller_kind(method: str) -> str:
    """`method@function` of the nearest caller of ours (pipelines/, connector/)."""
    frame = sys._getframe(1)
    while frame is not None:
        file = frame.f_code.co_filename
        if ("/pipelines/" in file or "/connector/" in file) and "runlocks" not in file:
            return f"{method}@{frame.f_code.co_name}"
        frame = frame.f_back  # type: ignore[assignment]
    return method


def _environment(sb: BenchSandbox, home: Home, destination: str, dataset: str) -> None:
    """Point this process at the sandbox, the home and its own destination."""
    run_dir = home.path.parent
    os.environ.update(sb.dlt_env())
    os.environ.update({
        "XERO_ELT_HOME": str(home.path), "DLT_DATA_DIR": str(run_dir / "dlt"),
        "DESTINATION__DUCKDB__CREDENTIALS": str(run_dir / "xero_elt.duckdb"),
        "PIPELINES__SCHEDULE__ENABLED": "false",
    })
    if destination == "postgres":
        from bench import postgres

        os.environ["DESTINATION__POSTGRES__CREDENTIALS"] = postgres.dsn(dataset)


def _pass(home: Home, layout: str, destination: str) -> tuple[float, Any]:
    from pipelines.run import RunOptions, execute
    from store import open_store

    store = open_store(home.path)
    try:
        clock = time.perf_counter()
        report = execute(RunOptions(destination=destination, layout=layout,
                                    tenants=home.tenant_ids, schedule=False), store)
        return time.perf_counter() - clock, report
    finally:
        store.close()


@contextlib.contextmanager
def _py_spy(output: Path | None) -> Iterator[None]:
    """py-spy recording this process (every thread, idle ones too) for the block."""
    if output is None:
        yield
        return
    from bench.profile import py_spy

    exe = py_spy()
    assert exe, "py-spy is not installed"
    proc = subprocess.Popen([exe, "record", "--rate", "100", "--format", "raw", "--idle",
                             "--threads", "--nonblocking", "--pid", str(os.getpid()),
                             "--output", str(output)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    try:
        yield
    finally:
        proc.send_signal(2)
        proc.wait(60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=int, default=30)
    parser.add_argument("--destination", default="duckdb", choices=("duckdb", "postgres"))
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--py-spy", type=Path, default=None, dest="py_spy")
    parser.add_argument("--skip-shared", action="store_true")
    args = parser.parse_args(argv)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="per-org-pass-"))
    say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
    import logging

    logging.basicConfig(level=logging.WARNING)
    sb = BenchSandbox(tenants=args.orgs, suppliers=SUPPLIERS, rate_limits=False)
    sb.handle.limits(**LIMITS_OFF)
    databases: list[str] = []
    results: dict[str, Any] = {"orgs": args.orgs, "destination": args.destination}
    try:
        for layout in ("per_organisation", "shared"):
            if layout == "shared" and args.skip_shared:
                continue
            home = sb.connect_home(workdir / layout / "home", sb.tenant_ids())
            database = f"xero_elt_perorg_{layout}_{os.getpid()}"
            if args.destination == "postgres":
                from bench import postgres

                postgres.create_database(database)
                databases.append(database)
            _environment(sb, home, args.destination, database)
            first, report = _pass(home, layout, args.destination)
            say(f"{layout}: first load {first:.1f} s, exit {report.exit_code}")
            clock = TurnClock()
            with timed_turns(clock), _py_spy(args.py_spy if layout == "per_organisation"
                                              else None):
                seconds, report = _pass(home, layout, args.destination)
            say(f"{layout}: no-change pass {seconds:.1f} s ({seconds / args.orgs:.3f} s an "
                f"organisation), exit {report.exit_code}")
            results[layout] = {"first_load_s": first, "no_change_s": seconds,
                               "per_org_s": seconds / args.orgs, "exit": report.exit_code,
                               "turns": clock.table(args.orgs)}
    finally:
        sb.stop()
        for database in databases:
            from bench import postgres

            postgres.drop_database(database)
    per_org = results["per_organisation"]
    say(f"\nload turns of the per-organisation pass (per organisation, {args.orgs} orgs):")
    say(f"{'touch':52} {'turns':>6} {'wait s':>8} {'held s':>8}")
    for row in per_org["turns"]:
        say(f"{row['touch']:52} {row['turns_per_org']:6.1f} {row['wait_s_per_org']:8.3f} "
            f"{row['hold_s_per_org']:8.3f}")
    held = sum(r["hold_s_per_org"] for r in per_org["turns"])
    say(f"{'total held':52} {'':6} {'':8} {held:8.3f}")
    if "shared" in results:
        say(f"pass: per_organisation {per_org['no_change_s']:.1f} s, shared "
            f"{results['shared']['no_change_s']:.1f} s "
            f"({per_org['no_change_s'] / results['shared']['no_change_s']:.1f}x)")
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
