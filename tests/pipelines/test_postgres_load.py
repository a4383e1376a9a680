"""PostgreSQL, for real: the scenarios DuckDB goes through, through `xero-elt run`'s `execute()`
against the sandbox — first load, incremental, deletes, schema evolution, two organisations,
history — with the views checked on PostgreSQL and compared with DuckDB where it is cheap."""
# ruff: noqa: S608 - SQL built from this file's own table and column names

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pipelines.analyst import drop_views
from sandbox.handle import SandboxHandle, make_grant
from store import open_store
from tests.connector.conftest import connect_tenants
from tests.pipelines.conftest import Warehouse, _datasets, needs_history, readme_queries

pytestmark = pytest.mark.postgres

# The current-state views, each with a key that orders its rows the same way everywhere.
VIEW_KEYS = {
    "active_suppliers": "contact_id",
    "chart_of_accounts": "account_id",
    "tracking_options_current": "tracking_option_id",
    "tax_rates_current": "tax_type",
}
# How PostgreSQL and DuckDB name the same dlt type in information_schema.
SAME_TYPE = {
    "character varying": "varchar",
    "numeric": "decimal(38,9)",
    "timestamp with time zone": "timestamp with time zone",
    "boolean": "boolean",
    "bigint": "bigint",
}


def _one(warehouse: Warehouse, sql: str, *args: Any) -> Any:
    rows = warehouse.query(sql, *args)
    assert len(rows) == 1, rows
    return rows[0][0] if len(rows[0]) == 1 else rows[0]


def _data_tables(warehouse: Warehouse) -> set[str]:
    rows = warehouse.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
        "AND table_type = 'BASE TABLE'", warehouse.dataset)
    return {str(name) for (name,) in rows if not str(name).startswith("_dlt")}


def _view_rows(warehouse: Warehouse, view: str) -> list[tuple[Any, ...]]:
    return warehouse.query(f"SELECT * FROM {{ds}}.{view} ORDER BY tenant_id, {VIEW_KEYS[view]}")


def test_first_load_matches_duckdb(
    postgres_warehouse: Warehouse, duckdb_warehouse: Warehouse
) -> None:
    pg, duck = postgres_warehouse, duckdb_warehouse
    pg.run_ok()
    duck.run_ok()

    tables = _data_tables(pg)
    assert tables == _data_tables(duck)
    assert {"suppliers", "accounts", "tax_rates", "tax_rates__tax_components",
            "tracking_categories", "tracking_options", "sync_runs", "connections"} <= tables
    pg_columns, duck_columns = pg.all_columns(), duck.all_columns()
    for table in sorted(tables):
        pg_types = {c: SAME_TYPE[t] for c, t in pg_columns[table].items()}
        assert pg_types == duck_columns[table], table
    loaded = sorted(tables - {"sync_runs", "connections"})  # these two differ by run
    assert pg.counts(loaded) == duck.counts(loaded)
    # Money and rates are exact decimals; Xero's times are instants.
    scale = pg.query(
        "SELECT numeric_precision, numeric_scale FROM information_schema.columns WHERE "
        "table_schema = %s AND table_name = 'tax_rates' AND column_name = 'effective_rate'",
        pg.dataset)
    assert scale == [(38, 9)]
    assert pg.columns("suppliers")["updated_date_utc"] == "timestamp with time zone"

    for view in VIEW_KEYS:
        rows = _view_rows(pg, view)
        assert rows, view
        assert rows == _view_rows(duck, view), view
    assert _one(pg, "SELECT count(*) FROM {ds}.organisations") == 2
    assert _one(pg, "SELECT count(*) FROM {ds}.sync_freshness WHERE last_outcome = 'ok'") == 10
    # The README's queries work on PostgreSQL too (only the dataset's name differs here).
    for sql in readme_queries():
        if needs_history(sql):
            continue
        mine = re.sub(r"\bxero\.", "{ds}.", sql)
        rows = pg.query(mine)
        if "sync_" in sql:  # times and counts of these two runs differ
            assert rows or "<> 'ok'" in sql, sql
        else:
            assert rows == duck.query(mine), sql


