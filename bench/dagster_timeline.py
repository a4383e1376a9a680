"""Where a Dagster pass's time goes, read back from Dagster's own event log.

Per run of the pass, the moments Dagster records (seconds after the schedule's tick): the run
created by the tick, queued, taken from the queue, launched, its process started (the run
worker's first event: Python and Dagster imported), the run started (our code imported, the
plan built), the step started, ``xero-elt run`` done (our asset's log line), the step done and
the run done. ``phases`` gives the mean of each gap over the runs, and the pass's span.
"""

from __future__ import annotations

from statistics import mean
from typing import Any

# The moments, in the order a run passes them: (name, how to find it in the event log).
MOMENTS = (
    ("created", None),
    ("enqueued", "PIPELINE_ENQUEUED"),
    ("launching", "PIPELINE_STARTING"),
    ("process_started", "Started process for run"),
    ("run_started", "PIPELINE_START"),
    ("step_started", "STEP_START"),
    ("work_done", "xero-elt run of"),
    ("step_done", "STEP_SUCCESS"),
    ("run_done", None),
)
# The gaps ``phases`` reports: (label, from moment, to moment).
PHASES = (
    ("tick to run created (schedule evaluation)", "tick", "created"),
    ("created to queued (the run's planned events written)", "created", "enqueued"),
    ("queued to launched (the dequeue interval, launches before it)", "enqueued", "launching"),
    ("launched to process started (spawn, import dagster)", "launching", "process_started"),
    ("process started to run started (import our code, dlt; plan)", "process_started",
     "run_started"),
    ("run started to step started", "run_started", "step_started"),
    ("step started to xero-elt run done (the work)", "step_started", "work_done"),
    ("work done to run done (events, end)", "work_done", "run_done"),
)


def run_timeline(instance: Any, record: Any, tick: float) -> dict[str, float | None]:
    """One run's moments, seconds after ``tick`` (None: not in its event log)."""
    found: dict[str, float | None] = {name: None for name, _ in MOMENTS}
    found["created"] = record.create_timestamp.timestamp() - tick
    found["run_done"] = (record.end_time - tick) if record.end_time else None
    for entry in instance.all_logs(record.dagster_run.run_id):
        kind = entry.dagster_event.event_type_value if entry.dagster_event else None
        text = entry.user_message or (entry.dagster_event.message if entry.dagster_event
                                      else "") or ""
        for name, needle in MOMENTS:
            if needle is None or found[name] is not None:
                continue
            if kind == needle or (kind in (None, "ENGINE_EVENT") and needle in text):
                found[name] = entry.timestamp - tick
    return found


def timelines(instance: Any, records: list[Any], tick: float) -> list[dict[str, float | None]]:
    """Every run's moments, in the order the runs started."""
    found = [run_timeline(instance, r, tick) for r in records]
    return sorted(found, key=lambda t: t["run_started"] or 0.0)


def phases(runs: list[dict[str, float | None]]) -> dict[str, Any]:
    """The mean of each gap over the runs, the first and last moments of the pass."""
    means: dict[str, float] = {}
    for label, start, end in PHASES:
        gaps = [(r[end] or 0.0) - (0.0 if start == "tick" else (r[start] or 0.0))
                for r in runs if r[end] is not None and (start == "tick" or r[start] is not None)]
        if gaps:
            means[label] = mean(gaps)
    return {
        "mean_s": means,
        "first_created_s": min((r["created"] or 0.0) for r in runs),
        "first_run_started_s": min((r["run_started"] or 0.0) for r in runs),
        "last_run_started_s": max((r["run_started"] or 0.0) for r in runs),
        "last_run_done_s": max((r["run_done"] or 0.0) for r in runs),
    }


def render(data: dict[str, Any]) -> list[str]:
    """Markdown lines: the mean gaps and each run's moments."""
    if not data or not data.get("runs"):
        return []
    summary = phases(data["runs"])
    lines = ["Where a run's time goes (mean over the runs, from Dagster's event log; seconds):", "",
             "| phase | mean |", "|---|---|"]
    lines += [f"| {label} | {s:.2f} |" for label, s in summary["mean_s"].items()]
    lines += ["", "Each run, seconds after the schedule's tick:", "",
              "| " + " | ".join(name for name, _ in MOMENTS) + " |",
              "|" + "---|" * len(MOMENTS)]
    for run in data["runs"]:
        lines.append("| " + " | ".join("—" if run[name] is None else f"{run[name]:.1f}"
                                       for name, _ in MOMENTS) + " |")
    return [*lines, ""]
