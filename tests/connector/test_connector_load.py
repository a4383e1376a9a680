"""The source against the sandbox, into DuckDB: first load, no-change runs, incremental changes,
reconciliation, call counts, history scoping and schema evolution."""

from __future__ import annotations

import math
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from connector.source import schema_changes
from sandbox.handle import SandboxHandle, XeroGrant, make_grant
from store import Store, open_store
from tests.connector.conftest import Loader, connect_tenants, sandbox_settings

# Sandbox loads one after another (~5 s a test): `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow

API = "/api.xro/2.0/"
TABLES = ("suppliers", "accounts", "tax_rates", "tracking_categories", "tracking_options")
COUNT_KEYS = {"suppliers": "suppliers", "accounts": "accounts", "tax_rates": "tax_rates",
              "tracking_categories": "tracking_categories",
              "tracking_options": "tracking_options"}


def api_calls(sandbox: SandboxHandle, tenant_id: str | None = None) -> list[dict]:
    """Accounting API requests in the sandbox's log (token and /connections calls left out)."""
    return [r for r in sandbox.requests(path=API, tenant_id=tenant_id)
            if r["path"].startswith(API)]


def per_tenant(loader: Loader, table: str) -> dict[str, int]:
    return dict(loader.query(f"select tenant_id, count(*) from {table} group by 1"))  # noqa: S608


