"""Where a first load's peak memory is allocated: `python -m bench.memory_profile`.

    python -m bench.memory_profile --orgs 300 --suppliers 200 --latency-ms 300 --out DIR

Starts a sandbox of ``--orgs`` organisations, each connected on its own grant (the platform
scenario's shape), and runs one first load (`bench.loader`, what `xero-elt run` runs) under
memray's tracker. Writes ``DIR/first-load.bin`` (open it with ``python -m memray flamegraph`` or
``tree``) and prints the allocations alive at the high-water mark, largest first.
"""

from __future__ import annotations

import argparse
import runpy
import sys
from pathlib import Path

from bench.harness import Bench, Plan


def _child(argv: list[str]) -> int:
    """``--child OUT PYTHON -m bench.loader SPEC RESULT``: the loader under memray."""
    import memray

    out, rest = Path(argv[0]), argv[1:]
    module_at = rest.index("-m")
    sys.argv = [rest[module_at + 1], *rest[module_at + 2:]]
    out.unlink(missing_ok=True)
    with memray.Tracker(out, native_traces=False, trace_python_allocators=False):
        try:
            runpy.run_module(rest[module_at + 1], run_name="__main__")
        except SystemExit as done:
            return int(done.code or 0)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the profiled first load and print its high-water mark."""
    raw = sys.argv[1:] if argv is None else argv
    if raw[:1] == ["--child"]:
        return _child(raw[1:])
    if raw[:1] == ["--read"]:
        print(high_water_mark(Path(raw[1])))
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.memory_profile")
    parser.add_argument("--orgs", type=int, default=300)
    parser.add_argument("--suppliers", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=300)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(raw)
    args.out.mkdir(parents=True, exist_ok=True)
    bench = Bench(workdir=args.out, plan=Plan.full())
    sb = bench.sandbox(tenants=args.orgs, suppliers=args.suppliers, rate_limits=True,
                       latency_ms=args.latency_ms)
    profile = args.out / "first-load.bin"
    try:
        home = sb.connect_home_per_organisation(args.out / "load" / "home", sb.tenant_ids())
        bench.load(sb, home, "first-load",
                   wrap=[sys.executable, "-m", "bench.memory_profile", "--child",
                         str(profile)])
    finally:
        sb.stop()
    print(high_water_mark(profile))
    return 0


def high_water_mark(profile: Path, *, top: int = 25, depth: int = 6) -> str:
    """The allocations alive at the profile's high-water mark, grouped by their innermost
    ``depth`` Python frames, largest first."""
    from memray import FileReader

    reader = FileReader(profile)
    groups: dict[tuple[str, ...], list[int]] = {}
    for record in reader.get_high_watermark_allocation_records(merge_threads=True):
        frames = tuple(f"{func} ({Path(file).name}:{line})"
                       for func, file, line in record.stack_trace(max_stacks=depth))
        entry = groups.setdefault(frames, [0, 0])
        entry[0] += record.size
        entry[1] += record.n_allocations
    total = sum(size for size, _ in groups.values())
    lines = [f"peak memory {reader.metadata.peak_memory / 2**20:.0f} MB; at the high-water "
             f"mark {total / 2**20:.0f} MB alive in {len(groups)} places; the largest:"]
    for frames, (size, count) in sorted(groups.items(), key=lambda kv: -kv[1][0])[:top]:
        lines.append(f"{size / 2**20:8.1f} MB {count:9d} allocations")
        lines += [f"             {frame}" for frame in frames]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
