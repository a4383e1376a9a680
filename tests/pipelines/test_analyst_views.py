"""The analyst views in DuckDB: current state after changes at Xero, with and without history,
skipped while their tables are missing, and with the columns they declare."""
# ruff: noqa: S608 - SQL built from this file's own table and column names

from __future__ import annotations

from pathlib import Path
from typing import Any

import dlt
import pytest

from pipelines.analyst import VIEWS, create_views
from sandbox.handle import SandboxHandle
from tests.pipelines.conftest import Warehouse

ALL_VIEWS = [view.name for view in VIEWS]


# Full loads into a warehouse: `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow


def _one(warehouse: Warehouse, sql: str, *args: Any) -> Any:
    rows = warehouse.query(sql, *args)
    assert len(rows) == 1, rows
    return rows[0][0] if len(rows[0]) == 1 else rows[0]


def test_views_show_the_current_state_after_changes_at_xero(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = duckdb_warehouse
    report = w.run_ok()
    assert w.tables() >= set(ALL_VIEWS)
    names = {t["tenantId"]: t["name"] for t in sandbox.tenants()}
    tenant = next(iter(names))

    # Every organisation's rows carry its name; no view duplicates a row through the join.
    assert dict(w.query("SELECT tenant_id, organisation_name FROM {ds}.organisations")) == names
    for view, key in (("active_suppliers", "contact_id"), ("chart_of_accounts", "account_id"),
                      ("tracking_options_current", "tracking_option_id"),
                      ("tax_rates_current", "tax_type")):
        rows = w.query(f"SELECT tenant_id, organisation_name, {key} FROM {{ds}}.{view}")
        assert rows, view
        assert {(t, n) for t, n, _ in rows} <= set(names.items()), view
        assert len({(t, k) for t, _, k in rows}) == len(rows), f"{view} repeats a row"
    active = _one(w, "SELECT count(*) FROM {ds}.suppliers WHERE contact_status = 'ACTIVE'")
    assert _one(w, "SELECT count(*) FROM {ds}.active_suppliers") == active
    assert _one(w, "SELECT count(*) FROM {ds}.chart_of_accounts") == _one(
        w, "SELECT count(*) FROM {ds}.accounts")
    assert {r[0] for r in w.query("SELECT entity FROM {ds}.sync_freshness")} == {
        "suppliers", "accounts", "tax_rates", "tracking_categories", "tracking_options"}
    assert report.summary["organisations"]

    supplier = _one(w, "SELECT contact_id FROM {ds}.active_suppliers WHERE tenant_id = %s "
                       "ORDER BY contact_id LIMIT 1", tenant)
    account = _one(w, "SELECT account_id FROM {ds}.chart_of_accounts WHERE tenant_id = %s "
                      "AND code = '404'", tenant)
    option = _one(w, "SELECT tracking_option_id FROM {ds}.tracking_options_current "
                     "WHERE tenant_id = %s AND option_name = 'North'", tenant)
    category = _one(w, "SELECT tracking_category_id FROM {ds}.tracking_options_current "
                       "WHERE tenant_id = %s AND option_name = 'North'", tenant)
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="archive", id=supplier)
    sandbox.mutate(tenant_id=tenant, entity="accounts", op="delete", id=account)
    sandbox.mutate(tenant_id=tenant, entity="tracking_options", op="delete", id=option)
    sandbox.mutate(tenant_id=tenant, entity="tax_rates", op="delete", id="TAX002")
    sandbox.mutate(tenant_id=tenant, entity="tracking_categories", op="archive", id=category)
    # The whole chart of accounts is due (only it shows a deleted account).
    monkeypatch.setenv("SOURCES__XERO__ACCOUNTS_SNAPSHOT_HOURS", "0")
    w.run_ok()

    assert not w.query("SELECT 1 FROM {ds}.active_suppliers WHERE contact_id = %s", supplier)
    assert _one(w, "SELECT count(*) FROM {ds}.active_suppliers") == active - 1
    # Deleted at Xero: kept in the table, marked, and gone from the view.
    assert _one(w, "SELECT is_deleted FROM {ds}.accounts WHERE account_id = %s", account) is True
    assert not w.query("SELECT 1 FROM {ds}.chart_of_accounts WHERE account_id = %s", account)
    assert not w.query("SELECT 1 FROM {ds}.tracking_options_current "
                       "WHERE tracking_option_id = %s", option)
    assert not w.query("SELECT 1 FROM {ds}.tax_rates_current WHERE tenant_id = %s "
                       "AND tax_type = 'TAX002'", tenant)
    assert w.query("SELECT 1 FROM {ds}.tax_rates_current WHERE tax_type = 'TAX002'"), \
        "the other organisation's TAX002 is still there"
    # The archived category's options stay listed, but none is active any more.
    statuses = w.query("SELECT category_status, is_active FROM {ds}.tracking_options_current "
                       "WHERE tracking_category_id = %s", category)
    assert statuses
    assert all(s == ("ARCHIVED", False) for s in statuses)
    assert {r[0] for r in w.query("SELECT runs_ok FROM {ds}.sync_freshness")} == {2}


def test_tax_rates_view_adds_up_the_components(duckdb_warehouse: Warehouse) -> None:
    w = duckdb_warehouse
    w.run_ok(entities=["tax_rates"])
    rows = w.query(
        "SELECT tax_type, component_rate_total, component_count, has_compound_component, "
        "effective_rate FROM {ds}.tax_rates_current")
    assert rows
    assert any(compound for *_, compound, _ in rows), "the seed has a compound rate"
    for tax_type, total, count, compound, effective in rows:
        assert count >= 1, tax_type
        if compound:  # applied on top of the simple components
            assert effective > total, tax_type
        else:
            assert effective == total, tax_type