def test_first_run_loads_every_row_of_both_organisations_with_types(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    stats = loader.run()

    for tenant in sandbox.tenants():
        for table, key in COUNT_KEYS.items():
            assert per_tenant(loader, table).get(tenant["tenantId"]) == tenant["counts"][key], table
    assert {e.outcome for e in stats.entries()} == {"ok"}
    assert all(e.error is None and e.skipped_records == 0 for e in stats.entries())
    columns = {
        (table, name): kind
        for table in (*TABLES, "tax_rates__tax_components", "suppliers__addresses")
        for name, kind, *_ in loader.query(f"describe {table}")
    }
    assert columns[("suppliers", "updated_date_utc")] == "TIMESTAMP WITH TIME ZONE"
    assert columns[("suppliers", "contact_id")] == "VARCHAR"
    assert columns[("suppliers", "is_supplier")] == "BOOLEAN"
    assert columns[("accounts", "code")] == "VARCHAR"
    assert columns[("tax_rates", "display_tax_rate")].startswith("DECIMAL")
    assert columns[("tax_rates__tax_components", "rate")].startswith("DECIMAL")
    assert columns[("tracking_options", "tracking_category_id")] == "VARCHAR"
    assert columns[("accounts", "deleted_at")] == "TIMESTAMP WITH TIME ZONE"
    # every child row carries its organisation
    for child in ("tax_rates__tax_components", "suppliers__addresses", "suppliers__phones"):
        assert loader.count(child, "tenant_id is null") == 0
        assert loader.count(child) > 0
    # primary keys include tenant_id
    keys = loader.pipeline.default_schema.tables["tracking_options"]["columns"]
    assert {n for n, c in keys.items() if c.get("primary_key")} == {"tenant_id",
                                                                    "tracking_option_id"}
    # decimals are exact and timestamps are UTC
    rate = loader.query("select rate from tax_rates__tax_components where rate > 0 limit 1")[0][0]
    assert isinstance(rate, Decimal)
    newest = loader.query("select max(updated_date_utc) from suppliers")[0][0]
    assert newest.utcoffset().total_seconds() == 0
    assert loader.count("accounts", "is_deleted") == 0


def test_no_change_run_makes_one_call_per_entity_and_writes_nothing(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    loader.run()
    sandbox.clear_requests()

    stats = loader.run()

    assert loader.rows_written() == {}
    for tenant_id in sandbox.tenant_ids():
        calls = api_calls(sandbox, tenant_id)
        assert len(calls) == 4, [c["path"] for c in calls]  # Contacts, Accounts, TaxRates, Tracking
        contacts = [c for c in calls if c["path"].endswith("/Contacts")]
        assert contacts[0]["headers"].get("if-modified-since")
        assert stats.api_calls(tenant_id) == 4
    assert all(e.rows == 0 and e.outcome == "ok" for e in stats.entries())


def test_changes_load_exactly_the_changed_rows_and_the_new_column(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    loader.run()
    tenant_a, tenant_b = sandbox.tenant_ids()
    suppliers = [r[0] for r in loader.query(
        f"select contact_id from suppliers where tenant_id = '{tenant_a}' "  # noqa: S608
        "and contact_status = 'ACTIVE' order by contact_id limit 6")]
    account = loader.query(
        f"select account_id from accounts where tenant_id = '{tenant_a}' limit 1")[0][0]  # noqa: S608
    option = loader.query(
        f"select tracking_option_id from tracking_options where tenant_id = '{tenant_b}' "  # noqa: S608
        "limit 1")[0][0]
    tax_type, tax_name = loader.query(
        f"select tax_type, name from tax_rates where tenant_id = '{tenant_b}' limit 1")[0]  # noqa: S608
    # Rows within the cursor overlap (the cursor is Xero's time when the last read began) may be
    # read again; with the new field they really changed.
    boundary = {r[0] for r in loader.query(
        f"select contact_id from suppliers where tenant_id = '{tenant_a}' and "  # noqa: S608
        "updated_date_utc >= (select max(updated_date_utc) from suppliers "
        f"where tenant_id = '{tenant_a}') - interval 62 second")} - set(suppliers)

    sandbox.mutate(tenant_id=tenant_a, entity="contacts", op="add_field",
                   field="SupplierRating", value="gold")
    for contact_id in suppliers[:5]:
        sandbox.mutate(tenant_id=tenant_a, entity="contacts", op="update", id=contact_id,
                       fields={"EmailAddress": f"new-{contact_id[:8]}@example.test"})
    sandbox.mutate(tenant_id=tenant_a, entity="contacts", op="archive", id=suppliers[5])
    sandbox.mutate(tenant_id=tenant_a, entity="accounts", op="delete", id=account)
    sandbox.mutate(tenant_id=tenant_b, entity="tracking_options", op="delete", id=option)
    sandbox.mutate(tenant_id=tenant_b, entity="tax_rates", op="update", id=tax_type,
                   fields={"Name": tax_name + " (renamed)"})

    # The whole chart of accounts is due (only it shows a deleted account; runs between read
    # what changed: tests/connector/test_accounts_modified_since.py).
    stats = loader.run(settings=loader.settings.replace(accounts_snapshot_hours=0))

    written = loader.rows_written()
    assert 6 <= written.get("suppliers", 0) <= 6 + len(boundary)
    assert len(boundary) <= 2
    assert written.get("accounts") == 1
    assert written.get("tracking_options") == 1
    assert written.get("tax_rates") == 1
    assert "tracking_categories" not in written
    assert stats.get(tenant_a, "suppliers").rows == written["suppliers"]
    assert stats.get(tenant_b, "suppliers").rows == 0
    assert loader.count("suppliers", "supplier_rating = 'gold'") == written["suppliers"]
    assert "suppliers.supplier_rating: new column (text)" in schema_changes(loader.load_info)
    assert loader.count("suppliers", f"contact_id = '{suppliers[5]}' "
                        "and contact_status = 'ARCHIVED'") == 1
    deleted = loader.query(f"select is_deleted, deleted_at, name from accounts "  # noqa: S608
                           f"where account_id = '{account}'")
    assert deleted[0][0] is True
    assert deleted[0][1] is not None
    assert deleted[0][2]
    assert loader.count("tracking_options", f"tracking_option_id = '{option}' and is_deleted") == 1
    assert loader.count("tax_rates", f"name = '{tax_name} (renamed)'") == 1
    assert loader.count("accounts", "is_deleted") == 1

    # a deletion is marked once: the next run writes nothing again
    loader.run()
    assert loader.rows_written() == {}


def test_reconciliation_finds_a_contact_that_became_a_supplier(
    loader: Loader, sandbox: SandboxHandle, xero_grant: XeroGrant
) -> None:
    tenant_a = sandbox.tenant_ids()[0]
    # an old contact that is not a supplier (yet)
    answer = httpx.get(f"{sandbox.api_url}/Contacts", headers=xero_grant.headers(tenant_a),
                       params={"where": "IsSupplier==false", "order": "UpdatedDateUTC ASC",
                               "page": "1", "pageSize": "5"})
    contact_id = answer.json()["Contacts"][0]["ContactID"]
    loader.run()
    sandbox.mutate(tenant_id=tenant_a, entity="contacts", op="make_supplier", id=contact_id)

    loader.run()  # incremental: the cursor did not move for it
    assert loader.count("suppliers", f"contact_id = '{contact_id}'") == 0

    sandbox.clear_requests()
    stats = loader.run(reconcile=True)
    assert loader.count("suppliers", f"contact_id = '{contact_id}'") == 1
    contacts = [c for c in api_calls(sandbox, tenant_a) if c["path"].endswith("/Contacts")]
    # No supplier is downloaded again in full: an incremental read, then summaries and the
    # changed contact by id.
    assert contacts
    assert all("if-modified-since" in c["headers"] or c["query"].get("summaryOnly") == "true"
               or c["query"].get("IDs") == contact_id for c in contacts)
    assert any(c["query"].get("IDs") == contact_id for c in contacts)
    assert stats.get(tenant_a, "suppliers").outcome == "ok"


def test_reconciliation_runs_by_itself_when_the_last_one_is_old(
    loader: Loader, sandbox: SandboxHandle, settings
) -> None:
    loader.run()
    sandbox.clear_requests()
    loader.run(settings=settings.replace(reconcile_interval_hours=0))
    contacts = [c for c in api_calls(sandbox) if c["path"].endswith("/Contacts")]
    # Per organisation: the incremental read, the supplier-count probe and one sweep slice.
    assert len(contacts) == 6
    summaries = [c for c in contacts if c["query"].get("summaryOnly") == "true"]
    assert {c["tenant_id"] for c in summaries} == set(sandbox.tenant_ids())
    assert all("if-modified-since" in c["headers"] for c in contacts if c not in summaries)


@pytest.mark.slow
def test_full_load_call_count_is_pages_plus_three_per_organisation(
    sandbox_factory, tmp_path: Path, tmp_home: Path
) -> None:
    big = sandbox_factory(suppliers=2100)
    big.reset()
    app = big.create_app()
    grant = make_grant(big, app)
    store = open_store(tmp_home)
    connect_tenants(store, grant, big)
    loader = Loader(tmp_path, store, sandbox_settings(big, grant))
    big.clear_requests()

    stats = loader.run()

    for tenant in big.tenants():
        n = tenant["counts"]["suppliers"]
        expected = math.ceil(n / 1000) + 3
        calls = api_calls(big, tenant["tenantId"])
        assert len(calls) == expected, sorted(c["path"] for c in calls)
        assert stats.api_calls(tenant["tenantId"]) == expected
        pages = [c for c in calls if c["path"].endswith("/Contacts")]
        assert {c["query"]["page"] for c in pages} == {str(p) for p in range(1, expected - 2)}
        assert all(c["query"]["pageSize"] == "1000" and c["query"]["includeArchived"] == "true"
                   and c["query"]["order"] == "ContactID ASC"
                   and c["query"]["where"] == "IsSupplier==true" for c in pages)
        assert per_tenant(loader, "suppliers")[tenant["tenantId"]] == n
    token_and_connections = [r for r in big.requests() if not r["path"].startswith(API)]
    assert len(token_and_connections) <= 2  # at most one refresh (the grant is fresh)


def test_history_retires_rows_only_in_the_organisation_loaded(
    tmp_path: Path, store: Store, sandbox: SandboxHandle, xero_grant: XeroGrant, grant_id: str
) -> None:
    # (the whole chart every run: a deletion shows only there)
    settings = sandbox_settings(sandbox, xero_grant, history=["accounts"],
                                accounts_snapshot_hours=0)
    loader = Loader(tmp_path, store, settings)
    tenant_a, tenant_b = sandbox.tenant_ids()
    loader.run(entities=["accounts"])
    total_b = loader.count("accounts", f"tenant_id = '{tenant_b}'")
    account_a = loader.query(f"select account_id from accounts where tenant_id = '{tenant_a}' "  # noqa: S608
                             "limit 1")[0][0]
    account_b = loader.query(f"select account_id, name from accounts where tenant_id = "  # noqa: S608
                             f"'{tenant_b}' limit 1")[0]
    sandbox.mutate(tenant_id=tenant_a, entity="accounts", op="delete", id=account_a)
    sandbox.mutate(tenant_id=tenant_b, entity="accounts", op="update", id=account_b[0],
                   fields={"Name": "Renamed"})

    loader.run(entities=["accounts"], tenants=[tenant_a])

    # organisation B untouched: nothing retired, the rename not loaded yet
    assert loader.count("accounts", f"tenant_id = '{tenant_b}' and _dlt_valid_to is not null") == 0
    assert loader.count("accounts", f"tenant_id = '{tenant_b}'") == total_b
    # organisation A: the deleted account's live version says so; the old one is retired
    versions = loader.query(f"select is_deleted, _dlt_valid_to is null from accounts "  # noqa: S608
                            f"where account_id = '{account_a}' order by _dlt_valid_from")
    assert versions == [(False, False), (True, True)]

    loader.run(entities=["accounts"], tenants=[tenant_b])
    names = loader.query(f"select name, _dlt_valid_to is null from accounts "  # noqa: S608
                         f"where account_id = '{account_b[0]}' order by _dlt_valid_from")
    assert names == [(account_b[1], False), ("Renamed", True)]


def test_freeze_contract_fails_naming_the_new_column(
    tmp_path: Path, store: Store, sandbox: SandboxHandle, xero_grant: XeroGrant, grant_id: str
) -> None:
    settings = sandbox_settings(sandbox, xero_grant, schema_contract="freeze")
    loader = Loader(tmp_path, store, settings)
    loader.run(entities=["accounts"])
    sandbox.mutate(tenant_id=sandbox.tenant_ids()[0], entity="accounts", op="add_field",
                   field="BrandNewField", value="x")
    # A new field does not move UpdatedDateUTC: the next whole chart brings it.
    with pytest.raises(PipelineStepFailed) as failure:
        loader.run(entities=["accounts"], settings=settings.replace(accounts_snapshot_hours=0))
    assert "brand_new_field" in str(failure.value)


def test_a_type_change_becomes_a_variant_column_and_is_reported(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    loader.run(entities=["accounts"])
    tenant_a = sandbox.tenant_ids()[0]
    # UpdatedDateUTC starts coming as epoch milliseconds instead of /Date(...)/
    sandbox.mutate(tenant_id=tenant_a, entity="accounts", op="change_type",
                   field="UpdatedDateUTC", to="integer")

    # A changed type does not move UpdatedDateUTC: the next whole chart brings it.
    stats = loader.run(entities=["accounts"],
                       settings=loader.settings.replace(accounts_snapshot_hours=0))

    columns = [c[0] for c in loader.query("describe accounts")]
    assert "updated_date_utc__v_bigint" in columns, columns
    changes = schema_changes(loader.load_info)
    assert any("accounts.updated_date_utc__v_bigint" in c and "changed type" in c
               for c in changes), changes
    warnings = stats.get(tenant_a, "accounts").warnings
    assert any("UpdatedDateUTC" in w and "expected timestamp" in w for w in warnings), warnings
    assert stats.get(tenant_a, "accounts").outcome == "ok"


def test_supplier_history_retires_only_the_suppliers_that_changed(
    tmp_path: Path, store: Store, sandbox: SandboxHandle, xero_grant: XeroGrant, grant_id: str
) -> None:
    settings = sandbox_settings(sandbox, xero_grant, history=["suppliers"])
    loader = Loader(tmp_path, store, settings)
    tenant_a = sandbox.tenant_ids()[0]
    loader.run(entities=["suppliers"])
    total = loader.count("suppliers")
    contact_id = loader.query(f"select contact_id from suppliers where tenant_id = "  # noqa: S608
                              f"'{tenant_a}' limit 1")[0][0]
    sandbox.mutate(tenant_id=tenant_a, entity="contacts", op="update", id=contact_id,
                   fields={"Name": "Renamed Supplier"})

    loader.run(entities=["suppliers"])  # incremental: only the changed supplier is read

    assert loader.count("suppliers", "_dlt_valid_to is null") == total
    versions = loader.query(f"select name, _dlt_valid_to is null from suppliers "  # noqa: S608
                            f"where contact_id = '{contact_id}' order by _dlt_valid_from")
    assert len(versions) == 2
    assert versions[1] == ("Renamed Supplier", True)


def test_a_named_organisation_that_is_not_connected_is_skipped(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    tenant_a = sandbox.tenant_ids()[0]
    stats = loader.run(tenants=[tenant_a, "00000000-0000-0000-0000-000000000000"],
                       entities=["accounts"])
    assert stats.get(tenant_a, "accounts").outcome == "ok"
    skipped = stats.get("00000000-0000-0000-0000-000000000000", "accounts")
    assert skipped.outcome == "skipped"
    assert "not connected" in skipped.error
    assert loader.count("accounts", f"tenant_id <> '{tenant_a}'") == 0
