"""`xero-elt purge --connection ID [--yes]`: remove one organisation's data everywhere we keep it.

In order, so an interruption leaves nothing half-visible that a rerun would not finish:

1. dlt state: the organisation's entries (keyed by tenant id, e.g. the resource state's
   ``tenants`` dict of suppliers and snapshots) are removed through dlt's ``managed_state`` and
   the new state is loaded to the destination; older ``_dlt_pipeline_state`` rows of the
   pipeline, which still hold them, are deleted.
2. rows: every table of the dataset with a ``tenant_id`` column loses that organisation's rows —
   entity tables, dlt's child tables, scd2 history, and ``sync_runs`` (its errors can quote the
   organisation's data; the audit trail is the store's record and the ``connection.purged``
   event). Other organisations are untouched.
3. tokens: the organisation is removed at Xero, the grant revoked at Xero when no other
   connection uses it, and deleted here.
4. the store's connection record stays, status ``purged`` (for the audit trail), which sends
   ``connection.purged``.

Each destination named (``--destination``, repeatable; default the configured one) is purged.
A rerun after a failure is safe: every step is idempotent.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any

from pipelines import exitcodes

log = logging.getLogger("xero_elt.purge")

STATE_TABLE = "_dlt_pipeline_state"


def add_parser(sub: Any) -> None:
    """Add `purge` to the command tree."""
    purge = sub.add_parser("purge", help="remove an organisation's data, dlt state and tokens")
    purge.add_argument("--connection", required=True, metavar="ID",
                       help="the connection_id `xero-elt connections` shows")
    purge.add_argument("--yes", action="store_true", help="do not ask (for scripts)")
    purge.add_argument("--destination", action="append", dest="destinations", metavar="NAME",
                       help="purge this destination (repeatable; default the configured one)")
    purge.add_argument("--dataset", help="dataset (schema) name (default xero)")


def drop_tenant(node: Any, tenant_id: str) -> int:
    """Remove every dict entry keyed by ``tenant_id`` under ``node``; how many were removed."""
    removed = 0
    if isinstance(node, dict):
        if tenant_id in node:
            del node[tenant_id]
            removed += 1
        for value in node.values():
            removed += drop_tenant(value, tenant_id)
    elif isinstance(node, list):
        for value in node:
            removed += drop_tenant(value, tenant_id)
    return removed


def purge_destination(pipeline: Any, tenant_id: str) -> dict[str, int]:
    """Steps 1 and 2 for one pipeline; rows deleted per table."""
    import contextlib

    with contextlib.suppress(Exception):  # a new destination has no state to restore
        pipeline.sync_destination()
    with pipeline.managed_state(extract_state=True) as state:
        entries = drop_tenant(state.get("sources", {}), tenant_id)
    if entries:
        pipeline.normalize()
        pipeline.load()
    deleted: dict[str, int] = {}
    try:
        client_context = pipeline.sql_client()
    except Exception as exc:
        log.info("nothing to purge in %s: %s", pipeline.pipeline_name, type(exc).__name__)
        return deleted
    with client_context as client:
        if not client.has_dataset():
            return deleted
        rows = client.execute_sql(  # base tables only: the analyst views follow them
            "SELECT DISTINCT c.table_name FROM information_schema.columns c"
            " JOIN information_schema.tables t ON t.table_schema = c.table_schema"
            " AND t.table_name = c.table_name WHERE c.table_schema = %s"
            " AND c.column_name = 'tenant_id' AND t.table_type = 'BASE TABLE'",
            client.dataset_name)
        for (table,) in sorted(rows or []):
            name = client.make_qualified_table_name(table)
            before = client.execute_sql(
                f"SELECT count(*) FROM {name} WHERE tenant_id = %s", tenant_id)  # noqa: S608
            client.execute_sql(f"DELETE FROM {name} WHERE tenant_id = %s", tenant_id)  # noqa: S608
            deleted[table] = int(before[0][0]) if before else 0
        # Older state versions still carry the organisation's entries; dlt restores the newest.
        state_table = client.make_qualified_table_name(STATE_TABLE)
        has_state = client.execute_sql(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s"
            " AND table_name = %s", client.dataset_name, STATE_TABLE)
        if entries and has_state and has_state[0][0]:
            client.execute_sql(
                f"DELETE FROM {state_table} WHERE pipeline_name = %s AND version <"  # noqa: S608
                f" (SELECT max(version) FROM {state_table} WHERE pipeline_name = %s)",
                pipeline.pipeline_name, pipeline.pipeline_name)
    log.info("purged %s from %s: %d state entries, rows %s", tenant_id, pipeline.pipeline_name,
             entries, deleted)
    return deleted


def purge_tokens(store: Any, xero: Any, conn: Any) -> None:
    """Step 3: at Xero (when nothing else uses the grant), then here."""
    from auth_server.connections import IN_USE, delete_at_xero, discard_pending, release_grant

    discard_pending(store, xero, conn.connection_id)
    if conn.grant_id and conn.xero_connection_id and conn.status in IN_USE:
        delete_at_xero(store, xero, conn.grant_id, conn.xero_connection_id)
    grant_id = conn.grant_id
    store.update_connection(conn.connection_id, grant_id=None, xero_connection_id=None,
                            invite_token_hash=None)
    if grant_id:
        release_grant(store, xero, grant_id)
        store.delete_grant_if_unused(grant_id)


def purge(connection_id: str, *, destinations: list[str] | None = None,
          dataset: str | None = None) -> dict[str, dict[str, int]]:
    """Purge one connection's organisation; rows deleted per destination and table."""
    import dlt

    from auth_server.invites import get_connection
    from connector.settings import load_settings as load_xero_settings
    from connector.store import open_store
    from pipelines.destinations import resolve_target

    store = open_store()
    conn = get_connection(store, connection_id)
    report: dict[str, dict[str, int]] = {}
    if conn.tenant_id:
        for name in destinations or [None]:  # type: ignore[list-item]
            target = resolve_target(name, dataset)
            pipeline = dlt.pipeline(pipeline_name=target.pipeline_name,
                                    destination=target.destination, dataset_name=target.dataset,
                                    pipelines_dir=str(store.home / "pipelines"))
            report[target.name] = purge_destination(pipeline, conn.tenant_id)
    purge_tokens(store, load_xero_settings(), conn)
    store.update_connection(conn.connection_id, status="purged",
                            status_reason="purged on request", sync_state=None)
    return report


