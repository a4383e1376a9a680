"""Each organisation's memory of its records, kept beside its data in the destination.

What a run must remember about an organisation's records lives in one table of the dataset,
``_xero_memory``, one row per (tenant_id, entity, record_id) and load, and so do its small
cursors and flags (``SupplierState.dump``, ``SnapshotMarks.dump``): one row per (tenant_id,
entity) under the record id ``CURSORS_KEY``. dlt's state keeps nothing per organisation, so
any set of organisations can load through one pipeline in one package (a Dagster batch).

**Memory is never ahead of the data.** A load package's tables are committed one by one (each
merge is its own transaction on PostgreSQL), so a run killed mid-load can leave the memory rows
of a package committed and its data rows not; the package is then dropped and dlt's state rolls
back. So memory rows are appended, stamped with their load id, and a row counts only once its
load is complete (in ``_dlt_loads``): a read takes each record's newest such row, so after a
dropped package the memory is the last completed load's, and the next run reads again what the
package held and merges it by key. ``compact`` deletes what no longer counts (pipelines do it
after every load; a plain dlt project may call it after ``pipeline.run``).

Where each piece lives, and why:

- **which contacts are suppliers** (``member``) and **an unfinished full read's progress**
  (``found_by``: the watermark of the full read that found the contact; the page to resume at
  stays in dlt's state): memory rows, written into the same load package as the rows they
  describe.
- **a content hash per record** (``hash``; suppliers only near the cursor, with ``updated_at``
  and ``targeted``, snapshot entities every key): memory rows, for the same reason.
- **a snapshot's last values and when a key was found missing** (``last_values``,
  ``deleted_at``): memory rows; the last values mark a deletion with the row as it was.
- **what masked values replace**: nothing is kept; the full tax number is read from the
  ``suppliers`` table itself (``connector.masking``).

Not in the app's store: the connector is used on its own (a plain dlt project has no store), and
only the destination knows which of its loads completed. Several machines already share
the destination they load into, so a fresh machine (or another Dagster worker) finds every
organisation's memory there; a purge deletes it with the organisation's rows (every table with a
``tenant_id``, staging included). It is read one organisation and entity at a time with
``WHERE tenant_id = … AND entity = …`` (the memory of 1,000 organisations is never in one
document: it was 19 MB of dlt state, written whole every run and too big to restore with
DuckDB's 100 MB), through one SQL connection held for the extraction (opening DuckDB costs
~50 ms; a query ~1 ms).

State written by older versions (cursors, and before them members, hashes and last values, in
dlt's state) is read once, written here as memory rows with that run's load, and dropped from
the state (see ``connector.source._Run.stored_cursors``, ``SupplierState.load`` and
``SnapshotState.from_state``).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Collection, Iterable, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any, Protocol

from connector import child_keys

log = logging.getLogger(__name__)

MEMORY_TABLE = "_xero_memory"

MEMORY_COLUMNS: dict[str, dict[str, Any]] = {
    "tenant_id": {"data_type": "text", "nullable": False},
    "entity": {"data_type": "text", "nullable": False},
    "record_id": {"data_type": "text", "nullable": False},
    "member": {"data_type": "bool"},
    "hash": {"data_type": "text"},
    "updated_at": {"data_type": "timestamp", "timezone": True},
    "targeted": {"data_type": "bool"},
    "found_by": {"data_type": "timestamp", "timezone": True},
    "deleted_at": {"data_type": "timestamp", "timezone": True},
    "last_values": {"data_type": "text"},
    # The record is forgotten from this load on (the row only hides older ones).
    "forget": {"data_type": "bool"},
    # The dlt load that wrote the row: only rows of completed loads (``_dlt_loads``) count.
    "load_id": {"data_type": "text", "nullable": False},
}
_READ = ", ".join(c for c in MEMORY_COLUMNS if c not in ("tenant_id", "entity"))
CURSORS_KEY = "~cursors"
"""The ``record_id`` of an organisation's cursors and flags for one entity (the supplier
state's small part, a snapshot's marks), as JSON in ``last_values``: what dlt's state held per
organisation before. One row per (tenant, entity) and load that changed them, written in the
package of the data they describe, so a package that is lost loses nothing but re-reads; no Xero
record id starts with ``~``."""
_DONE = "SELECT load_id FROM {loads} WHERE status = 0"


class Memory(Protocol):
    """Reads organisations' memory (and stored values) from where it is kept."""

    def read(self, tenant_id: str, entity: str) -> list[dict[str, Any]]:
        """Every memory row of one organisation's entity (``record_id`` and the columns)."""

    def tax_numbers(self, tenant_id: str, contact_ids: list[str]) -> dict[str, str]:
        """Tax numbers already loaded for these contacts (masked values must not replace them)."""

    def cursors(self, tenant_ids: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """The stored cursors of these organisations, per (tenant_id, entity)."""

    def prepare(self, history: Collection[str] = ()) -> None:
        """Bring the dataset's tables up to this version before anything is read or loaded
        (``history``: the entities keeping history, whose child tables stay nested)."""

    def close(self) -> None:
        """Release what reading opened."""


class NoMemory:
    """No destination to read (a source run without a pipeline): every run is a first run."""

    def prepare(self, history: Collection[str] = ()) -> None:
        pass

    def read(self, tenant_id: str, entity: str) -> list[dict[str, Any]]:
        return []

    def tax_numbers(self, tenant_id: str, contact_ids: list[str]) -> dict[str, str]:
        return {}

    def cursors(self, tenant_ids: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
        return {}

    def close(self) -> None:
        pass


class DestinationMemory:
    """Memory read from the dataset a dlt pipeline loads into, through one SQL client.

    The client is opened at the first read and held until ``close`` (the end of the
    extraction), and queries take turns on a lock (reader threads share it). With
    ``pipelines.runlocks.TurnTakingPipeline`` the client holds the dataset's load turn, so a
    DuckDB file is never opened by two processes at once.

    Args:
        pipeline: the pipeline loading this extraction (its ``sql_client``).
    """

    def __init__(self, pipeline: Any) -> None:
        self._pipeline = pipeline
        self._lock = threading.Lock()
        self._context: AbstractContextManager[Any] | None = None
        self._client: Any = None
        self._missing = False  # the table does not exist yet: a first load
        self._prepared = False
        self._cursors: dict[tuple[str, str], dict[str, Any]] = {}
        self._cursors_read: set[str] = set()  # tenants whose cursors are in ``_cursors``

    def _open(self) -> Any:
        if self._client is None:
            context = self._pipeline.sql_client()
            self._client = context.__enter__()
            self._context = context
        return self._client

    def _query(self, sql: str, *args: Any) -> list[tuple]:
        from dlt.destinations.exceptions import DatabaseUndefinedRelation

        with self._lock:
            if self._missing:
                return []
            client = self._open()
            try:
                return list(client.execute_sql(_named(client, sql), *args) or [])
            except DatabaseUndefinedRelation:
                self._missing = True
                return []

    def read(self, tenant_id: str, entity: str) -> list[dict[str, Any]]:
        names = _READ.split(", ")
        rows = self._query(f"SELECT {_READ} FROM {{table}} "  # noqa: S608 (names are ours)
                           f"WHERE tenant_id = %s AND entity = %s AND record_id <> %s "
                           f"AND load_id IN ({_DONE})", tenant_id, entity, CURSORS_KEY)
        return current([dict(zip(names, row, strict=True)) for row in rows])

    def cursors(self, tenant_ids: Sequence[str]) -> dict[tuple[str, str], dict[str, Any]]:
        """The newest completed cursors of these organisations, per (tenant_id, entity): one
        query per 500 organisations not asked for before (the pre-flight asks for a run's
        organisations at once, in its turn; the source's later asks are answered from here)."""
        wanted = list(dict.fromkeys(tenant_ids))
        new = [t for t in wanted if t not in self._cursors_read]
        for start in range(0, len(new), 500):
            chunk = new[start:start + 500]
            marks = ", ".join(["%s"] * len(chunk))
            rows = self._query(
                "SELECT tenant_id, entity, last_values, load_id FROM {table} "  # noqa: S608
                f"WHERE record_id = %s AND tenant_id IN ({marks}) AND load_id IN ({_DONE})",
                CURSORS_KEY, *chunk)
            newest: dict[tuple[str, str], tuple[str, str]] = {}
            for tenant, entity, text, load_id in rows:
                seen = newest.get((tenant, entity))
                if seen is None or load_id > seen[1]:
                    newest[(tenant, entity)] = (text, load_id)
            with self._lock:
                self._cursors.update({key: json.loads(text) for key, (text, _) in newest.items()
                                      if text})
                self._cursors_read.update(chunk)
        wanted_set = set(wanted)
        return {key: value for key, value in self._cursors.items() if key[0] in wanted_set}

    def adopt(self, cursors: dict[tuple[str, str], dict[str, Any]]) -> None:
        """Cursors an older version kept elsewhere (per-organisation pipelines' states), for
        organisations and entities the memory has none of: ``cursors`` answers with them,
        marked (``MOVED``) so that the source writes them here."""
        with self._lock:
            for key, value in cursors.items():
                self._cursors.setdefault(key, {**value, MOVED: True})

    def prepare(self, history: Collection[str] = ()) -> None:
        """Child tables loaded before their natural keys existed get them
        (``connector.child_keys.migrate``), and those of entities without history stop being
        nested (``child_keys.unnest``), once for this memory (every resource of a run asks).
        The client is closed again: reads open it when they first need it, and a no-change run
        needs none (with ``TurnTakingPipeline`` an open client holds the dataset's load turn,
        through the extraction)."""
        with self._lock:
            if self._prepared:
                return
        try:
            with self._lock:
                client = self._open()
                migrated = child_keys.migrate(client)
                unnested = child_keys.unnest(client, history)
                # dlt's schema follows whether or not the tables moved now (a fresh machine
                # restores the schema of the last completed load, which may predate the move).
                if self._pipeline.default_schema_name:
                    child_keys.unnest_schema(self._pipeline.default_schema, history)
                self._prepared = True
        finally:
            self.close()
        if migrated:
            log.info("child tables: %d older rows given their natural key", migrated)
        if unnested:
            log.info("child tables: %d moved from dlt's nesting to natural keys", unnested)

    def tax_numbers(self, tenant_id: str, contact_ids: list[str]) -> dict[str, str]:
        from dlt.destinations.exceptions import DatabaseUndefinedRelation

        marks = ", ".join(["%s"] * len(contact_ids))
        with self._lock:
            client = self._open()
            table = client.make_qualified_table_name("suppliers")
            try:
                rows = client.execute_sql(
                    f"SELECT contact_id, tax_number FROM {table} "  # noqa: S608 (names are ours)
                    f"WHERE tenant_id = %s AND contact_id IN ({marks}) "
                    "AND tax_number IS NOT NULL", tenant_id, *contact_ids)
            except DatabaseUndefinedRelation:
                return {}
        return {str(c): v for c, v in rows or [] if isinstance(v, str)}

    def close(self) -> None:
        with self._lock:
            context, self._context, self._client = self._context, None, None
        if context is not None:
            context.__exit__(None, None, None)


def _named(client: Any, sql: str) -> str:
    """``sql`` with ``{table}`` and ``{loads}`` as the client's qualified names."""
    return sql.format(table=client.make_qualified_table_name(MEMORY_TABLE),
                      loads=client.make_qualified_table_name("_dlt_loads"))


def current(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Of rows of completed loads, each record's newest (none if that one forgets it)."""
    newest: dict[str, dict[str, Any]] = {}
    for row in rows:
        seen = newest.get(row["record_id"])
        if seen is None or row["load_id"] > seen["load_id"]:
            newest[row["record_id"]] = row
    return [row for row in newest.values() if not row.get("forget")]


def compact(client: Any, tenant_ids: Iterable[str], load_ids: Sequence[str] = ()) -> None:
    """Delete these organisations' memory rows that no longer count: older versions of a
    record, forgotten records, and rows of loads that never completed.

    Run it only where no load of theirs is under way (after a run's load, under its locks);
    the rows it keeps are exactly what ``read`` returns. Given the ``load_ids`` just loaded,
    a load that wrote only cursors rows (a no-change pass) compacts only those, not every
    record's memory.
    """
    from dlt.destinations.exceptions import DatabaseUndefinedRelation

    tenants = sorted(set(tenant_ids))
    for start in range(0, len(tenants), 500):
        chunk = tenants[start:start + 500]
        marks = ", ".join(["%s"] * len(chunk))
        only = ""
        try:
            if load_ids:
                loads = ", ".join(["%s"] * len(load_ids))
                records = client.execute_sql(_named(client, (
                    f"SELECT count(*) FROM {{table}} WHERE tenant_id IN ({marks}) "  # noqa: S608
                    f"AND load_id IN ({loads}) AND record_id <> %s")),
                    *chunk, *load_ids, CURSORS_KEY)
                if not records or not records[0][0]:
                    only = f"AND record_id = '{CURSORS_KEY}' "
            client.execute_sql(_named(client, (
                f"DELETE FROM {{table}} WHERE tenant_id IN ({marks}) {only}"  # noqa: S608
                "AND (tenant_id, entity, record_id, load_id) NOT IN ("
                "SELECT tenant_id, entity, record_id, max(load_id) FROM {table} "
                f"WHERE tenant_id IN ({marks}) {only}AND load_id IN ({_DONE}) "
                "GROUP BY tenant_id, entity, record_id)")), *chunk, *chunk)
            client.execute_sql(_named(client, (
                f"DELETE FROM {{table}} WHERE tenant_id IN ({marks}) AND forget")),  # noqa: S608
                *chunk)
        except DatabaseUndefinedRelation:
            return


def memory_hints(resource: Any) -> None:
    """Give ``resource`` the memory table as a table variant of its own hints.

    A variant starts from the resource's hints; the memory table takes none of them (columns,
    scd2, ``merge_key``, the schema contract, the child tables' keys: it is ours, not Xero's),
    only its own. Rows are appended: a load never replaces memory a completed load wrote (see
    the module's docstring).
    """
    resource.apply_hints(table_name=MEMORY_TABLE, create_table_variant=True, columns={},
                         merge_key="", primary_key="", schema_contract={}, nested_hints={},
                         write_disposition="append")
    resource.apply_hints(table_name=MEMORY_TABLE, create_table_variant=True,
                         columns=MEMORY_COLUMNS)


@functools.cache
def _arrow_schema() -> Any:
    import pyarrow as pa

    kinds = {"text": pa.string(), "bool": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC")}
    return pa.schema([pa.field(name, kinds[spec["data_type"]],
                               nullable=spec.get("nullable", True))
                      for name, spec in MEMORY_COLUMNS.items()])


def as_memory(rows: list[dict[str, Any]]) -> Any:
    """Memory rows as an Arrow table marked for the memory table (yield it from the entity's
    resource, in dlt's extraction): built once, typed as declared, stamped with the load they
    belong to, written by dlt as they are (no normalize step)."""
    import dlt
    import pyarrow as pa

    load_id = dlt.current.load_package_state()["load_id"]
    table = pa.Table.from_pylist([{**row, "load_id": load_id} for row in rows],
                                 schema=_arrow_schema())
    return dlt.mark.with_table_name(table, MEMORY_TABLE)


MOVED = "~moved"
"""Marks cursors read from where an older version kept them (``DestinationMemory.adopt``)."""


# --- rows ------------------------------------------------------------------------------------

SupplierEntry = tuple[bool | None, str | None, str | None, bool, str | None]
"""(member, hash, updated_at, targeted, found_by) of one supplier."""

SnapshotEntry = tuple[str, str | None, str | None]
"""(hash, deleted_at, last_values) of one snapshot key."""


def _iso(moment: datetime | str | None) -> str | None:
    """An instant as the ISO text the reads keep in memory (UTC); None stays None."""
    if moment is None or isinstance(moment, str):
        return moment
    return moment.astimezone(UTC).isoformat()


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def supplier_entry(row: dict[str, Any]) -> SupplierEntry:
    """A stored memory row as the entry the supplier read compares."""
    return (row.get("member"), row.get("hash"), _iso(row.get("updated_at")),
            bool(row.get("targeted")), _iso(row.get("found_by")))


def snapshot_entry(row: dict[str, Any]) -> SnapshotEntry:
    """A stored memory row as a snapshot key's entry."""
    return row["hash"], _iso(row.get("deleted_at")), row.get("last_values")


def supplier_rows(tenant_id: str, changes: Sequence[tuple[str, SupplierEntry | None]]
                  ) -> list[dict[str, Any]]:
    """Memory rows for changed supplier entries (None: forget the record)."""
    rows = []
    for key, entry in changes:
        if entry is None:
            rows.append({"tenant_id": tenant_id, "entity": "suppliers", "record_id": key,
                         "forget": True})
            continue
        member, digest, updated, targeted, found_by = entry
        rows.append({"tenant_id": tenant_id, "entity": "suppliers", "record_id": key,
                     "member": member, "hash": digest, "updated_at": _instant(updated),
                     "targeted": targeted, "found_by": _instant(found_by), "forget": False})
    return rows


def cursors_row(tenant_id: str, entity: str, cursors: dict[str, Any]) -> dict[str, Any]:
    """The memory row keeping one organisation's cursors for one entity (``CURSORS_KEY``)."""
    return {"tenant_id": tenant_id, "entity": entity, "record_id": CURSORS_KEY,
            "last_values": json.dumps(cursors, sort_keys=True, separators=(",", ":")),
            "forget": False}


def snapshot_rows(tenant_id: str, entity: str,
                  changes: Sequence[tuple[str, SnapshotEntry | None]]) -> list[dict[str, Any]]:
    """Memory rows for changed snapshot keys (None: forget the key)."""
    rows = []
    for key, entry in changes:
        if entry is None:
            rows.append({"tenant_id": tenant_id, "entity": entity, "record_id": key,
                         "forget": True})
            continue
        digest, deleted_at, last = entry
        rows.append({"tenant_id": tenant_id, "entity": entity, "record_id": key,
                     "hash": digest, "deleted_at": _instant(deleted_at), "last_values": last,
                     "forget": False})
    return rows


__all__ = [
    "CURSORS_KEY",
    "MEMORY_COLUMNS",
    "MEMORY_TABLE",
    "DestinationMemory",
    "Memory",
    "NoMemory",
    "as_memory",
    "compact",
    "current",
    "cursors_row",
    "memory_hints",
    "snapshot_entry",
    "snapshot_rows",
    "supplier_entry",
    "supplier_rows",
]
