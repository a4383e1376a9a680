"""Scenario "bill": bytes received and calls per organisation per month, from measured runs
(issue 25, point 4).

Since 2026 Xero meters apps: a monthly data-egress allowance per tier, a day limit per
organisation. This scenario measures, against the sandbox with gzip on, what each kind of run a
schedule produces costs one organisation, and composes a month from those runs.

The organisations are typical ones (200 suppliers, 64 accounts), a few of them loaded side by
side. After a first (full) load, each kind of run is measured once, with
``xero-elt run``'s own path (``pipelines.run.execute``, ``--entities`` choosing what it reads),
so the figures are whatever the product does today:

- everything, no change (tax rates and tracking categories included): as an hour after the last
  run, every access token expired, so it also shows a token refresh;
- suppliers only, no change;
- suppliers and accounts, no change; then again with one supplier and one account changed per
  organisation (what each change costs is read per endpoint: Contacts, Accounts);
- suppliers and accounts with ``--reconcile``: what the product reads once a day anyway (the
  supplier reconciliation, ``reconcile_interval_hours``; and, where accounts are read with
  If-Modified-Since, their whole chart, which alone shows deletions). It stands for the day's
  first run: the schedule's own due times are real hours apart, which a short scenario cannot
  wait for, and ``--reconcile`` asks for exactly those reads.

Before each run the sandbox clock moves on past the supplier cursor's overlap (60 s), as the
next scheduled run would find it, so a change is received once. Changes are applied with the
sandbox's mutation endpoint. Bytes are response bodies as sent (gzip), per organisation from the
sandbox's own counters (``GET /_sandbox/stats`` ``by_tenant``); calls are Accounting API calls per
organisation. Token refreshes and ``/connections`` belong to a grant, not an organisation, and
are reported apart.

The month (30 days) is composed in ``month`` from those runs: its no-change runs, plus the extra
bytes and calls of each change (1% of suppliers a day, one account a week), plus the daily
reads (the reconciliation run's extra over a plain suppliers + accounts run). ``SCHEDULES``
says how many runs of each kind a schedule makes.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from bench.harness import LoadFigures

if TYPE_CHECKING:
    from bench.harness import Bench
    from bench.world import BenchSandbox, Home

# A typical organisation (issue 25): 200 suppliers and the sandbox's 64 accounts; a few of them
# side by side (two in the smoke plan). Constants, not plan fields: earlier results stay
# mergeable (`python -m bench --only bill --merge …`).
SUPPLIERS_PER_ORG = 200
ORGS, SMOKE_ORGS = 3, 2
DAYS = 30
SUPPLIER_CHANGE_RATE = 0.01  # of suppliers, a day
ACCOUNT_CHANGES_PER_WEEK = 1.0
EVERYTHING = None  # every entity
SUPPLIERS = ["suppliers"]
SUPPLIERS_ACCOUNTS = ["suppliers", "accounts"]
API = "/api.xro/2.0/"
STEP = timedelta(minutes=2)  # the clock moves this much before each run: past the overlap
HOURLY_AGE = timedelta(minutes=31)  # an hour later: every access token is past its 30 minutes

# Issue 25's targets, in decimal units as Xero's egress allowance and `egress_allowance_gb` are
# (the stricter reading: 2 KB = 2,000 bytes).
TARGET_NO_CHANGE_BYTES = 2_000
TARGET_NO_CHANGE_CALLS = 4
TARGET_MONTH_BYTES = 3_000_000

# Runs a day of each kind, per schedule: (label, {run kind: runs a day}, token refreshes a day
# per grant with 30-minute access tokens).
SCHEDULES: tuple[tuple[str, str, dict[str, int], int], ...] = (
    ("hourly", "(i) hourly, every entity each run (a plain hourly cron today)",
     {"everything": 24}, 24),
    ("hourly_daily_reference", "(i) hourly, with tax rates and tracking categories daily",
     {"everything": 1, "suppliers_accounts": 23}, 24),
    ("quarter_hour", "(ii) suppliers every 15 minutes, accounts hourly, tax rates and "
     "tracking categories daily", {"everything": 1, "suppliers_accounts": 23, "suppliers": 72},
     48),
)


def bill(bench: Bench) -> None:
    """Scenario "bill": each kind of run measured, then a month per schedule."""
    orgs, suppliers = (SMOKE_ORGS if bench.plan.smoke else ORGS), SUPPLIERS_PER_ORG
    bench.say(f"scenario bill: {orgs} organisations x {suppliers} suppliers, gzip on")
    sb = bench.sandbox(tenants=orgs, suppliers=suppliers, rate_limits=False)
    try:
        settings = sb.handle.settings(compress=True)
        tenants = sb.tenant_ids()
        home = bench.home(sb, "bill")
        runs: dict[str, dict[str, Any]] = {}

        def run(name: str, entities: list[str] | None, *, reconcile: bool = False,
                hour_later: bool = False) -> None:
            if hour_later:
                home.expire_access_tokens(HOURLY_AGE)
                sb.handle.advance(HOURLY_AGE.total_seconds())
            else:
                sb.handle.advance(STEP.total_seconds())
            load = bench.load(sb, home, f"bill-{name}", entities=entities, reconcile=reconcile)
            runs[name] = _figures(sb, load, tenants, entities)

        first = bench.load(sb, home, "bill-first-load")
        runs["first"] = _figures(sb, first, tenants, EVERYTHING)
        run("everything", EVERYTHING, hour_later=True)
        run("suppliers", SUPPLIERS)
        run("suppliers_accounts", SUPPLIERS_ACCOUNTS)
        _change_suppliers(sb, home, tenants)
        _change_accounts(sb, home, tenants)
        run("changed", SUPPLIERS_ACCOUNTS)
        run("reconcile", SUPPLIERS_ACCOUNTS, reconcile=True)
        figures: dict[str, Any] = {
            "sandbox": sb.describe(), "orgs": orgs, "suppliers": suppliers,
            "accounts": _accounts(sb, tenants), "compress": settings.get("compress"),
            "runs": runs,
        }
        figures["months"] = {key: month(runs, per_day, tokens, suppliers)
                             for key, _, per_day, tokens in SCHEDULES}
        bench.results["bill"] = figures
    finally:
        sb.stop()


def _figures(sb: BenchSandbox, load: LoadFigures, tenants: list[str],
             entities: list[str] | None) -> dict[str, Any]:
    """One run per organisation (the mean over the organisations) and per grant."""
    stats = sb.handle.stats()
    by_tenant = stats.get("by_tenant") or {}
    per_org = [by_tenant.get(t, {}) for t in tenants]
    bytes_each = [int(t.get("bytes_out", 0)) for t in per_org]
    calls_each = [int(t.get("total", 0)) for t in per_org]
    by_path = stats.get("by_path") or {}
    endpoints = {path.removeprefix(API): item for path, item in by_path.items()
                 if path.startswith(API)}
    token = by_path.get("/connect/token", {})
    connections = {k: v for k, v in by_path.items() if k.startswith("/connections")}
    return {
        "entities": entities or "all",
        "bytes_per_org": sum(bytes_each) / len(tenants),
        "bytes_per_org_max": max(bytes_each),
        "calls_per_org": sum(calls_each) / len(tenants),
        "calls_per_org_max": max(calls_each),
        "by_endpoint": load.calls["by_endpoint"],
        "endpoint_bytes_per_org": {k: int(v.get("bytes_out", 0)) / len(tenants)
                                   for k, v in endpoints.items()},
        "endpoint_calls_per_org": {k: int(v.get("total", 0)) / len(tenants)
                                   for k, v in endpoints.items()},
        "token_calls": int(token.get("total", 0)),
        "token_bytes": int(token.get("bytes_out", 0)),
        "connections_calls": sum(int(v.get("total", 0)) for v in connections.values()),
        "connections_bytes": sum(int(v.get("bytes_out", 0)) for v in connections.values()),
        "outcome": load.outcome, "wall_s": load.wall_s, "records": load.records,
        "load": asdict(load),
    }


def _change_suppliers(sb: BenchSandbox, home: Home, tenants: list[str]) -> None:
    """One supplier per organisation edited (its UpdatedDateUTC moves), as a user would."""
    for tenant, contact_id in _loaded_ids(home, "suppliers", "contact_id", tenants).items():
        sb.handle.mutate(tenant_id=tenant, entity="contacts", op="update", id=contact_id,
                         fields={"Website": "https://bill.example.test"}, touch_updated=True)


def _change_accounts(sb: BenchSandbox, home: Home, tenants: list[str]) -> None:
    """One account per organisation edited (its UpdatedDateUTC moves)."""
    for tenant, account_id in _loaded_ids(home, "accounts", "account_id", tenants).items():
        sb.handle.mutate(tenant_id=tenant, entity="accounts", op="update", id=account_id,
                         fields={"Description": "Changed for the bill scenario"},
                         touch_updated=True)


def _loaded_ids(home: Home, table: str, key: str, tenants: list[str]) -> dict[str, str]:
    """One loaded record's id per organisation (the first by id), from the run's DuckDB file."""
    import duckdb

    con = duckdb.connect(str(home.path.parent / "xero_elt.duckdb"), read_only=True)
    try:
        query = f"select min({key}) from xero.{table} where tenant_id = ?"  # noqa: S608
        return {t: str(con.execute(query, [t]).fetchone()[0]) for t in tenants}
    finally:
        con.close()


def _accounts(sb: BenchSandbox, tenants: list[str]) -> int:
    counts = {t["tenantId"]: t["counts"]["accounts"] for t in sb.handle.tenants()}
    return round(sum(counts[t] for t in tenants) / len(tenants))


def month(runs: dict[str, dict[str, Any]], per_day: dict[str, int], tokens_per_day: int,
          suppliers: int) -> dict[str, Any]:
    """Bytes and calls per organisation in ``DAYS`` days of a schedule, from measured runs.

    The no-change runs of each kind the schedule makes, plus per change what it cost on its
    endpoint (Contacts, Accounts) in the changed run over the same run without it (1% of
    suppliers a day, one account a week; each change met by one run), plus the daily reads
    (the ``--reconcile`` run's extra over the same run without it). Token refreshes are per
    grant (one per organisation when each connects its own).
    """
    def extra(changed: str, plain: str, key: str) -> float:
        return max(0.0, runs[changed][key] - runs[plain][key])

    def change(endpoint: str, key: str) -> float:
        """What one change read through ``endpoint`` cost: the changed run over the plain one."""
        after = runs["changed"][f"endpoint_{key}_per_org"].get(endpoint, 0.0)
        before = runs["suppliers_accounts"][f"endpoint_{key}_per_org"].get(endpoint, 0.0)
        return max(0.0, after - before)

    supplier_changes = suppliers * SUPPLIER_CHANGE_RATE * DAYS
    account_changes = ACCOUNT_CHANGES_PER_WEEK * DAYS / 7
    parts: dict[str, dict[str, float]] = {}
    for kind, count in per_day.items():
        parts[f"{kind} runs, no change"] = {
            "count": count * DAYS, "bytes": count * DAYS * runs[kind]["bytes_per_org"],
            "calls": count * DAYS * runs[kind]["calls_per_org"]}
    parts["supplier changes"] = {
        "count": supplier_changes, "bytes": supplier_changes * change("Contacts", "bytes"),
        "calls": supplier_changes * change("Contacts", "calls")}
    parts["account changes"] = {
        "count": account_changes, "bytes": account_changes * change("Accounts", "bytes"),
        "calls": account_changes * change("Accounts", "calls")}
    parts["daily reads (reconciliation, whole chart)"] = {
        "count": DAYS, "bytes": DAYS * extra("reconcile", "suppliers_accounts", "bytes_per_org"),
        "calls": DAYS * extra("reconcile", "suppliers_accounts", "calls_per_org")}
    refresh = runs["everything"]
    token_bytes = refresh["token_bytes"] / refresh["token_calls"] if refresh["token_calls"] \
        else None
    return {
        "runs": sum(per_day.values()) * DAYS,
        "bytes": sum(p["bytes"] for p in parts.values()),
        "calls": sum(p["calls"] for p in parts.values()),
        "parts": parts,
        "token_calls": tokens_per_day * DAYS,
        "token_bytes": token_bytes * tokens_per_day * DAYS if token_bytes else None,
    }


# --- the report -----------------------------------------------------------------------------------

def _kb(value: float | None) -> str:
    return "–" if value is None else f"{value / 1e3:,.1f} KB"


def _mb(value: float | None) -> str:
    return "–" if value is None else f"{value / 1e6:,.2f} MB"


def _calls(value: float) -> str:
    return f"{value:,.1f}".removesuffix(".0")


def verdicts(results: dict[str, Any]) -> list[list[str]]:
    """Rows of the targets table: issue 25's no-change run and 15-minute month."""
    bill_figures = results.get("bill")
    if not bill_figures:
        return []
    everything = bill_figures["runs"]["everything"]
    size = f"{bill_figures['suppliers']} suppliers, {bill_figures['accounts']} accounts"
    rows = []
    met_bytes = everything["bytes_per_org"] <= TARGET_NO_CHANGE_BYTES
    met_calls = everything["calls_per_org"] <= TARGET_NO_CHANGE_CALLS
    rows.append([
        f"no-change run of every entity ({size}): at most 2 KB received (gzip) and "
        f"{TARGET_NO_CHANGE_CALLS} calls (issue 25)",
        f"{_kb(everything['bytes_per_org'])}, {_calls(everything['calls_per_org'])} calls",
        ("**met**" if met_bytes and met_calls else "**missed**")
        + ("" if met_bytes else
           f" by {everything['bytes_per_org'] / TARGET_NO_CHANGE_BYTES:.1f}× in bytes")
        + ("" if met_calls else " and in calls"),
    ])
    quarter = bill_figures["months"]["quarter_hour"]
    met = quarter["bytes"] <= TARGET_MONTH_BYTES
    rows.append([
        "15-minute supplier freshness, hourly accounts, daily reference tables: at most 3 MB "
        "per organisation per month (issue 25)",
        f"{_mb(quarter['bytes'])}, {quarter['calls']:,.0f} API calls",
        "**met**" if met else f"**missed** by {quarter['bytes'] / TARGET_MONTH_BYTES:.1f}×",
    ])
    return rows


def render(results: dict[str, Any]) -> str:
    """The scenario's section of docs/benchmarks.md."""
    bill_figures = results.get("bill")
    if not bill_figures:
        return ""
    runs = bill_figures["runs"]
    labels = (
        ("first", "first load (every entity; not in the month)"),
        ("everything", "every entity, no change (an hour on: token refreshed)"),
        ("suppliers", "suppliers only, no change"),
        ("suppliers_accounts", "suppliers + accounts, no change"),
        ("changed", "suppliers + accounts, one supplier and one account changed"),
        ("reconcile", "suppliers + accounts, the daily reads (`--reconcile`)"),
    )
    rows = [[label, _kb(runs[key]["bytes_per_org"]), _calls(runs[key]["calls_per_org"]),
             ", ".join(f"{k} {_kb(v)}" for k, v in
                       sorted(runs[key]["endpoint_bytes_per_org"].items())),
             f"{runs[key]['token_calls']} + {runs[key]['connections_calls']}"]
            for key, label in labels if key in runs]
    lines = [
        f"## The bill: {bill_figures['orgs']} organisations of {bill_figures['suppliers']} "
        f"suppliers and {bill_figures['accounts']} accounts, gzip on",
        "",
        "What each kind of run a schedule produces costs one organisation: response bytes as "
        "sent (gzip) and Accounting API calls, the mean over the organisations (the sandbox's "
        "own counters), and by endpoint; token and "
        "`/connections` calls are the grant's (one grant for all organisations here). Each run "
        "is `xero-elt run --entities …` (`pipelines.run.execute`), whatever the product reads "
        "for it today; the sandbox clock moves 2 minutes before each (past the supplier "
        "cursor's 60 s overlap), an hour before the first no-change run.",
        "",
        _table(["run", "bytes / org", "API calls / org", "bytes / org by endpoint",
                "token + connections calls"], rows),
        "",
        f"A month ({DAYS} days) per organisation, composed from those runs: each schedule's "
        "no-change runs, plus what one change cost (the changed run's bytes and calls on its "
        "endpoint over the same run without it), times "
        f"the changes ({SUPPLIER_CHANGE_RATE:.0%} of suppliers a day = "
        f"{bill_figures['suppliers'] * SUPPLIER_CHANGE_RATE * DAYS:,.0f} supplier changes, "
        f"{ACCOUNT_CHANGES_PER_WEEK:.0f} account a week = {ACCOUNT_CHANGES_PER_WEEK * DAYS / 7:.1f}"
        " account changes, each met by one run), plus the daily reads once a day: the supplier "
        "reconciliation and, where accounts are read incrementally, their whole chart (the "
        "`--reconcile` run's extra over the same run without it). Token refreshes are per "
        "grant (one per organisation when each connects its own), 30-minute access tokens, "
        "not counted in the organisation's bytes.",
        "",
    ]
    month_rows = []
    for key, label, per_day, _ in SCHEDULES:
        m = bill_figures["months"][key]
        composed = " + ".join(f"{count}×{kind}" for kind, count in per_day.items())
        month_rows.append([label, f"{m['runs']:,} ({composed} a day)", _mb(m["bytes"]),
                           f"{m['calls']:,.0f}", f"{m['token_calls']:,}"
                           + (f" ({_mb(m['token_bytes'])})" if m["token_bytes"] else "")])
    lines += [_table(["schedule", "runs a month", "bytes / org / month",
                      "API calls / org / month", "token refreshes / grant / month"],
                     month_rows), ""]
    quarter = bill_figures["months"]["quarter_hour"]
    lines.append("Where the 15-minute month goes: " + "; ".join(
        f"{name} {_mb(part['bytes'])}" for name, part in quarter["parts"].items()) + ".")
    lines.append("")
    lines.append(
        f"Issue 25's targets: a no-change run of every entity at most 2 KB and "
        f"{TARGET_NO_CHANGE_CALLS} calls (measured {_kb(runs['everything']['bytes_per_org'])}, "
        f"{_calls(runs['everything']['calls_per_org'])} calls); 15-minute freshness at most "
        f"3 MB per organisation per month (composed {_mb(quarter['bytes'])}).")
    return "\n".join(lines) + "\n"


def _table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(out)
