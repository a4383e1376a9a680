"""Clean tables: what the connector loads, checked column by column on a demo-like load —
snake_case names, `tenant_id` on every Xero row, exact decimals for money and rates, timestamps
as UTC instants (never text), and deletions marked where the dictionary says they are."""

from __future__ import annotations

import re
from typing import Any

import duckdb

from connector.memory import MEMORY_TABLE
from sandbox.handle import SandboxHandle
from tests.pipelines.conftest import Warehouse
from tools.dictionary import loaded_columns
from tools.reference_load import ReferenceLoad

SNAKE = re.compile(r"^[a-z_][a-z0-9_]*$")
OURS = {"sync_runs", "connections"}  # written by xero-elt, not read from Xero
MONEY_AND_RATES = {
    "suppliers": ["discount", "balances__accounts_payable__outstanding",
                  "balances__accounts_payable__overdue",
                  "balances__accounts_receivable__outstanding",
                  "balances__accounts_receivable__overdue"],
    "tax_rates": ["display_tax_rate", "effective_rate"],
    "tax_rates__tax_components": ["rate"],
}
# A /Date(...)/ or ISO 8601 instant left as text would mean a timestamp was not parsed.
DATE_TEXT = re.compile(r"^/Date\(|^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _columns(reference: ReferenceLoad) -> dict[str, dict[str, dict[str, Any]]]:
    return loaded_columns(reference.schema)


def test_names_are_snake_case(reference: ReferenceLoad) -> None:
    for table, columns in _columns(reference).items():
        assert SNAKE.match(table), table
        bad = [c for c in columns if not SNAKE.match(c)]
        assert not bad, f"{table}: {bad}"


def test_every_xero_row_carries_its_tenant(reference: ReferenceLoad) -> None:
    columns = _columns(reference)
    with duckdb.connect(str(reference.duckdb_path), read_only=True) as db:
        for table in sorted(set(columns) - OURS):
            assert "tenant_id" in columns[table], table
            missing = db.execute(
                f'SELECT count(*) FROM xero."{table}" WHERE tenant_id IS NULL'  # noqa: S608
            ).fetchone()
            assert missing == (0,), table
            # (the memory table is a log of appended rows: it has no key)
            if not reference.schema.tables[table].get("parent") and table != MEMORY_TABLE:
                key = [c for c, v in columns[table].items() if v.get("primary_key")]
                assert key[0] == "tenant_id", f"{table}: key {key}"


def test_money_and_rates_are_exact_decimals(reference: ReferenceLoad) -> None:
    columns = _columns(reference)
    for table, names in MONEY_AND_RATES.items():
        for name in names:
            assert columns[table][name]["data_type"] == "decimal", f"{table}.{name}"
    floats = [f"{t}.{c}" for t, cols in columns.items() for c, v in cols.items()
              if v["data_type"] == "double"]
    assert not floats, f"binary floats where exact numbers belong: {floats}"


def test_timestamps_are_utc_instants_not_text(reference: ReferenceLoad) -> None:
    columns = _columns(reference)
    for table, cols in columns.items():
        for name, column in cols.items():
            if name.endswith(("_utc", "_at")):
                assert column["data_type"] == "timestamp", f"{table}.{name}"
                assert column.get("timezone", True) is not False, f"{table}.{name}"
    with duckdb.connect(str(reference.duckdb_path), read_only=True) as db:
        types = db.execute(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'xero' AND table_name IN (SELECT table_name FROM "
            "information_schema.tables WHERE table_schema = 'xero' AND table_type = "
            "'BASE TABLE')").fetchall()
        for table, name, kind in types:
            if table.startswith("_dlt") or name.startswith("_dlt"):
                continue
            if name.endswith(("_utc", "_at")):
                assert kind == "TIMESTAMP WITH TIME ZONE", f"{table}.{name}: {kind}"
            if kind != "VARCHAR":
                continue
            values = db.execute(
                f'SELECT DISTINCT "{name}" FROM xero."{table}" '  # noqa: S608
                f'WHERE "{name}" IS NOT NULL LIMIT 500').fetchall()
            dates = [v for (v,) in values if DATE_TEXT.match(v)]
            assert not dates, f"{table}.{name} holds dates as text: {dates[:3]}"


def test_deleted_rows_keep_their_last_values(reference: ReferenceLoad) -> None:
    with duckdb.connect(str(reference.duckdb_path), read_only=True) as db:
        rows = db.execute(
            "SELECT code, name, updated_date_utc, deleted_at FROM xero.accounts "
            "WHERE is_deleted").fetchall()
        assert len(rows) == 1
        code, name, updated, deleted_at = rows[0]
        assert code
        assert name
        assert updated is not None
        assert deleted_at is not None
        assert deleted_at.utcoffset() is not None
        assert db.execute("SELECT count(*) FROM xero.tracking_options WHERE is_deleted"
                          ).fetchone() == (1,)


def test_an_option_xero_reports_deleted_is_marked_deleted(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle
) -> None:
    w = duckdb_warehouse
    w.run_ok(entities=["tracking_categories"])
    tenant = sandbox.tenant_ids()[0]
    option = w.query("SELECT tracking_option_id FROM {ds}.tracking_options WHERE tenant_id = %s "
                     "AND name = 'North'", tenant)[0][0]
    sandbox.mutate(tenant_id=tenant, entity="tracking_options", op="update", id=option,
                   fields={"Status": "DELETED"})
    w.run_ok(entities=["tracking_categories"])
    assert not w.query("SELECT 1 FROM {ds}.tracking_options_current "
                       "WHERE tracking_option_id = %s", option)  # this part holds today
    assert w.query("SELECT status, is_deleted FROM {ds}.tracking_options "
                   "WHERE tracking_option_id = %s", option) == [("DELETED", True)]
