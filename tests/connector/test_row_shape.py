"""The rows handed to dlt keep their shape: the same tables, columns, types and content as the
reference row building (validate, ``model_dump``, stamp ``tenant_id`` on every child row) that
the faster one replaced.

Two loads of the same sandbox organisations, one with the connector's ``_Run.build_row`` and one
with the reference below, must leave identical destination tables, row for row (child rows
compared with their parent's key, since dlt's ``_dlt_id`` hashes are per load); the column names
and types are also pinned in a committed fixture (``row_shape_columns.json``), written by the
reference path before the change.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from connector import child_keys, wire
from connector import source as source_module
from connector.arrow_pages import TOMBSTONE
from connector.memory import MEMORY_COLUMNS, MEMORY_TABLE
from connector.models import XeroModel
from tests.connector.conftest import Loader

FIXTURE = Path(__file__).with_name("row_shape_columns.json")
CONTENT_FIXTURE = Path(__file__).with_name("row_shape_content.json")
_BOOKKEEPING = {"_dlt_id", "_dlt_load_id", "_dlt_parent_id", "_dlt_root_id", "_dlt_list_idx",
                TOMBSTONE}


def _reference_validate(model: type[XeroModel], record: dict) -> tuple[dict, list[str]]:
    """The row building before issue 14: decode dates, validate, dump the model."""
    wire.decode_dates(record)
    context: dict[str, Any] = {}
    parsed = model.model_validate(record, context=context)
    dumped = parsed.model_dump(exclude_unset=True)
    return {name: dumped[name] for name in record if name in dumped}, \
        context.get("type_changes", [])


def _reference_stamp(row: dict, tenant_id: str, key: str | None = None) -> None:
    """``tenant_id`` on every child row; with ``key``, one level down, the parent's key and the
    position too (the child tables' natural key)."""
    for value in row.values():
        if isinstance(value, list):
            for position, item in enumerate(value):
                if isinstance(item, dict):
                    item["tenant_id"] = tenant_id
                    if key is not None:
                        item[key] = row[key]
                        item["position"] = position
                    _reference_stamp(item, tenant_id)
        elif isinstance(value, dict):
            _reference_stamp(value, tenant_id)


def _reference_build_row(self: Any, org: Any, entity: Any, raw: dict) -> dict | None:
    try:
        row, _ = _reference_validate(entity.model, raw)
    except ValueError as exc:
        self.bad_record(org, entity, raw, str(exc))
        return None
    _reference_stamp(row, org.tenant_id, entity.key)
    return {"tenant_id": org.tenant_id, **row}


def _columns(loader: Loader) -> dict[str, dict[str, str]]:
    """Every table's columns with DuckDB's type (their order follows whichever organisation's
    page dlt met first, so it is not compared)."""
    rows = loader.query(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'xero' and table_name not like '\\_dlt%' escape '\\' "
        "order by table_name, ordinal_position")
    tables: dict[str, dict[str, str]] = {}
    for table, column, kind in rows:
        tables.setdefault(table, {})[column] = kind
    return tables


def _hints(loader: Loader) -> dict[str, dict[str, tuple]]:
    """dlt's own column hints (type, precision, keys, nullability) per table."""
    wanted = ("data_type", "nullable", "primary_key", "precision", "scale", "timezone",
              "variant")
    return {
        table["name"]: {col: tuple(spec.get(k) for k in wanted)
                        for col, spec in table["columns"].items()}
        for table in loader.pipeline.default_schema.data_tables()
    }


def _content(loader: Loader, columns: dict[str, dict[str, str]], *, instants: bool = True
             ) -> dict[str, list[tuple]]:
    """Every table's rows, sorted, without dlt's bookkeeping (per-load ids and, before issue
    22, its nesting columns): a child row carries its parent's key and its position. Without
    ``instants`` a timestamp shows only its type and zone (the sandbox dates records from the
    moment it starts)."""
    content: dict[str, list[tuple]] = {}
    for table, cols in columns.items():
        names = sorted(c for c in cols if c not in _BOOKKEEPING)
        select = ", ".join(f'"{c}"' for c in names)
        rows = loader.query(f'select {select} from "{table}"')  # noqa: S608
        content[table] = sorted(tuple(repr(v) if instants or not isinstance(v, datetime)
                                      else f"datetime({v.tzinfo!r})" for v in row)
                                for row in rows)
    return content


def _digests(loader: Loader, columns: dict[str, dict[str, str]]) -> dict[str, dict[str, Any]]:
    """Per data table, its row count and one digest of its sorted rows."""
    content = _content(loader, columns, instants=False)
    return {table: {"rows": len(rows),
                    "sha256": hashlib.sha256(repr(rows).encode()).hexdigest()}
            for table, rows in sorted(content.items()) if table != MEMORY_TABLE}


def _as_tables_are_now(columns: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    """The committed columns of the tables before issue 22, as the Arrow load path makes them:
    a child table loses dlt's nesting columns and gains ``_dlt_load_id`` and the tombstone."""
    moved = {}
    for table, cols in columns.items():
        if table in child_keys.child_tables():
            cols = {c: kind for c, kind in cols.items() if c not in child_keys.NESTING_COLUMNS}
            cols.update({"_dlt_load_id": "VARCHAR", TOMBSTONE: "BOOLEAN"})
        moved[table] = cols
    return moved


def test_rows_keep_their_tables_columns_types_and_content(
    loader: Loader, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    loader.run()
    columns, hints, content = _columns(loader), _hints(loader), _content(loader, _columns(loader))

    with monkeypatch.context() as patch:
        patch.setattr(source_module._Run, "build_row", _reference_build_row)
        reference = Loader(tmp_path / "reference", loader.store, loader.settings)
        reference.run()
    ref_columns = _columns(reference)

    assert columns == ref_columns
    # The fixture pins the data tables; the memory table (issue 22) is the connector's own,
    # pinned here by its declared columns.
    memory = columns.pop(MEMORY_TABLE)
    assert set(memory) == set(MEMORY_COLUMNS)
    assert columns == _as_tables_are_now(json.loads(FIXTURE.read_text()))
    ref_columns.pop(MEMORY_TABLE)
    assert hints == _hints(reference)
    ref_content = _content(reference, ref_columns)
    # The same rows as the tables held before the Arrow load path (issue 22): counts and
    # digests of every table's data, written by that version from the same seeded sandbox.
    assert _digests(loader, columns) == json.loads(CONTENT_FIXTURE.read_text())
    for table in ref_content:
        assert len(content[table]) == len(ref_content[table]), table
        for mine, theirs in zip(content[table], ref_content[table], strict=True):
            assert mine == theirs, table
    # the sample has money, dates and child rows to compare
    assert any("Decimal" in v for row in content["tax_rates__tax_components"] for v in row)
    assert any("datetime" in v for row in content["suppliers"] for v in row)
    assert all("tenant_id" in cols for cols in columns.values())
    # Every child row carries its natural key: tenant_id, the parent's key, its position;
    # unique, and a parent row has that key.
    for table, (parent, key) in child_keys.child_tables().items():
        if table not in columns:
            continue
        assert loader.query(
            f'select count(*) from "{table}" t join "{parent}" p '  # noqa: S608
            f'on t.tenant_id = p.tenant_id and t."{key}" = p."{key}" '
            "where t.position >= 0")[0][0] == loader.count(f'"{table}"'), table
        assert loader.query(
            f'select count(*) from (select distinct tenant_id, "{key}", position '  # noqa: S608
            f'from "{table}") d')[0][0] == loader.count(f'"{table}"'), table
