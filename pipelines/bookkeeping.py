"""The tables that tell analysts how fresh the data is: `sync_runs` and `connections`.

Both are written into the destination by every run, from the run's outcomes and the store.
Neither ever holds a secret: `connections` rows are built field by field from what is safe.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import dlt

from store import Connection

SYNC_RUNS_COLUMNS: dict[str, dict[str, Any]] = {
    "run_id": {"data_type": "text", "nullable": False},
    "tenant_id": {"data_type": "text", "nullable": False},
    "entity": {"data_type": "text", "nullable": False},
    "organisation_name": {"data_type": "text"},
    "started_at": {"data_type": "timestamp"},
    "finished_at": {"data_type": "timestamp"},
    "rows_loaded": {"data_type": "bigint"},
    "api_calls": {"data_type": "bigint"},
    "bytes_received": {"data_type": "bigint"},
    "bytes_decoded": {"data_type": "bigint"},
    "skipped_records": {"data_type": "bigint"},
    "outcome": {"data_type": "text"},
    "error": {"data_type": "text"},
}

CONNECTIONS_COLUMNS: dict[str, dict[str, Any]] = {
    "connection_id": {"data_type": "text", "nullable": False},
    "tenant_id": {"data_type": "text"},
    "organisation_name": {"data_type": "text"},
    "company": {"data_type": "text"},
    "status": {"data_type": "text"},
    "status_reason": {"data_type": "text"},
    "invited_at": {"data_type": "timestamp"},
    "connected_at": {"data_type": "timestamp"},
    "disconnected_at": {"data_type": "timestamp"},
    "last_synced_at": {"data_type": "timestamp"},
    "last_sync_rows": {"data_type": "bigint"},
    "last_sync_outcome": {"data_type": "text"},
    "purged_at": {"data_type": "timestamp"},
}


@dataclass
class EntityOutcome:
    """What one run did for one organisation and entity (one `sync_runs` row)."""

    tenant_id: str
    entity: str
    organisation_name: str | None
    started_at: datetime
    finished_at: datetime
    rows_loaded: int = 0
    api_calls: int = 0
    bytes_received: int = 0  # from Xero, as sent (gzip): what its egress allowance counts
    bytes_decoded: int = 0
    outcome: str = "ok"  # ok | failed | skipped | deferred
    error: str | None = None
    skipped_records: int = 0  # records left out for failing their model (the log says which)

    def as_row(self, run_id: str) -> dict[str, Any]:
        """The `sync_runs` row."""
        return {"run_id": run_id, **self.__dict__}


@dataclass
class RunOutcomes:
    """Every entity outcome of one run, with the calls that belong to no entity."""

    run_id: str
    entities: list[EntityOutcome] = field(default_factory=list)
    token_calls: int = 0
    connections_calls: int = 0

    def by_tenant(self) -> dict[str, list[EntityOutcome]]:
        """Outcomes grouped by organisation, in the order they were recorded."""
        grouped: dict[str, list[EntityOutcome]] = {}
        for item in self.entities:
            grouped.setdefault(item.tenant_id, []).append(item)
        return grouped


# A connection being purged is already shown without its organisation: a run of other
# organisations may write this table while the purge is under way.
_FORGOTTEN = {"tenant_id": None, "organisation_name": None, "company": None,
              "status_reason": None}


def connection_row(conn: Connection) -> dict[str, Any]:
    """A `connections` row: the public fields of a store record, never a token or hash."""
    row = {name: getattr(conn, name) for name in CONNECTIONS_COLUMNS}
    if conn.status in ("purging", "purged"):
        row.update(_FORGOTTEN)
    return row


def bookkeeping_resources(
    outcomes: RunOutcomes, connections: Iterable[Connection]
) -> list[Any]:
    """dlt resources for `sync_runs` (this run's rows) and `connections` (all of them)."""

    @dlt.resource(
        name="sync_runs",
        write_disposition="merge",
        primary_key=("run_id", "tenant_id", "entity"),
        columns=SYNC_RUNS_COLUMNS,
    )
    def sync_runs() -> Iterator[dict[str, Any]]:
        for item in outcomes.entities:
            yield item.as_row(outcomes.run_id)

    conns = [connection_row(c) for c in connections]

    @dlt.resource(
        name="connections",
        write_disposition="merge",
        primary_key="connection_id",
        columns=CONNECTIONS_COLUMNS,
    )
    def connections_table() -> Iterator[dict[str, Any]]:
        yield from conns

    return [sync_runs(), connections_table()]
