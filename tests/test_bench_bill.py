"""The bill scenario's arithmetic (bench/bill_scenario.py): a month per schedule composed from
measured runs, and the report's verdicts against issue 25's targets. Pure: no sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from bench import bill_scenario
from bench.bill_scenario import DAYS, SCHEDULES, month, render, verdicts


def _run(bytes_per_org: float, calls: float, endpoints: dict[str, float],
         token_calls: int = 0, token_bytes: int = 0) -> dict[str, Any]:
    return {"bytes_per_org": bytes_per_org, "calls_per_org": calls,
            "endpoint_bytes_per_org": endpoints,
            "endpoint_calls_per_org": dict.fromkeys(endpoints, 1.0),
            "by_endpoint": dict.fromkeys(endpoints, 2), "token_calls": token_calls,
            "token_bytes": token_bytes, "connections_calls": 0}


RUNS = {
    "first": _run(50_000, 4, {"Contacts": 43_000, "Accounts": 6_000}),
    "everything": _run(8_000, 4, {"Contacts": 200, "Accounts": 6_400, "TaxRates": 600,
                                  "TrackingCategories": 800}, token_calls=1, token_bytes=1_700),
    "suppliers": _run(200, 1, {"Contacts": 200}),
    "suppliers_accounts": _run(6_600, 2, {"Contacts": 200, "Accounts": 6_400}),
    "changed": _run(7_400, 2, {"Contacts": 900, "Accounts": 6_500}),
    "reconcile": _run(11_400, 4, {"Contacts": 5_000, "Accounts": 6_400}),
}


def test_a_month_is_its_runs_plus_each_change_plus_a_daily_reconciliation() -> None:
    per_day = {"everything": 1, "suppliers_accounts": 23, "suppliers": 72}
    m = month(RUNS, per_day, tokens_per_day=48, suppliers=200)

    assert m["runs"] == 96 * DAYS
    no_change = DAYS * (8_000 + 23 * 6_600 + 72 * 200)
    supplier_changes = 200 * 0.01 * DAYS * (900 - 200)  # 60 changes, 700 bytes each
    account_changes = DAYS / 7 * (6_500 - 6_400)
    reconciliations = DAYS * (11_400 - 6_600)
    assert m["bytes"] == pytest.approx(no_change + supplier_changes + account_changes
                                       + reconciliations)
    assert m["calls"] == pytest.approx(DAYS * (4 + 23 * 2 + 72) + DAYS * 2)
    assert m["token_calls"] == 48 * DAYS
    assert m["token_bytes"] == pytest.approx(1_700 * 48 * DAYS)


def test_the_report_sets_the_figures_beside_issue_25s_targets() -> None:
    results = {"bill": {"sandbox": "", "orgs": 2, "suppliers": 200, "accounts": 64,
                        "compress": True, "runs": RUNS,
                        "months": {key: month(RUNS, per_day, tokens, 200)
                                   for key, _, per_day, tokens in SCHEDULES}}}

    rows = verdicts(results)
    assert [r[2].split()[0] for r in rows] == ["**missed**", "**missed**"]
    assert "8.0 KB, 4 calls" in rows[0][1]  # decimal units, as Xero meters
    text = render(results)
    assert "## The bill: 2 organisations of 200 suppliers and 64 accounts" in text
    for _, label, _, _ in SCHEDULES:
        assert label in text
    assert verdicts({}) == []
    assert render({}) == ""


def test_under_the_targets_the_verdicts_say_met() -> None:
    cheap = {key: {**run, "bytes_per_org": min(run["bytes_per_org"], 1_000)}
             for key, run in RUNS.items()}
    cheap["suppliers_accounts"] = {**cheap["suppliers_accounts"],
                                   "endpoint_bytes_per_org": {"Contacts": 200, "Accounts": 300}}
    cheap["changed"] = {**cheap["changed"],
                        "endpoint_bytes_per_org": {"Contacts": 900, "Accounts": 400}}
    months = {key: month(cheap, per_day, tokens, 200)
              for key, _, per_day, tokens in SCHEDULES}
    results = {"bill": {"suppliers": 200, "accounts": 64, "runs": cheap, "months": months}}
    assert months["quarter_hour"]["bytes"] <= bill_scenario.TARGET_MONTH_BYTES
    assert [r[2] for r in verdicts(results)] == ["**met**", "**met**"]
