"""`python -m bench --smoke` runs every scenario at tiny sizes and writes its figures.

Benchmarks are not tests: nothing here checks a figure against a target, only that the
machinery runs end to end (sandboxes, loads in child processes, fetch floors, the report).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def _smoke(tmp_path: Path, only: str) -> tuple[dict, str]:
    """`python -m bench --smoke --only ONLY`: its results and its report."""
    out, results = tmp_path / "benchmarks.md", tmp_path / "results.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--only", only, "--out", str(out),
         "--results", str(results)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=410,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    figures = json.loads(results.read_text())
    assert figures["errors"] == {}
    return figures, out.read_text()


# The scenarios in three parts of under a minute each, so that `make test`'s two workers can
# run them side by side; together they are every scenario of `python -m bench --smoke`.
ONE_ORGANISATION = "1,2,4,5,hv,rss"
MANY_ORGANISATIONS = "platform,dagster,burst,scale"
BILL = "bill"


def test_the_parts_cover_every_scenario() -> None:
    from bench.scenarios import SCENARIOS

    parts = f"{ONE_ORGANISATION},{MANY_ORGANISATIONS},{BILL}".split(",")
    assert sorted(parts) == sorted(SCENARIOS)


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_bench_smoke_one_organisation_scenarios_run_and_write_their_figures(
    tmp_path: Path,
) -> None:
    figures, report = _smoke(tmp_path, ONE_ORGANISATION)

    assert figures["s1"]["load"]["records"] > 0
    assert figures["s1"]["load"]["calls"]["api"] > 0
    assert figures["s1"]["floor"]["wall_s"] > 0
    assert figures["s3"]["no_change"]["load"]["outcome"] == "ok"
    assert figures["s4"]["all"]["records"] > figures["s4"]["one"]["records"]
    assert len(figures["rss"]) == 2
    assert all(point["load"]["peak_rss_mb"] > 0 for point in figures["rss"].values())
    for heading in ("## Machine", "## Targets at a glance", "## 1. Full load",
                    "## 2. Full load with Xero's rate limits on", "## 3. Incremental runs",
                    "## 4. 3 organisations side by side", "## Peak memory"):
        assert heading in report


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_bench_smoke_many_organisation_scenarios_run_and_write_their_figures(
    tmp_path: Path,
) -> None:
    figures, report = _smoke(tmp_path, MANY_ORGANISATIONS)

    platform = figures["platform"]
    assert platform["grants"] == platform["orgs"] > 1  # each organisation its own grant
    assert platform["hourly"]["calls"]["token"] == platform["orgs"]  # every token had expired
    assert platform["reused"]["calls"]["token"] == 0  # ...and was then reused
    assert platform["hourly"]["calls"]["api"] == platform["call_floor"]
    # A fresh machine (dlt's working folder gone) restores the state and reads nothing again.
    assert platform["fresh"]["load"]["records"] == 0
    assert platform["fresh"]["load"]["calls"]["api"] == platform["call_floor"]
    assert platform["floor_hourly"]["calls"]["token"] == platform["orgs"]
    assert [r["resets"] + r["other_failures"] for r in figures["burst"]["runs"]] == [0, 0, 0]
    scale = figures["scale"]  # the app's budget binds: passes wait for its window, no 429
    for side in ("cron", "floor"):
        assert scale[side]["calls"]["api"] == scale["call_floor"], side
        assert scale[side]["calls"]["rate_limited"] == 0, side
        assert scale[side]["wall_s"] > 0, side
    assert scale["dagster"] is None  # the full plan only (a schedule tick costs minutes)
    assert scale["cron"]["peak_rss_mb"] > 0
    for heading in ("## Machine", "## Targets at a glance",
                    "## Platform: 4 organisations, each its own grant",
                    "## A burst of customers at the auth server",
                    "## Scale: 6 organisations under the app's limit, no change"):
        assert heading in report


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_bench_smoke_bill_runs_and_writes_its_figures(tmp_path: Path) -> None:
    figures, report = _smoke(tmp_path, BILL)

    bill = figures["bill"]  # each kind of run measured, a month composed per schedule
    assert {r["outcome"] for r in bill["runs"].values()} == {"ok"}
    assert bill["runs"]["changed"]["records"] == 2 * bill["orgs"]  # a supplier, an account
    assert bill["runs"]["everything"]["token_calls"] == 1  # an hour on: one refresh
    assert 0 < bill["runs"]["suppliers"]["bytes_per_org"] < bill["runs"]["first"]["bytes_per_org"]
    assert all(m["bytes"] > 0 and m["calls"] > 0 for m in bill["months"].values())
    assert "## The bill: 2 organisations of 200 suppliers" in report
