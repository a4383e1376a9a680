"""Where a load's CPU goes: run it under py-spy and summarise the samples.

py-spy (a sampling profiler, `pip install py-spy`) records every thread of the loading process
at 100 samples a second, leaving out idle threads (those waiting on a socket or a lock), so the
samples are CPU. The raw output is one line per distinct stack: `frame;frame;... count`, each
frame `function (file:line)`. The summary counts, per function, its "self" samples (it was the
innermost frame) and its "total" samples (anywhere on the stack), and per area (ours, dlt,
pydantic, json, httpx, ...).
"""

from __future__ import annotations

import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")
SAMPLE_RATE = 100

# Ordered: the first pattern found in a frame's file names its area.
AREAS: tuple[tuple[str, str], ...] = (
    ("connector/", "connector (ours)"),
    ("pipelines/", "pipelines (ours)"),
    ("dlt/normalize", "dlt normalize"),
    ("dlt/extract", "dlt extract"),
    ("dlt/load", "dlt load"),
    ("dlt/common/libs/pyarrow", "dlt parquet writing"),
    ("dlt/common/data_writers", "dlt file writers"),
    ("dlt/common/json", "dlt json (orjson)"),
    ("dlt/", "dlt (other)"),
    ("pydantic", "pydantic"),
    ("httpx", "httpx/httpcore"),
    ("httpcore", "httpx/httpcore"),
    ("h11", "httpx/httpcore"),
    ("duckdb", "duckdb"),
    ("pyarrow", "pyarrow"),
    ("json/", "json (stdlib)"),
    ("sqlite3", "sqlite"),
)


def py_spy() -> str | None:
    """The py-spy executable beside our Python, or on PATH; None if not installed."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return str(beside)
    return shutil.which("py-spy")


def py_spy_command(output: Path) -> list[str] | None:
    """The wrapper that records a child into `output` (raw format); None without py-spy."""
    exe = py_spy()
    if exe is None:
        return None
    return [exe, "record", "--rate", str(SAMPLE_RATE), "--format", "raw", "--nonblocking",
            "--output", str(output), "--"]


@dataclass
class Profile:
    """A summary of py-spy's raw samples."""

    samples: int = 0
    self_samples: Counter[str] = field(default_factory=Counter)
    total_samples: Counter[str] = field(default_factory=Counter)
    area_self: Counter[str] = field(default_factory=Counter)

    def share(self, count: int) -> float:
        """A sample count as a percentage of all samples."""
        return 100.0 * count / self.samples if self.samples else 0.0

    def top_self(self, n: int = 15) -> list[tuple[str, int]]:
        """Functions with the most samples as the innermost frame."""
        return self.self_samples.most_common(n)

    def top_total(self, n: int = 15, prefix: tuple[str, ...] = ("connector/", "pipelines/",
                                                                 "dlt/")) -> list[tuple[str, int]]:
        """Our and dlt's functions with the most samples anywhere on the stack."""
        picked = [(k, v) for k, v in self.total_samples.most_common()
                  if any(p in k for p in prefix) and not k.startswith(("run ", "<module>"))]
        return picked[:n]


def _frame_name(frame: str) -> tuple[str, str]:
    """('function (short/file.py)', file) for a raw frame."""
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip(), ""
    path = match.group("file")
    short = path
    for marker in ("site-packages/", "/python3.11/", "/work/main/"):
        if marker in path:
            short = path.split(marker, 1)[1]
            break
    return f"{match.group('func')} ({short})", short


def area_of(file: str) -> str:
    """The area a source file belongs to."""
    for pattern, area in AREAS:
        if pattern in file:
            return area
    return "other"


def summarise(raw: str) -> Profile:
    """Summarise py-spy's raw (collapsed-stack) output."""
    profile = Profile()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        profile.samples += count
        leaf_name = frames[-1][0]
        profile.self_samples[leaf_name] += count
        # The area is the innermost frame that is not a C-level helper without a file.
        area = "other"
        for _name, file in reversed(frames):
            if file:
                area = area_of(file)
                break
        profile.area_self[area] += count
        for name in {name for name, _file in frames}:
            profile.total_samples[name] += count
    return profile


def read_profile(path: Path) -> Profile | None:
    """The summary of a raw py-spy file, or None if there is none."""
    if not path.exists():
        return None
    return summarise(path.read_text(errors="replace"))


def summary(profile: Profile, rate: int = SAMPLE_RATE) -> dict[str, object]:
    """The profile as plain values: areas, top functions, and every function's total share of
    at least 0.3% (what `bench.findings` reads its known costs from)."""
    return {
        "samples": profile.samples,
        "rate": rate,
        "areas": [(area, count, profile.share(count))
                  for area, count in profile.area_self.most_common()],
        "top_self": [(name, count, profile.share(count)) for name, count in profile.top_self(15)],
        "top_total": [(name, count, profile.share(count))
                      for name, count in profile.top_total(20)],
        "self_share": {name: profile.share(count)
                       for name, count in profile.self_samples.most_common()
                       if profile.share(count) >= 0.3},
        "total_share": {name: profile.share(count)
                        for name, count in profile.total_samples.most_common()
                        if profile.share(count) >= 0.3},
    }