def _confirmed(conn: Any) -> bool:
    if not sys.stdin.isatty():
        print("xero-elt: purge asks before acting; pass --yes to run it from a script",
              file=sys.stderr)
        return False
    what = conn.organisation_name or conn.company
    answer = input(f"Remove every row, the dlt state and the tokens of {what} "
                   f"({conn.tenant_id or 'never connected'})? This cannot be undone. "
                   f"Type the connection id ({conn.connection_id}) to go on: ")
    return answer.strip() == conn.connection_id


def purge_from_cli(args: argparse.Namespace) -> int:
    """`xero-elt purge`: confirm (unless --yes), purge, print what was removed."""
    from auth_server.errors import AuthServerError, InvalidInput, NotFound
    from auth_server.invites import get_connection
    from connector.errors import ConfigurationError
    from connector.store import StoreError, open_store
    from pipelines.destinations import DestinationError

    try:
        conn = get_connection(open_store(), args.connection)
        if conn.status == "purged":
            print(f"{conn.connection_id} is already purged")
            return exitcodes.OK
        if not args.yes and not _confirmed(conn):
            return exitcodes.USAGE
        report = purge(conn.connection_id, destinations=args.destinations, dataset=args.dataset)
    except (InvalidInput, NotFound, ConfigurationError, DestinationError) as exc:
        print(f"xero-elt: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except (AuthServerError, StoreError) as exc:
        print(f"xero-elt: purge of {args.connection} stopped: {exc}; run it again",
              file=sys.stderr)
        return exitcodes.FAILURE
    for destination, tables in report.items():
        total = sum(tables.values())
        print(f"{destination}: {total} rows removed from {len(tables)} tables")
    print(f"purged {conn.connection_id}")
    return exitcodes.OK
