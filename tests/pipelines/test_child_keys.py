"""Child tables' natural keys (tenant_id, the parent's key, position): a new dataset has them on
every row; a dataset loaded before they existed gets them on its next run that loads anything,
on DuckDB and PostgreSQL."""
# ruff: noqa: S608 - SQL built from this file's own table and column names

from __future__ import annotations

import pytest

from connector import child_keys
from connector import source as source_module
from sandbox.handle import SandboxHandle
from tests.pipelines.conftest import Warehouse

CHILDREN = {  # child table: the parent and its key
    "suppliers__addresses": ("suppliers", "contact_id"),
    "suppliers__phones": ("suppliers", "contact_id"),
    "tax_rates__tax_components": ("tax_rates", "tax_type"),
}


def _without_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """The source as it was before the keys: no declared key columns, none in the rows."""
    validate = source_module.validate_record
    monkeypatch.setattr(child_keys, "nested_hints", lambda entity_name: {})
    monkeypatch.setattr(child_keys, "migrate", lambda client: 0)
    # ... and before the Arrow load path: dlt nested the child tables (issue 22).
    monkeypatch.setattr(source_module._Tables, "nested", property(lambda self: True))
    monkeypatch.setattr(child_keys, "unnest", lambda client, history=(): 0)
    monkeypatch.setattr(source_module, "validate_record",
                        lambda model, raw, tenant_id, key=None: validate(model, raw, tenant_id))


def _check_keys(w: Warehouse) -> None:
    for table, (parent, key) in CHILDREN.items():
        total = w.query(f"SELECT count(*) FROM {{ds}}.{table}")[0][0]
        assert total > 0, table
        # Every row has its key, a parent with that key, and a place in Xero's list.
        matching = w.query(
            f"SELECT count(*) FROM {{ds}}.{table} c JOIN {{ds}}.{parent} p "
            f"ON c.tenant_id = p.tenant_id AND c.{key} = p.{key} "
            "WHERE c.position >= 0")[0][0]
        assert matching == total, table
        distinct = w.query(f"SELECT count(*) FROM (SELECT DISTINCT tenant_id, {key}, position "
                           f"FROM {{ds}}.{table}) d")[0][0]
        assert distinct == total, table


def _dataset_before_keys_moves_on_next_run(w: Warehouse, sandbox: SandboxHandle,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patch:
        _without_keys(patch)
        w.run_ok()
    assert "position" not in w.columns("suppliers__phones")
    before = w.counts(list(CHILDREN))

    # The next run loads one changed supplier: the columns arrive and every older row gets its
    # key from its parent (rows of both organisations, loaded or not by this run).
    tenant = sandbox.tenant_ids()[0]
    contact = w.query("SELECT contact_id FROM {ds}.suppliers WHERE tenant_id = %s "
                      "ORDER BY contact_id LIMIT 1", tenant)[0][0]
    sandbox.mutate(tenant_id=tenant, entity="contacts", op="update", id=contact,
                   fields={"Name": "Keys Arrive"})
    w.run_ok()
    assert w.counts(list(CHILDREN)) == before
    _check_keys(w)


def test_a_new_dataset_has_child_keys(duckdb_warehouse: Warehouse) -> None:
    duckdb_warehouse.run_ok()
    _check_keys(duckdb_warehouse)


@pytest.mark.slow  # two loads; the fast set has the new dataset's
def test_a_duckdb_dataset_from_before_the_keys_moves_on_its_next_run(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _dataset_before_keys_moves_on_next_run(duckdb_warehouse, sandbox, monkeypatch)


@pytest.mark.postgres
def test_a_postgres_dataset_from_before_the_keys_moves_on_its_next_run(
    postgres_warehouse: Warehouse, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch,
) -> None:
    _dataset_before_keys_moves_on_next_run(postgres_warehouse, sandbox, monkeypatch)
