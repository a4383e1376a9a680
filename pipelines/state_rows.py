"""dlt's copies of the pipeline state in the destination: read back only when needed, pruned.

dlt writes the whole pipeline state into ``_dlt_pipeline_state`` with every load that changed it
(every run: the cursors move), and reads the newest copy back at the start of every
``pipeline.run`` and ``sync_destination``. With 1,000 organisations in one pipeline a copy is
~18 MB, so the table grew by that much per run, and reading it back made DuckDB, capped at
100 MB, fail with "Out of Memory" (its plan holds the state rows in a hash join), from the
second run on. So:

- a run asks only for the newest copy's *version* (no state column read) and restores from the
  destination only when that is ahead of the local state (another machine ran, or the local
  files are gone), which is exactly when dlt's own restore would change anything;
- after a load, copies older than the newest ``KEEP`` completed ones are deleted (a restore
  reads only the newest).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("xero_elt.run")

KEEP = 2  # completed copies kept per pipeline: the newest, and the one before it


def _names(client: Any, pipeline: Any) -> tuple[str, str]:
    schema = pipeline.default_schema
    return (client.make_qualified_table_name(schema.state_table_name),
            client.make_qualified_table_name(schema.loads_table_name))


def _local_version(pipeline: Any) -> int | None:
    """The local state's version, or None when this machine has none of its own yet."""
    if pipeline.first_run or not pipeline.default_schema_name:
        return None
    return int(pipeline.state.get("_state_version") or 0) or None


def local_state_is_current(pipeline: Any) -> bool:
    """True when the destination holds no state newer than the local one (nothing to restore).

    Any doubt (no local state, the query fails) answers False, and dlt's own restore runs."""
    local = _local_version(pipeline)
    if local is None:
        return False
    try:
        with pipeline.sql_client() as client:
            if not client.has_dataset():
                return True
            state, loads = _names(client, pipeline)
            rows = client.execute_sql(
                f"SELECT max(s.version) FROM {state} AS s JOIN {loads} AS l "  # noqa: S608
                "ON l.load_id = s._dlt_load_id WHERE s.pipeline_name = %s AND l.status = 0",
                pipeline.pipeline_name)
    except Exception as exc:
        log.debug("could not read the destination's state version: %s", exc)
        return False
    remote = rows[0][0] if rows else None
    return remote is None or int(remote) <= local


def mark_restored(pipeline: Any) -> None:
    """Tell dlt the state has been synced for this pipeline object, so the bookkeeping
    ``pipeline.run`` of the same run does not read it back again (dlt's own flag)."""
    target = getattr(pipeline, "_pipeline", pipeline)  # runlocks.TurnTakingPipeline wraps it
    target._state_restored = True


def prune(pipeline: Any) -> int:
    """Delete this pipeline's completed state copies older than the newest KEEP; how many."""
    with pipeline.sql_client() as client:
        state, loads = _names(client, pipeline)
        rows = client.execute_sql(
            f"SELECT s._dlt_load_id FROM {state} AS s JOIN {loads} AS l "  # noqa: S608
            "ON l.load_id = s._dlt_load_id WHERE s.pipeline_name = %s AND l.status = 0 "
            "ORDER BY s._dlt_load_id DESC", pipeline.pipeline_name)
        old = [row[0] for row in rows[KEEP:]]
        if old:
            marks = ", ".join(["%s"] * len(old))
            client.execute_sql(
                f"DELETE FROM {state} WHERE pipeline_name = %s "  # noqa: S608
                f"AND _dlt_load_id IN ({marks})", pipeline.pipeline_name, *old)
    return len(old)


def organisation_cursors(pipeline: Any, names: dict[str, str]) -> dict[tuple[str, str],
                                                                       dict[str, Any]]:
    """Cursors an older version kept in per-organisation pipelines' states (``names``: tenant id
    -> its pipeline's name), per (tenant id, entity), from the newest completed copy of each in
    the destination: what a batch's first run moves beside the data. One query for them all;
    none found (no table, no copy): empty."""
    from dlt.common.versioned_state import decompress_state

    if not names:
        return {}
    by_name = {name: tenant for tenant, name in names.items()}
    marks = ", ".join(["%s"] * len(by_name))
    try:
        with pipeline.sql_client() as client:
            state = client.make_qualified_table_name("_dlt_pipeline_state")
            loads = client.make_qualified_table_name("_dlt_loads")
            rows = client.execute_sql(
                f"SELECT s.pipeline_name, s.version, s.state FROM {state} AS s "  # noqa: S608
                f"JOIN {loads} AS l ON l.load_id = s._dlt_load_id "
                f"WHERE l.status = 0 AND s.pipeline_name IN ({marks})", *by_name)
    except Exception as exc:  # no such table yet: nothing to move
        log.debug("no per-organisation states to read: %s", exc)
        return {}
    newest: dict[str, tuple[int, str]] = {}
    for name, version, text in rows or []:
        if name not in newest or int(version) > newest[name][0]:
            newest[name] = (int(version), text)
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for name, (_, text) in newest.items():
        tenant = by_name[name]
        try:
            resources = decompress_state(text)["sources"]["xero"]["resources"]
        except (KeyError, ValueError, TypeError):
            continue
        for entity, resource in resources.items():
            cursors = (resource.get("tenants") or {}).get(tenant)
            if cursors:
                found[(tenant, entity)] = cursors
    return found
