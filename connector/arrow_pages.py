"""Each page's rows as Arrow tables, built once: the entity's table and each of its child tables.

dlt writes Arrow tables as they come (no normalize step: it was most of a load's CPU), so this
module does what dlt's relational normalizer did for our rows, the way it did it:

- names: Xero's field names through dlt's naming convention; a nested object's fields are
  flattened into ``<object>__<field>`` columns; a list becomes the child table
  ``<table>__<list>`` (``child_keys``), a list of plain values one with a ``value`` column;
- types: a column the schema knows keeps its type (a value dlt would coerce is coerced); a new
  column takes the type of its first value (text that reads as an ISO timestamp becomes a
  timestamp, dlt's ``iso_timestamp`` detection); a value of another type goes to the variant
  column ``<column>__v_<type>``, as dlt names it; money stays ``decimal`` (38, 9) and timestamps
  are UTC;
- bookkeeping: ``_dlt_load_id`` (the package's load) and a random ``_dlt_id`` on every row.

Child tables are keyed by natural keys, not by dlt's row hashes: ``tenant_id``, the parent's key
(``contact_id``) and ``position``. A child table is merged per parent: its ``merge_key`` is
``(tenant_id, <parent key>)``, so loading a supplier replaces all of that supplier's phones; a
supplier that now has none gets one *tombstone* row (``position`` -1, ``_xero_tombstone`` true,
dlt's ``hard_delete`` column), which deletes its old rows and is never stored itself. A list
inside a child row (Xero sends none in the tables we read) is kept as JSON text.
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import os
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from dlt.common.data_types.type_helpers import coerce_value, py_type_to_sc_type
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.schema.detections import is_iso_timestamp

from connector.models import POSITION

TENANT_ID = "tenant_id"
TOMBSTONE = "_xero_tombstone"
"""A child table's ``hard_delete`` column: set only on the row that clears a parent's list."""
LOAD_ID = "_dlt_load_id"
DEDUPLICATED = "x-stage-data-deduplicated"  # dlt's table hint: the merge skips deduplication
ROW_ID = "_dlt_id"
DECIMAL_PRECISION, DECIMAL_SCALE = 38, 9  # dlt's default decimal, as the tables have it
_QUANTUM = Decimal(1).scaleb(-DECIMAL_SCALE)
_NAMING = NamingConvention()  # dlt's default: how Xero's names become tables and columns
# Python types whose values go into a column of each type without conversion.
_EXACT: dict[str, frozenset[type]] = {
    "text": frozenset({str}), "bigint": frozenset({int}), "double": frozenset({float}),
    "bool": frozenset({bool}), "decimal": frozenset({Decimal}),
    "timestamp": frozenset({datetime}), "date": frozenset({date}),
}


@functools.cache
def _column(name: str, prefix: str = "") -> str:
    """The column of a field (inside ``prefix``'s object), as dlt's normalizer names it."""
    column = _NAMING.normalize_identifier(name)
    return _NAMING.shorten_fragments(prefix, column) if prefix else column


@functools.cache
def child_table(table: str, path: tuple[str, ...]) -> str:
    """The child table of the list at ``path`` (Xero's names) in a row of ``table``."""
    return _NAMING.shorten_fragments(table, *(_NAMING.normalize_table_identifier(p)
                                              for p in path))


@functools.cache
def variant_column(column: str, kind: str) -> str:
    """Where values of type ``kind`` go in a column of another type (dlt's name for it)."""
    return _NAMING.shorten_fragments(column, f"v_{kind}")


def arrow_type(kind: str, column: Mapping[str, Any] | None = None) -> Any:
    """The Arrow type of a dlt data type."""
    import pyarrow as pa

    if kind == "decimal":
        column = column or {}
        return pa.decimal128(column.get("precision") or DECIMAL_PRECISION,
                             column.get("scale") or DECIMAL_SCALE)
    if kind == "timestamp":
        return pa.timestamp("us", tz="UTC")
    return {"text": pa.string(), "bigint": pa.int64(), "double": pa.float64(),
            "bool": pa.bool_(), "date": pa.date32(), "binary": pa.binary(),
            "time": pa.time64("us"), "json": pa.string()}.get(kind, pa.string())


def flatten(row: Mapping[str, Any], out: dict[str, Any], lists: dict[tuple[str, ...], list],
            prefix: str = "", path: tuple[str, ...] = ()) -> None:
    """``row``'s fields into ``out`` by column, nested objects flattened; its lists into
    ``lists`` by their path of Xero names (a list inside an object keeps the object's name)."""
    for key, value in row.items():
        kind = type(value)
        if kind is dict:
            flatten(value, out, lists, _column(key, prefix), (*path, key))
        elif kind is list:
            lists[(*path, key)] = value
        elif value is not None:
            out[_column(key, prefix)] = value


class PageTables:
    """Builds one entity's Arrow tables from its rows (``connector.models.validate_record``'s
    output, with ``tenant_id``), page by page.

    Args:
        table: the entity's table (``suppliers``).
        key: Xero's key field (``ContactID``); its column names the parent in child rows.
    """

    def __init__(self, table: str, key: str) -> None:
        self.table = table
        self.key = key
        self.key_column = _column(key)

    def build(self, rows: Sequence[Mapping[str, Any]], load_id: str,
              known: Mapping[str, Mapping[str, Mapping[str, Any]]],
              children: Sequence[str] = ()) -> dict[str, Any]:
        """The page's Arrow tables by table name: the entity's first, then its child tables.

        ``known``: the schema's columns of each table that exists; ``children``: child tables
        that may hold rows of the page's parents already (a parent with no rows in one now gets
        a tombstone there)."""
        parents: list[dict[str, Any]] = []
        child_rows: dict[str, list[dict[str, Any]]] = {}
        for row in rows:
            flat: dict[str, Any] = {}
            lists: dict[tuple[str, ...], list] = {}
            flatten(row, flat, lists)
            parents.append(flat)
            if lists:
                self._children(flat, lists, child_rows)
        tables = {self.table: self._arrow(self.table, parents, load_id, known.get(self.table))}
        for table in dict.fromkeys([*children, *child_rows]):
            found = child_rows.get(table, [])
            if table in known:  # old rows may exist: clear the parents that now have none
                found.extend(self._tombstones(parents, found))
            if found:
                tables[table] = self._arrow(table, found, load_id, known.get(table))
        return tables

    def _children(self, parent: dict[str, Any], lists: dict[tuple[str, ...], list],
                  out: dict[str, list[dict[str, Any]]]) -> None:
        keys = {TENANT_ID: parent.get(TENANT_ID), self.key_column: parent.get(self.key_column)}
        for path, items in lists.items():
            found = out.setdefault(child_table(self.table, path), [])
            for position, item in enumerate(items):
                flat: dict[str, Any] = {}
                if type(item) is dict:
                    nested: dict[tuple[str, ...], list] = {}
                    flatten(item, flat, nested)
                    for inner, value in nested.items():  # a list in a child row: JSON text
                        if value:  # (an empty one is nothing, as dlt has it)
                            flat[_column("__".join(inner))] = json.dumps(value, default=str)
                elif item is not None:
                    flat["value"] = item
                # The keys the row may carry already are its parent's now (the table's hints
                # put the key columns first).
                flat.update(keys)
                flat[POSITION] = position
                found.append(flat)

    def _tombstones(self, parents: list[dict[str, Any]],
                    found: list[dict[str, Any]]) -> list[dict[str, Any]]:
        key = self.key_column
        present = {(row.get(TENANT_ID), row.get(key)) for row in found}
        return [{TENANT_ID: t, key: k, POSITION: -1, TOMBSTONE: True}
                for t, k in dict.fromkeys((p.get(TENANT_ID), p.get(key)) for p in parents)
                if (t, k) not in present]

    def _arrow(self, table: str, rows: list[dict[str, Any]], load_id: str,
               known: Mapping[str, Mapping[str, Any]] | None) -> Any:
        import pyarrow as pa

        known = known or {}
        keys = {TENANT_ID, self.key_column, POSITION}
        names = list(dict.fromkeys(itertools.chain.from_iterable(rows)))
        count = len(rows)
        bookkeeping = [(pa.field(LOAD_ID, pa.string(), nullable=False),
                        pa.array([load_id] * count, type=pa.string())),
                       (pa.field(ROW_ID, pa.string(), nullable=False), _row_ids(count))]

        def field(column: str, kind: Any) -> Any:
            # As the schema has it (dlt warns of every hint an Arrow table contradicts).
            nullable = column not in keys and known.get(column, {}).get("nullable", True)
            return pa.field(column, kind, nullable=nullable)

        fields, arrays = [], []
        for name in names:
            values = [row.get(name) for row in rows]
            for column, (kind, typed) in _typed(name, values, known).items():
                array = _array(typed, kind, known.get(column))
                fields.append(field(column, array.type))
                arrays.append(array)
        for extra, array in bookkeeping:
            fields.append(extra)
            arrays.append(array)
        return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _kind(name: str, values: list[Any], known: Mapping[str, Mapping[str, Any]]) -> str:
    """A column's dlt type: the schema's, else its first value's (dlt's detection too)."""
    kind = (known.get(name) or {}).get("data_type")
    if kind is not None:
        return str(kind)
    first = next(v for v in values if v is not None)
    kind = py_type_to_sc_type(type(first))
    if kind == "text" and is_iso_timestamp(str, first):
        return "timestamp"
    return str(kind)


def _typed(name: str, values: list[Any], known: Mapping[str, Mapping[str, Any]]
           ) -> dict[str, tuple[str, list[Any]]]:
    """A column's values by the column they go to: its own (coerced to its type) and a variant
    column per type that does not fit it, each with its dlt type."""
    kinds = set(map(type, values))
    kinds.discard(type(None))
    if not kinds:
        return {}
    target = _kind(name, values, known)
    if kinds <= _EXACT.get(target, frozenset()):
        return {name: (target, values)}
    own: list[Any] = []
    variants: dict[str, list[Any]] = {}
    for index, value in enumerate(values):
        if value is None:
            own.append(None)
            continue
        kind = py_type_to_sc_type(type(value))
        try:
            own.append(value if kind == target else coerce_value(target, kind, value))
            continue
        except (ValueError, TypeError, ArithmeticError):
            pass
        own.append(None)
        column = variants.setdefault(kind, [None] * len(values))
        column[index] = coerce_value(kind, kind, value)
    out = {name: (target, own)}
    for kind, column in variants.items():
        out[variant_column(name, kind)] = (kind, column)
    return out


def _array(values: list[Any], kind: str, column: Mapping[str, Any] | None) -> Any:
    import pyarrow as pa

    if kind == "json":
        values = [None if v is None else json.dumps(v, default=str) for v in values]
    target = arrow_type(kind, column)
    try:
        return pa.array(values, type=target)
    except pa.ArrowInvalid:
        if kind != "decimal":
            raise
    # More places than the column keeps: rounded, as the database would.
    return pa.array([v.quantize(_QUANTUM) if _too_fine(v) else v for v in values], type=target)


def _row_ids(count: int) -> Any:
    """``count`` random row ids (16 characters, 96 bits each), from one read of the system's
    randomness (dlt's own make one read per id, a tenth of a page's build)."""
    import pyarrow as pa

    text = base64.urlsafe_b64encode(os.urandom(12 * count)).decode()
    return pa.array([text[i:i + 16] for i in range(0, 16 * count, 16)], type=pa.string())


def _too_fine(value: Any) -> bool:
    exponent = value.as_tuple().exponent if isinstance(value, Decimal) else 0
    return isinstance(exponent, int) and exponent < -DECIMAL_SCALE


def child_variant(resource: Any, table: str, parent_key: str, contract: Any,
                  file_format: str | None = None, deduplicated: bool = True) -> None:
    """Give ``resource`` the child table ``table`` as a table variant of its own hints: merged
    per parent (``merge_key``), keyed by position, the tombstone its ``hard_delete`` column.

    A variant starts from the resource's hints; a child table takes none of them (the parent's
    columns, keys and write disposition) but the schema contract. ``deduplicated``: no parent
    came twice in this load, so no key does either and the merge skips its deduplication (a
    window over every staged row, which ran DuckDB's 100 MB out at 200,000 suppliers)."""
    key = _column(parent_key)
    resource.apply_hints(table_name=table, create_table_variant=True, columns={},
                         merge_key="", primary_key="", schema_contract={}, nested_hints={},
                         write_disposition="merge")
    columns = {
        TENANT_ID: {"data_type": "text", "nullable": False},
        key: {"data_type": "text", "nullable": False},
        POSITION: {"data_type": "bigint", "nullable": False},
        TOMBSTONE: {"data_type": "bool", "nullable": True, "hard_delete": True},
    }
    resource.apply_hints(table_name=table, create_table_variant=True, columns=columns,
                         primary_key=[TENANT_ID, key, POSITION], merge_key=[TENANT_ID, key],
                         schema_contract=contract or {}, file_format=file_format,
                         write_disposition={"disposition": "merge", "strategy": "delete-insert",
                                            "deduplicated": deduplicated})


__all__ = [
    "TOMBSTONE",
    "PageTables",
    "arrow_type",
    "child_table",
    "child_variant",
    "flatten",
    "variant_column",
]