def test_incremental_load_picks_up_changes(
    postgres_warehouse: Warehouse, sandbox: SandboxHandle
) -> None:
    pg = postgres_warehouse
    pg.run_ok()
    tenant = sandbox.tenant_ids()[0]
    before = _one(pg, "SELECT count(*) FROM {ds}.suppliers WHERE tenant_id = %s", tenant)
    active = _one(pg, "SELECT count(*) FROM {ds}.active_suppliers WHERE tenant_id = %s", tenant)
    changed, archived = (r[0] for r in pg.query(
        "SELECT contact_id FROM {ds}.active_suppliers WHERE tenant_id = %s "
        "ORDER BY contact_id LIMIT 2", tenant))
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="update", id=changed,
                   fields={"EmailAddress": "ap@changed.example"})
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="archive", id=archived)
    created = sandbox.mutate(tenant_id=tenant, entity="contacts", op="create",
                             fields={"Name": "Harbour Freight Co", "IsSupplier": True})["id"]

    report = pg.run_ok()
    rows = {o["tenant_id"]: o["entities"]["suppliers"]["rows_loaded"]
            for o in report.summary["organisations"]}
    assert 3 <= rows[tenant] < 10, rows  # the changes (and the overlap), not a full reload
    assert _one(pg, "SELECT count(*) FROM {ds}.suppliers WHERE tenant_id = %s",
                tenant) == before + 1
    assert _one(pg, "SELECT email_address FROM {ds}.active_suppliers WHERE contact_id = %s",
                changed) == "ap@changed.example"
    assert _one(pg, "SELECT contact_status FROM {ds}.suppliers WHERE contact_id = %s",
                archived) == "ARCHIVED"
    assert _one(pg, "SELECT name FROM {ds}.active_suppliers WHERE contact_id = %s",
                created) == "Harbour Freight Co"
    assert _one(pg, "SELECT count(*) FROM {ds}.active_suppliers WHERE tenant_id = %s",
                tenant) == active  # one archived, one new
    assert _one(pg, "SELECT count(DISTINCT run_id) FROM {ds}.sync_runs") == 2
    assert _one(pg, "SELECT min(runs_ok) FROM {ds}.sync_freshness") == 2


def test_deletes_at_xero_are_marked(postgres_warehouse: Warehouse, sandbox: SandboxHandle,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    pg = postgres_warehouse
    pg.run_ok()
    tenant = sandbox.tenant_ids()[0]
    account = _one(pg, "SELECT account_id FROM {ds}.chart_of_accounts WHERE tenant_id = %s "
                       "AND code = '404'", tenant)
    option = _one(pg, "SELECT tracking_option_id FROM {ds}.tracking_options_current "
                      "WHERE tenant_id = %s AND option_name = 'North'", tenant)
    sandbox.mutate(tenant_id=tenant, entity="accounts", op="delete", id=account)
    sandbox.mutate(tenant_id=tenant, entity="tracking_options", op="delete", id=option)
    sandbox.mutate(tenant_id=tenant, entity="tax_rates", op="delete", id="TAX002")
    started = datetime.now(UTC)
    # The whole chart of accounts is due (only it shows a deleted account).
    monkeypatch.setenv("SOURCES__XERO__ACCOUNTS_SNAPSHOT_HOURS", "0")
    pg.run_ok()

    for table, key, value in (("accounts", "account_id", account),
                              ("tracking_options", "tracking_option_id", option)):
        deleted, deleted_at, name = _one(
            pg, f"SELECT is_deleted, deleted_at, name FROM {{ds}}.{table} WHERE {key} = %s",
            value)
        assert deleted is True, table
        assert name, f"{table}: a deleted row keeps its last values"
        assert started - timedelta(minutes=1) <= deleted_at <= datetime.now(UTC), table
    assert not pg.query("SELECT 1 FROM {ds}.chart_of_accounts WHERE account_id = %s", account)
    assert not pg.query("SELECT 1 FROM {ds}.tracking_options_current "
                        "WHERE tracking_option_id = %s", option)
    # Xero deletes tax rates by status: the row stays, the view leaves it out.
    assert _one(pg, "SELECT status FROM {ds}.tax_rates WHERE tenant_id = %s "
                    "AND tax_type = 'TAX002'", tenant) == "DELETED"
    assert not pg.query("SELECT 1 FROM {ds}.tax_rates_current WHERE tenant_id = %s "
                        "AND tax_type = 'TAX002'", tenant)
    # Nothing else was touched.
    assert _one(pg, "SELECT count(*) FROM {ds}.accounts WHERE is_deleted") == 1
    assert _one(pg, "SELECT count(*) FROM {ds}.tracking_options WHERE is_deleted") == 1


def test_a_new_field_at_xero_becomes_a_column(
    postgres_warehouse: Warehouse, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    pg = postgres_warehouse
    pg.run_ok()
    tenant = sandbox.tenant_ids()[0]
    sandbox.mutate(tenant_id=tenant, entity="accounts", op="add_field", field="BudgetCode",
                   value="B-17")
    sandbox.mutate(tenant_id=tenant, entity="accounts", op="add_field", field="CostRate",
                   value=12.5)
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="add_field",
                   field="LastReviewedDateUTC", value="/Date(1700000000000+0000)/")
    # Contacts only come back when they change; touch one so the new field arrives.
    supplier = _one(pg, "SELECT contact_id FROM {ds}.active_suppliers WHERE tenant_id = %s "
                        "ORDER BY contact_id LIMIT 1", tenant)
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="update", id=supplier,
                   fields={"Website": "https://example.test"})
    # Accounts too: a new field does not move UpdatedDateUTC; the next whole chart brings it.
    monkeypatch.setenv("SOURCES__XERO__ACCOUNTS_SNAPSHOT_HOURS", "0")
    pg.run_ok()

    columns = pg.columns("accounts")
    assert columns["budget_code"] == "character varying"
    assert columns["cost_rate"] == "numeric"
    assert pg.columns("suppliers")["last_reviewed_date_utc"] == "timestamp with time zone"
    assert _one(pg, "SELECT count(*) FROM {ds}.accounts WHERE tenant_id = %s "
                    "AND budget_code = 'B-17' AND cost_rate = 12.5", tenant) == _one(
        pg, "SELECT count(*) FROM {ds}.accounts WHERE tenant_id = %s", tenant)
    assert _one(pg, "SELECT last_reviewed_date_utc FROM {ds}.suppliers WHERE contact_id = %s",
                supplier) == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    # The views were recreated after the new columns and still answer.
    assert _one(pg, "SELECT count(*) FROM {ds}.chart_of_accounts WHERE tenant_id = %s",
                tenant) > 0


