"""Bytes received from Xero: counted per organisation and entity in `sync_runs` (as sent and
decoded), per organisation and day in the store, and shown by `xero-elt status` for the last 30
days and the month against `[pipelines] egress_allowance_gb`."""


from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from pipelines.status import collect
from sandbox.handle import SandboxHandle
from store.egress import figures
from tests.pipelines.conftest import Warehouse


def test_a_run_counts_what_xero_sent_per_organisation_and_entity(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle,
) -> None:
    w = duckdb_warehouse
    sandbox.clear_requests()
    report = w.run_ok()
    sent = sandbox.stats()["by_tenant"]
    for org in report.summary["organisations"]:
        tenant = org["tenant_id"]
        rows = w.query("SELECT entity, bytes_received, bytes_decoded FROM {ds}.sync_runs "
                       "WHERE tenant_id = %s AND run_id = %s", tenant, report.summary["run_id"])
        assert {entity for entity, _, _ in rows} >= {"suppliers", "accounts", "tax_rates"}
        received = sum(r for _, r, _ in rows)
        # What the sandbox put on the wire for this organisation, byte for byte.
        assert received == sent[tenant]["bytes_out"] > 0
        assert org["bytes_received"] == received
        # Gzip on: the decoded answers are larger than what crossed the wire.
        assert sum(d for _, _, d in rows) > received
    # The store keeps the day's count, for status and the admin page.
    today = datetime.now(UTC).date().isoformat()
    by_day = w.store.bytes_received_by_day(today)
    for org in report.summary["organisations"]:
        assert by_day[org["tenant_id"]][today] == org["bytes_received"]


def test_status_shows_30_days_a_projection_and_the_allowance(
    duckdb_warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = duckdb_warehouse
    report = w.run_ok()
    received = sum(o["bytes_received"] for o in report.summary["organisations"])
    doc = collect(w.store)
    assert doc["egress_total"]["bytes_30_days"] == received
    assert "allowance_bytes" not in doc["egress_total"]
    assert not [x for x in doc["warnings"] if "egress" in x]
    # An allowance the month's projection nearly fills: a warning that says how much.
    monkeypatch.setenv("PIPELINES__EGRESS_ALLOWANCE_GB",
                       str(doc["egress_total"]["bytes_month_projected"] / 0.9 / 1e9))
    doc = collect(w.store)
    assert doc["egress_total"]["allowance_bytes"] > 0
    assert [x for x in doc["warnings"] if x.startswith("Xero egress:") and "90%" in x]


def test_the_projection_is_the_month_so_far_plus_the_daily_average_for_the_days_left() -> None:
    today = date(2026, 12, 10)  # 21 days left in December
    by_day = {"2026-11-30": 1_000, "2026-12-01": 1_000, "2026-12-10": 1_000,
              "2026-11-01": 99_999}  # outside the 30 days
    found = figures(by_day, today)
    assert found["bytes_30_days"] == 3_000
    # 2,000 so far this month; 3,000 over the 11 days since the first one, for 21 days more.
    assert found["bytes_month_projected"] == 2_000 + 3_000 * 21 // 11
    assert figures({}, today) == {"bytes_30_days": 0, "bytes_month_projected": 0}


def test_a_usage_file_from_before_bytes_gains_them_and_keeps_its_calls(tmp_path: Path) -> None:
    import sqlite3

    from connector.usage import DailyUsage, today

    with sqlite3.connect(tmp_path / "usage.sqlite3") as db:
        db.execute("CREATE TABLE api_usage (tenant_id TEXT NOT NULL, day TEXT NOT NULL, "
                   "calls INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (tenant_id, day))")
        db.execute("INSERT INTO api_usage VALUES ('t1', ?, 7)", (today(),))
    usage = DailyUsage(tmp_path)
    usage.record_bytes("t1", 1_234)
    usage.record("t1")
    usage.close()
    with sqlite3.connect(tmp_path / "usage.sqlite3") as db:
        assert db.execute("SELECT calls, bytes_received FROM api_usage").fetchall() == [
            (8, 1_234)]
