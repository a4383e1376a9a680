"""Benchmarks of xero-elt against the local sandbox: API calls, wall time and memory.

`python -m bench` runs every scenario of issue 6 and writes `docs/benchmarks.md` from the
measured figures; `python -m bench --smoke` is a tiny version that finishes in seconds.

Modules: `cli` (the command), `harness` (the plan, a run's results, one measured load or
floor), `scenarios` (the five scenarios and the memory series; it lists every scenario, those of
`platform_scenario`, `dagster_scenario` and `burst` too), `world` (sandboxes and connected
organisations), `measure` (a load in a child process, its wall time, CPU and peak RSS), `loader`
(the child: the real `xero-elt run` path), `fetch_floor` (the minimal httpx script the loads are
compared with), `profile` (py-spy), `machine` (hardware and versions) and `report` (the Markdown
document).
"""