def test_views_with_history_on_show_one_current_row(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__XERO__HISTORY", "all")
    w = duckdb_warehouse
    w.run_ok()
    tenant = sandbox.tenant_ids()[0]
    account = _one(w, "SELECT account_id FROM {ds}.chart_of_accounts WHERE tenant_id = %s "
                      "AND code = '400'", tenant)
    option = _one(w, "SELECT tracking_option_id FROM {ds}.tracking_options_current "
                     "WHERE tenant_id = %s AND option_name = 'North'", tenant)
    sandbox.mutate(tenant_id=tenant, entity="accounts", op="update", id=account,
                   fields={"Name": "Marketing & Advertising"})
    sandbox.mutate(tenant_id=tenant, entity="tracking_options", op="delete", id=option)
    w.run_ok()

    versions = w.query("SELECT name, _dlt_valid_to IS NULL FROM {ds}.accounts "
                       "WHERE account_id = %s ORDER BY _dlt_valid_from", account)
    assert versions == [("Advertising", False), ("Marketing & Advertising", True)]
    assert _one(w, "SELECT name FROM {ds}.chart_of_accounts WHERE account_id = %s",
                account) == "Marketing & Advertising"
    for view, key in (("chart_of_accounts", "account_id"), ("active_suppliers", "contact_id"),
                      ("tax_rates_current", "tax_type")):
        counts = w.query(
            f"SELECT count(*), count(DISTINCT tenant_id || {key}) FROM {{ds}}.{view}")
        assert counts[0][0] == counts[0][1], f"{view} shows more than one version"
    assert _one(w, "SELECT count(*) FROM {ds}.tracking_options WHERE tracking_option_id = %s "
                   "AND _dlt_valid_to IS NULL AND is_deleted", option) == 1
    assert not w.query("SELECT 1 FROM {ds}.tracking_options_current "
                       "WHERE tracking_option_id = %s", option)


def test_a_view_waits_for_its_tables(duckdb_warehouse: Warehouse) -> None:
    w = duckdb_warehouse
    w.run_ok(entities=["accounts"])
    present = w.tables()
    assert {"organisations", "chart_of_accounts", "sync_freshness"} <= present
    assert not present & {"active_suppliers", "tracking_options_current", "tax_rates_current"}
    w.run_ok()
    assert set(ALL_VIEWS) <= w.tables()


def _load_rows(tmp_path: Path, tables: dict[str, list[dict[str, Any]]]) -> Any:
    """A pipeline into a fresh DuckDB file with the given rows (no Xero involved)."""
    pipeline = dlt.pipeline(
        pipeline_name="views_unit", destination=dlt.destinations.duckdb(
            str(tmp_path / "unit.duckdb")),
        dataset_name="xero", pipelines_dir=str(tmp_path / "pipelines"))
    for name, rows in tables.items():
        pipeline.run(rows, table_name=name, write_disposition="append")
    return pipeline


def test_views_of_a_sparse_load_have_every_column(tmp_path: Path, tmp_home: Path) -> None:
    # An accounts table without most of Xero's fields, and no connections table yet.
    pipeline = _load_rows(tmp_path, {"accounts": [
        {"tenant_id": "t1", "account_id": "a1", "name": "Sales", "status": "ACTIVE"},
        {"tenant_id": "t1", "account_id": "a2", "name": "Old", "status": "DELETED"},
    ]})
    assert create_views(pipeline) == ["chart_of_accounts"]
    with pipeline.sql_client() as client:
        rows = client.execute_sql("SELECT * FROM xero.chart_of_accounts")
        columns = [c[0] for c in client.execute_sql(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'xero' "
            "AND table_name = 'chart_of_accounts' ORDER BY ordinal_position")]
    view = next(v for v in VIEWS if v.name == "chart_of_accounts")
    assert columns == [c.name for c in view.columns]
    assert len(rows) == 1
    assert rows[0][columns.index("name")] == "Sales"
    assert rows[0][columns.index("organisation_name")] is None
    assert rows[0][columns.index("code")] is None


def test_organisation_name_comes_from_the_connected_record(
    tmp_path: Path, tmp_home: Path
) -> None:
    pipeline = _load_rows(tmp_path, {
        "accounts": [{"tenant_id": "t1", "account_id": "a1", "name": "Sales"}],
        "connections": [
            {"connection_id": "c1", "tenant_id": "t1", "organisation_name": "Old name",
             "status": "disconnected"},
            {"connection_id": "c2", "tenant_id": "t1", "organisation_name": "Acme Ltd",
             "status": "connected"},
            {"connection_id": "c3", "tenant_id": None, "organisation_name": None,
             "status": "invited"},
        ],
    })
    assert create_views(pipeline) == ["organisations", "chart_of_accounts"]
    with pipeline.sql_client() as client:
        assert client.execute_sql(
            "SELECT organisation_name FROM xero.chart_of_accounts") == [("Acme Ltd",)]
        assert client.execute_sql(
            "SELECT tenant_id, connection_id FROM xero.organisations") == [("t1", "c2")]


def test_no_views_without_a_dataset(tmp_path: Path, tmp_home: Path) -> None:
    pipeline = dlt.pipeline(
        pipeline_name="views_empty", destination=dlt.destinations.duckdb(
            str(tmp_path / "empty.duckdb")),
        dataset_name="xero", pipelines_dir=str(tmp_path / "pipelines"))
    assert create_views(pipeline) == []


def test_every_view_has_the_columns_it_declares(duckdb_warehouse: Warehouse) -> None:
    w = duckdb_warehouse
    w.run_ok()
    for view in VIEWS:
        rows = w.query(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
            "AND table_name = %s ORDER BY ordinal_position", w.dataset, view.name)
        assert [r[0] for r in rows] == [c.name for c in view.columns], view.name
