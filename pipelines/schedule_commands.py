"""`xero-elt schedule show|set|clear`: how often each entity of an organisation is read.

The defaults are settings (``[pipelines.schedule]``, ``store.schedules.ScheduleSettings``); a
connection's own intervals (a customer on a premium plan) are kept in the store, so every
machine's runs and Dagster's schedule honour them. The platform sets the same through
``PUT /api/v1/connections/{id}/schedule``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from pipelines import exitcodes
from store import Connection, ConnectionStatus, Store, StoreError, open_store, schedules


def add_parser(sub: Any) -> None:
    """Add `schedule` to the command tree."""
    schedule = sub.add_parser("schedule", help="how often each entity of an organisation is read")
    actions = schedule.add_subparsers(dest="schedule_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="each organisation's intervals and next due times")
    _which(show, required=False)
    show.add_argument("--destination", help="whose last reads (default from config: duckdb)")
    show.add_argument("--dataset", help="dataset (default xero)")
    show.add_argument("--json", action="store_true", help="one JSON document on stdout")
    put = actions.add_parser("set", help="an organisation's own interval for one entity")
    _which(put, required=True)
    put.add_argument("--entity", required=True,
                     help="suppliers, accounts, tax_rates or tracking_categories")
    put.add_argument("--every", required=True, metavar="INTERVAL",
                     help="5m, 90m, 1h, 1d (at least 1 minute, at most 30 days)")
    clear = actions.add_parser("clear", help="back to the defaults (one entity, or all)")
    _which(clear, required=True)
    clear.add_argument("--entity", help="only this entity (default: every override)")


def _which(parser: argparse.ArgumentParser, *, required: bool) -> None:
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("--tenant", metavar="ID", help="the organisation's Xero tenant id")
    group.add_argument("--connection", metavar="ID", help="the connection_id (con_…)")


def schedule_from_cli(args: argparse.Namespace) -> int:
    """Run one `schedule` action; 2 for bad input (unknown entity or connection, bad interval)."""
    store = open_store()
    try:
        conn = _connection(store, args.tenant, args.connection)
        if args.schedule_command == "set":
            minutes = schedules.parse_every(args.every)
            store.set_schedule(conn.connection_id, {schedules.check_entity(args.entity): minutes})
            print(f"{_name(conn)}: {args.entity} every {schedules.every_text(minutes)}")
        elif args.schedule_command == "clear":
            if args.entity:
                store.set_schedule(conn.connection_id,
                                   {schedules.check_entity(args.entity): None})
                print(f"{_name(conn)}: {args.entity} back to the default")
            else:
                count = store.clear_schedule(conn.connection_id)
                print(f"{_name(conn)}: {count} override(s) cleared; the defaults apply")
        else:
            return _show(store, conn, args)
    except (schedules.BadSchedule, LookupError) as exc:
        print(f"xero-elt schedule: {exc}", file=sys.stderr)
        return exitcodes.USAGE
    except StoreError as exc:
        print(f"xero-elt schedule: {exc}", file=sys.stderr)
        return exitcodes.FAILURE
    finally:
        store.close()
    return exitcodes.OK


def _connection(store: Store, tenant: str | None, connection_id: str | None) -> Any:
    """The connection named by ``--connection`` or ``--tenant`` (its connected record, else its
    latest); None when neither is given. LookupError when there is none."""
    if connection_id:
        try:
            return store.get_connection(connection_id)
        except StoreError:
            raise LookupError(f"unknown connection {connection_id!r} "
                              "(see `xero-elt connections`)") from None
    if tenant:
        found = store.connections_for_tenant(tenant)
        if not found:
            raise LookupError(f"no connection for tenant {tenant!r} "
                              "(see `xero-elt connections`)")
        connected = [c for c in found if c.status == ConnectionStatus.CONNECTED]
        return (connected or found)[-1]
    return None


def _name(conn: Connection) -> str:
    return f"{conn.organisation_name or conn.company} ({conn.connection_id})"


def describe(store: Store, target: str, connections: list[Connection]) -> list[dict[str, Any]]:
    """Each connection's schedule, JSON-ready: per entity its interval, whether it is the
    connection's own, its last read into ``target`` and when it is next due."""
    planned = schedules.plan(store, target, connections)
    overrides = store.schedule_overrides()
    config = schedules.settings()
    found = []
    for conn in connections:
        rows = planned.get(conn.tenant_id or "")
        if rows is None:  # no organisation yet: its intervals only
            mine = overrides.get(conn.connection_id, {})
            entities = {e: {"every_minutes": mine.get(e, config.minutes(e)),
                            "overridden": e in mine, "last_read_at": None, "next_due_at": None,
                            "due": None} for e in schedules.scheduled_entities()}
        else:
            entities = {r.entity: r.summary() for r in rows}
        found.append({"connection_id": conn.connection_id, "tenant_id": conn.tenant_id,
                      "organisation_name": conn.organisation_name or conn.company,
                      "status": conn.status, "entities": entities})
    return found


def compact(entities: dict[str, dict[str, Any]]) -> str:
    """One line of a schedule: ``suppliers 5m (due now), accounts 1h* (next 12:55) …``; a star
    marks the organisation's own interval."""
    parts = []
    for entity, row in entities.items():
        every = schedules.every_text(row["every_minutes"]) + ("*" if row["overridden"] else "")
        if row["due"] is None:
            when = ""
        elif row["due"]:
            when = " (due now)"
        else:
            when = f" (next {str(row['next_due_at'])[:16].replace('T', ' ')})"
        parts.append(f"{entity} {every}{when}")
    return ", ".join(parts)


def _show(store: Store, conn: Connection | None, args: argparse.Namespace) -> int:
    from pipelines.destinations import target_key

    target = target_key(args.destination, args.dataset)
    if conn is not None:
        connections = [conn]
    else:
        with_overrides = set(store.schedule_overrides())
        connections = [c for c in store.list_connections()
                       if c.status == ConnectionStatus.CONNECTED
                       or c.connection_id in with_overrides]
    config = schedules.settings()
    doc = {"target": target,
           "defaults": {e: config.minutes(e) for e in schedules.scheduled_entities()},
           "enabled": bool(config.enabled),
           "organisations": describe(store, target, connections)}
    if args.json:
        json.dump(doc, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
        return exitcodes.OK
    defaults = ", ".join(f"{e} {schedules.every_text(m)}" for e, m in doc["defaults"].items())
    print(f"Defaults ([pipelines.schedule]): {defaults}"
          + ("" if config.enabled else " — schedules are off (enabled = false)"))
    if not connections:
        print("No connected organisations.")
    for org in doc["organisations"]:
        print(f"{org['connection_id']}  {org['organisation_name']} ({org['status']})")
        print(f"    {compact(org['entities'])}")
    print("* the organisation's own interval (`xero-elt schedule clear` restores the default)")
    return exitcodes.OK
