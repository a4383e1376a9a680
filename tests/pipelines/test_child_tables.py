"""Child tables of their own (issue 22): keyed by ``tenant_id``, the parent's key and
``position``, merged per parent, on DuckDB and PostgreSQL; a dataset whose child tables dlt
nested (before the Arrow load path) is moved by the next run, nothing reloaded."""
# ruff: noqa: S608 - SQL built from this file's own table and column names

from __future__ import annotations

from typing import Any

import pytest

from connector import source as source_module
from connector.arrow_pages import TOMBSTONE
from connector.child_keys import NESTING_COLUMNS
from sandbox.handle import SandboxHandle
from tests.pipelines.conftest import Warehouse

PHONES = "suppliers__phones"
PHONE_FIELDS = {"phone_type": "PhoneType", "phone_number": "PhoneNumber",
                "phone_area_code": "PhoneAreaCode", "phone_country_code": "PhoneCountryCode"}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest) -> Warehouse:
    """The dataset on each destination."""
    return request.getfixturevalue(f"{request.param}_warehouse")


def _phones(warehouse: Warehouse) -> dict[tuple[str, str], list[tuple[Any, ...]]]:
    """Each supplier's phones in position order, by (tenant_id, contact_id)."""
    found: dict[tuple[str, str], list[tuple[Any, ...]]] = {}
    for row in warehouse.query(
            f"SELECT tenant_id, contact_id, position, {', '.join(PHONE_FIELDS)} "
            f"FROM {{ds}}.{PHONES} ORDER BY tenant_id, contact_id, position"):
        found.setdefault((row[0], row[1]), []).append(row[2:])
    return found


def _keep_phones(sandbox: SandboxHandle, supplier: tuple[str, str],
                 phones: list[tuple[Any, ...]]) -> None:
    """Xero now lists only ``phones`` (rows as ``_phones`` gives them) for the supplier."""
    tenant_id, contact_id = supplier
    listed = [{xero: value for xero, value in zip(PHONE_FIELDS.values(), phone[1:], strict=True)
               if value is not None} for phone in phones]
    sandbox.mutate(tenant_id=tenant_id, entity="contacts", op="update", id=contact_id,
                   fields={"Phones": listed})


def test_a_supplier_that_loses_phones_loses_them_in_the_table(
    warehouse: Warehouse, sandbox: SandboxHandle,
) -> None:
    warehouse.run_ok()
    before = _phones(warehouse)
    several = [s for s, phones in before.items() if len(phones) >= 2]
    assert len(several) >= 2, "the sample needs suppliers with several phones"
    fewer, none = several[0], several[1]
    _keep_phones(sandbox, fewer, before[fewer][:1])
    _keep_phones(sandbox, none, [])

    warehouse.run_ok()

    after = _phones(warehouse)
    assert after[fewer] == before[fewer][:1]
    assert none not in after
    assert {s: p for s, p in after.items() if s != fewer} == \
        {s: p for s, p in before.items() if s not in (fewer, none)}
    # The tombstone that cleared a list is never stored, nor is its position.
    assert warehouse.query(f"SELECT count(*) FROM {{ds}}.{PHONES} "
                           f"WHERE {TOMBSTONE} OR position < 0") == [(0,)]


def test_nested_child_tables_are_moved_by_the_next_run(
    warehouse: Warehouse, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A dataset as the versions before the Arrow load path left it: dlt nested the child tables.
    with monkeypatch.context() as patch:
        patch.setattr(source_module._Tables, "nested", property(lambda self: True))
        warehouse.run_ok()
    assert set(NESTING_COLUMNS) <= set(warehouse.columns(PHONES))
    before = _phones(warehouse)
    components = warehouse.query(
        "SELECT tenant_id, tax_type, position, name, rate FROM {ds}.tax_rates__tax_components "
        "ORDER BY 1, 2, 3")

    warehouse.run_ok()  # nothing changed at Xero: the run moves the tables, loads nothing new

    columns = warehouse.columns(PHONES)
    assert not set(NESTING_COLUMNS) & set(columns), columns
    assert "_dlt_load_id" in columns
    assert _phones(warehouse) == before
    assert warehouse.query(
        "SELECT tenant_id, tax_type, position, name, rate FROM {ds}.tax_rates__tax_components "
        "ORDER BY 1, 2, 3") == components
    assert warehouse.query(f"SELECT count(*) FROM {{ds}}.{PHONES} "
                           "WHERE _dlt_load_id IS NULL") == [(0,)]
    schema = warehouse.pipeline().default_schema
    assert schema.tables[PHONES].get("parent") is None
    assert not set(NESTING_COLUMNS) & set(schema.tables[PHONES]["columns"])

    # The moved tables merge per parent like new ones.
    supplier = next(s for s, phones in before.items() if len(phones) >= 2)
    _keep_phones(sandbox, supplier, before[supplier][1:])
    warehouse.run_ok()
    after = _phones(warehouse)
    assert [p[1:] for p in after[supplier]] == [p[1:] for p in before[supplier][1:]]
    assert sum(map(len, after.values())) == sum(map(len, before.values())) - 1
    # The views read the moved tables (tax_rates_current joins its components by key).
    assert warehouse.query("SELECT count(*) FROM {ds}.tax_rates_current "
                           "WHERE component_count > 0")[0][0] > 0