def test_two_organisations_connected_one_after_the_other(
    tmp_home: Path, sandbox: SandboxHandle, xero_app: dict[str, Any],
    xero_env: dict[str, str], postgres_env: str,
) -> None:
    first, second = sandbox.tenant_ids()[:2]
    names = {t["tenantId"]: t["name"] for t in sandbox.tenants()}
    store = open_store(tmp_home)
    connect_tenants(store, make_grant(sandbox, xero_app, tenant_ids=[first]), sandbox, [first])
    pg = Warehouse(store, "postgres", f"xero_t{next(_datasets)}_two")
    pg.run_ok()
    assert {r[0] for r in pg.query("SELECT DISTINCT tenant_id FROM {ds}.accounts")} == {first}
    first_rows = _one(pg, "SELECT count(*) FROM {ds}.suppliers")

    connect_tenants(store, make_grant(sandbox, xero_app, tenant_ids=[second]), sandbox, [second])
    report = pg.run_ok()
    assert {o["tenant_id"] for o in report.summary["organisations"]} == {first, second}
    per_org = dict(pg.query("SELECT tenant_id, count(*) FROM {ds}.suppliers GROUP BY tenant_id"))
    assert per_org[first] == first_rows
    assert per_org[second] > 0
    assert dict(pg.query("SELECT tenant_id, organisation_name FROM {ds}.organisations")) == {
        first: names[first], second: names[second]}
    for view in VIEW_KEYS:
        got = dict(pg.query(f"SELECT organisation_name, count(*) FROM {{ds}}.{view} "
                            "GROUP BY organisation_name"))
        assert set(got) == {names[first], names[second]}, view


def test_history_on_keeps_versions_like_duckdb(
    postgres_warehouse: Warehouse, duckdb_warehouse: Warehouse, sandbox: SandboxHandle,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SOURCES__XERO__HISTORY", "accounts,tracking_options")
    pg, duck = postgres_warehouse, duckdb_warehouse
    pg.run_ok()
    duck.run_ok()
    tenant = sandbox.tenant_ids()[0]
    account = _one(pg, "SELECT account_id FROM {ds}.chart_of_accounts WHERE tenant_id = %s "
                       "AND code = '400'", tenant)
    option = _one(pg, "SELECT tracking_option_id FROM {ds}.tracking_options_current "
                      "WHERE tenant_id = %s AND option_name = 'North'", tenant)
    sandbox.mutate(tenant_id=tenant, entity="accounts", op="update", id=account,
                   fields={"Name": "Marketing & Advertising"})
    sandbox.mutate(tenant_id=tenant, entity="tracking_options", op="delete", id=option)
    pg.run_ok()
    duck.run_ok()

    history = ("SELECT name, _dlt_valid_to IS NULL AS current FROM {ds}.accounts "
               "WHERE account_id = %s ORDER BY _dlt_valid_from")
    assert pg.query(history, account) == [("Advertising", False),
                                          ("Marketing & Advertising", True)]
    assert pg.query(history, account) == duck.query(history, account)
    # Only entities with history get the validity columns.
    assert "_dlt_valid_to" in pg.columns("accounts")
    assert "_dlt_valid_to" not in pg.columns("tax_rates")
    assert _one(pg, "SELECT count(*) FROM {ds}.tracking_options WHERE tracking_option_id = %s "
                    "AND _dlt_valid_to IS NULL AND is_deleted", option) == 1
    for view in VIEW_KEYS:
        assert _view_rows(pg, view) == _view_rows(duck, view), view
    assert _one(pg, "SELECT name FROM {ds}.chart_of_accounts WHERE account_id = %s",
                account) == "Marketing & Advertising"
    assert not pg.query("SELECT 1 FROM {ds}.tracking_options_current "
                        "WHERE tracking_option_id = %s", option)
    history_query = next(q for q in readme_queries() if needs_history(q))
    assert pg.query(re.sub(r"\bxero\.", "{ds}.", history_query)) == []  # all newer than that


def test_views_can_be_dropped_before_tables_are(postgres_warehouse: Warehouse) -> None:
    pg = postgres_warehouse
    pg.run_ok(entities=["accounts"])
    with pytest.raises(Exception, match="depend"):  # PostgreSQL guards the view's table
        pg.query("DROP TABLE {ds}.accounts")
    assert set(drop_views(pg.pipeline())) == {"organisations", "chart_of_accounts",
                                              "sync_freshness"}
    pg.query("DROP TABLE {ds}.accounts")  # what dlt's refresh would do
    assert "chart_of_accounts" not in pg.tables()
