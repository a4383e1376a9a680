"""The loading process of a benchmark: `python -m bench.loader SPEC.json RESULT.json`.

It runs exactly what `xero-elt run` runs (`pipelines.run.execute`: the lock, the destination,
the connector's source, `sync_runs` and `connections`) in a process of its own, so the parent
can read this process's peak RSS and CPU from `wait4`. Configuration arrives in the environment
(`XERO_ELT_HOME`, `SOURCES__XERO__*`, `DESTINATION__*`), set by `bench.measure`; the spec only
says which run options to use.

Besides the run's summary, it records the step timings of every dlt trace (extract, normalize,
load) through dlt's tracking-module hook, with the process's peak RSS at the end of each, and
how long the imports took.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

_T0 = time.monotonic()


class _StepRecorder:
    """A dlt tracking module that keeps each trace's step names, durations and row counts."""

    def __init__(self) -> None:
        self.traces: list[dict[str, Any]] = []
        self._steps: list[dict[str, Any]] = []

    def on_start_trace(self, trace: Any, step: Any, pipeline: Any) -> None:
        self._steps = []

    def on_start_trace_step(self, trace: Any, step: Any, pipeline: Any) -> None:
        pass

    def on_end_trace_step(
        self, trace: Any, step: Any, pipeline: Any, step_info: Any, send_state: bool
    ) -> None:
        # Peak RSS of this process so far (KiB on Linux): which step raised the peak.
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        item: dict[str, Any] = {"step": step.step, "seconds": None, "rows": None,
                                "peak_rss_mb": peak_mb}
        if step.started_at is not None and step.finished_at is not None:
            item["seconds"] = (step.finished_at - step.started_at).total_seconds()
        if step.step == "normalize" and step_info is not None:
            try:
                item["rows"] = dict(step_info.row_counts)
            except Exception:  # a failed normalize has no counts; the summary says why
                item["rows"] = None
        self._steps.append(item)

    def on_end_trace(self, trace: Any, pipeline: Any, send_state: bool) -> None:
        self.traces.append({"pipeline": pipeline.pipeline_name, "steps": self._steps})
        self._steps = []


def main(argv: list[str]) -> int:
    """Run once as the spec says; write the result JSON; exit with the run's exit code."""
    spec_path, result_path = Path(argv[0]), Path(argv[1])
    spec = json.loads(spec_path.read_text())
    import dlt  # noqa: F401 - timed: dlt's import is part of every run's start-up
    from dlt.pipeline import trace as dlt_trace

    from pipelines.run import RunOptions, _setup_logging, execute

    imported = time.monotonic()
    recorder = _StepRecorder()
    dlt_trace.TRACKING_MODULES.append(recorder)
    _setup_logging()
    options = RunOptions(
        destination=spec.get("destination"),
        tenants=spec.get("tenants"),
        entities=spec.get("entities"),
        reconcile=bool(spec.get("reconcile", False)),
        full_refresh=bool(spec.get("full_refresh", False)),
        # A benchmark measures reads: every entity, whatever the schedule says is due.
        schedule=False,
    )
    started = time.monotonic()
    report = execute(options)
    finished = time.monotonic()
    result = {
        "exit_code": report.exit_code,
        "summary": report.summary,
        "traces": recorder.traces,
        "seconds": {
            "imports": imported - _T0,
            "execute": finished - started,
            "in_process": finished - _T0,
        },
    }
    result_path.write_text(json.dumps(result, default=str, indent=1))
    return int(report.exit_code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
