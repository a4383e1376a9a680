"""Child tables' natural keys: ``tenant_id``, the parent's key and ``position``.

Every child row (``suppliers__phones``, ``tax_rates__tax_components``, …) carries its
organisation, its parent's key under the parent's column name (``contact_id``, ``tax_type``) and
its 0-based place in Xero's list, so analysts join on keys they know rather than on dlt's row
hashes. ``connector.models.validate_record`` fills them for new rows.

A dataset loaded before the keys existed is moved by the next extraction, before anything is
loaded (``connector.memory.DestinationMemory.prepare``): the columns are added to every child
table that lacks them (dlt would add them only to the tables a load writes, while its merge of
a supplier touches every child table) and each older row gets its key from its parent
(``_dlt_parent_id``) and dlt's ``_dlt_list_idx``. One query finds there is nothing to do.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from dlt.common.normalizers.naming.snake_case import NamingConvention

from connector.entities import ENTITY_TABLE
from connector.models import POSITION

TENANT_ID = "tenant_id"
_NAMING = NamingConvention()  # dlt's default: how Xero's names become tables and columns
_SQL_TYPES = {"text": "VARCHAR", "bigint": "BIGINT"}


def child_tables() -> dict[str, tuple[str, str]]:
    """Each child table → (its parent table, the parent's key column)."""
    found: dict[str, tuple[str, str]] = {}
    for entity in ENTITY_TABLE.values():
        key = _NAMING.normalize_identifier(entity.key)
        for child in entity.children:
            table = _NAMING.shorten_fragments(_NAMING.normalize_table_identifier(entity.name),
                                              _NAMING.normalize_table_identifier(child))
            found[table] = (entity.name, key)
    return found


def key_columns(parent_key: str) -> dict[str, str]:
    """A child table's natural-key columns and their dlt types."""
    return {TENANT_ID: "text", parent_key: "text", POSITION: "bigint"}


def nested_hints(entity_name: str) -> dict[str, Any]:
    """dlt's ``nested_hints`` declaring the key columns of an entity's child tables.

    Declared as columns, not as dlt's ``primary_key``: a nested table with a primary key stops
    being nested for dlt, and its rows would no longer be replaced with their parent's (a
    supplier that loses a phone would keep it). Nullable as far as the database knows: a
    ``NOT NULL`` column cannot be added to a filled table (``migrate`` fills them)."""
    hints: dict[str, Any] = {}
    for table, (parent, key) in child_tables().items():
        if parent == entity_name:
            child = table[len(parent) + 2:]
            hints[child] = {"columns": {name: {"name": name, "data_type": kind}
                                        for name, kind in key_columns(key).items()}}
    return hints


def migrate(client: Any) -> int:
    """Add the key columns to the child tables of the dataset that lack them, and give every
    row without a key the one its parent and position say. Returns the rows changed."""
    tables = child_tables()
    marks = ", ".join(["%s"] * len(tables))
    present: dict[str, set[str]] = {}
    rows = client.execute_sql(
        "SELECT table_name, column_name FROM information_schema.columns "  # noqa: S608
        f"WHERE table_schema = %s AND table_name IN ({marks})",
        client.dataset_name, *sorted(tables))
    for table, column in rows or []:
        present.setdefault(str(table), set()).add(str(column))
    changed = 0
    for table, (parent, key) in sorted(tables.items()):
        columns = present.get(table)
        if columns is None or POSITION in columns:
            continue  # no such table yet, or it has its keys
        child = client.make_qualified_table_name(table)
        for name, kind in key_columns(key).items():
            if name not in columns:
                client.execute_sql(f"ALTER TABLE {child} ADD COLUMN IF NOT EXISTS "
                                   f"{client.escape_column_name(name)} {_SQL_TYPES[kind]}")
        changed += _fill(client, child, client.make_qualified_table_name(parent), key)
    return changed


def _fill(client: Any, child: str, parent: str, key: str) -> int:
    tenant, key, position, list_idx, parent_id, row_id = (
        client.escape_column_name(c) for c in
        (TENANT_ID, key, POSITION, "_dlt_list_idx", "_dlt_parent_id", "_dlt_id"))
    # One statement per table: the rows of every organisation at once.
    sql = (f"UPDATE {child} SET {tenant} = p.{tenant}, {key} = p.{key}, "  # noqa: S608
           f"{position} = {child}.{list_idx} FROM {parent} AS p "
           f"WHERE {child}.{parent_id} = p.{row_id} AND {child}.{position} IS NULL")
    with client.execute_query(sql) as cursor:
        return max(getattr(cursor, "rowcount", 0) or 0, 0)


NESTING_COLUMNS = ("_dlt_root_id", "_dlt_parent_id", "_dlt_list_idx")
"""dlt's columns tying a nested table's rows to their parent's row: gone from child tables that
are tables of their own (every entity without history; ``connector.arrow_pages``)."""
LOAD_ID = "_dlt_load_id"


def unnest(client: Any, history: Collection[str] = ()) -> int:
    """Make the child tables of entities without history tables of their own in the dataset:
    each row takes its parent's ``_dlt_load_id``, dlt's nesting columns are dropped (the
    natural keys, which ``migrate`` fills first, replace them), and the staging copy is dropped
    (dlt makes it again). Returns the tables moved; one query finds there is nothing to do."""
    tables = {t: pk for t, pk in child_tables().items() if pk[0] not in history}
    nested = _nested_tables(client, client.dataset_name, tables)
    for table in nested:
        parent, _ = tables[table]
        child = client.make_qualified_table_name(table)
        load_id, root_id, row_id = (client.escape_column_name(c)
                                    for c in (LOAD_ID, "_dlt_root_id", "_dlt_id"))
        client.execute_sql(f"ALTER TABLE {child} ADD COLUMN IF NOT EXISTS {load_id} VARCHAR")
        client.execute_sql(
            f"UPDATE {child} SET {load_id} = p.{load_id} "  # noqa: S608 (names are ours)
            f"FROM {client.make_qualified_table_name(parent)} AS p "
            f"WHERE {child}.{root_id} = p.{row_id} AND {child}.{load_id} IS NULL")
        for column in NESTING_COLUMNS:
            # CASCADE: PostgreSQL's views that read the column (the analysts' views, which
            # every load makes again) go with it.
            client.execute_sql(f"ALTER TABLE {child} DROP COLUMN IF EXISTS "
                               f"{client.escape_column_name(column)} CASCADE")
    if nested:
        with client.with_staging_dataset():
            for table in nested:
                client.execute_sql(
                    f"DROP TABLE IF EXISTS {client.make_qualified_table_name(table)}")
    return len(nested)


def _nested_tables(client: Any, dataset: str, tables: Collection[str]) -> list[str]:
    """Of ``tables``, those that still have dlt's nesting columns."""
    if not tables:
        return []
    marks = ", ".join(["%s"] * len(tables))
    rows = client.execute_sql(
        "SELECT DISTINCT table_name FROM information_schema.columns "  # noqa: S608
        f"WHERE table_schema = %s AND column_name = %s AND table_name IN ({marks})",
        dataset, "_dlt_parent_id", *sorted(tables))
    return sorted(str(row[0]) for row in rows or [])


def unnest_schema(schema: Any, history: Collection[str] = ()) -> list[str]:
    """The same in dlt's schema: the child tables of entities without history stop being
    nested (no ``parent``, no nesting columns, a ``_dlt_load_id``). Returns the tables changed;
    a schema already moved (or none yet) is left as it is."""
    changed = []
    flat = {name for name in ENTITY_TABLE if name not in history}
    for name, table in (schema.tables.items() if schema is not None else ()):
        if table.get("parent") not in flat:
            continue
        table.pop("parent", None)
        columns = table["columns"]
        for column in NESTING_COLUMNS:
            columns.pop(column, None)
        columns.setdefault(LOAD_ID, {"name": LOAD_ID, "data_type": "text", "nullable": False})
        changed.append(name)
    return changed
