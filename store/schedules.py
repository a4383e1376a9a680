"""How often each entity of each organisation is read, and when it was last read.

Three things decide what a run reads (``due``), for ``xero-elt run`` (cron) and Dagster's
schedule alike:

- the defaults, typed settings under ``[pipelines.schedule]`` (``ScheduleSettings``): suppliers
  every 5 minutes, accounts hourly, tax rates and tracking categories daily;
- a connection's overrides (a customer on a premium plan), kept in the store
  (``schedule_overrides``), set by ``xero-elt schedule set`` or ``PUT /api/v1/connections/{id}/
  schedule``;
- the last successful read of each organisation and entity, per destination and dataset
  (``entity_reads``, keyed by the shared pipeline name ``xero_<destination>_<dataset>``),
  written by every run from the same outcomes as ``sync_runs``.

Why the store and not the destination's ``sync_runs`` (which holds the same facts): the question
is asked every five minutes by cron and by Dagster's daemon, and a run with nothing due should
not touch the warehouse at all. DuckDB lets one process at a time open its file, so the daemon
asking it would queue behind loads; the store answers in one indexed query from any machine.
The row is written only after the load committed, so it never claims data the warehouse lacks.

An entity is due when its interval has passed since its last successful read, less a little
(``early_seconds``): a tick that starts a few seconds earlier than the last one's read began
must not skip a whole interval.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration

from store.records import from_text, to_text, utcnow

MIN_MINUTES = 1
# A refresh token dies after 60 days unused: a schedule must read at least twice as often.
MAX_MINUTES = 30 * 24 * 60


@functools.cache
def scheduled_entities() -> tuple[str, ...]:
    """The entities with a schedule of their own, from the entity table (tracking options come
    with their categories). Imported when asked: the table brings the pydantic models, which
    commands that merely open the store should not pay for."""
    from connector.entities import ENTITY_TABLE

    return tuple(e.name for e in ENTITY_TABLE.values() if e.comes_with is None)


class BadSchedule(ValueError):
    """An interval or entity that a schedule cannot take; the message says which and why."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@configspec
class ScheduleSettings(BaseConfiguration):
    """``[pipelines.schedule]``: how often each entity is read, for every organisation without
    an override of its own (``xero-elt schedule set``)."""

    enabled: bool = True
    """False: every run reads every entity it names, as before schedules existed
    (``PIPELINES__SCHEDULE__ENABLED``)."""
    suppliers_minutes: int = 5
    """Suppliers every so many minutes (``PIPELINES__SCHEDULE__SUPPLIERS_MINUTES``); Xero's
    webhooks stay the fastest path for them."""
    accounts_minutes: int = 60
    """Accounts (``PIPELINES__SCHEDULE__ACCOUNTS_MINUTES``)."""
    tax_rates_minutes: int = 1440
    """Tax rates: Xero offers no incremental read of them (``…__TAX_RATES_MINUTES``)."""
    tracking_categories_minutes: int = 1440
    """Tracking categories with their options: no incremental read either
    (``…__TRACKING_CATEGORIES_MINUTES``)."""
    early_seconds: int = 60
    """An entity counts as due this long before its time (at most a fifth of its interval),
    so a cron tick a little earlier than the last read's start does not skip an interval."""

    def minutes(self, entity: str) -> int:
        """The default interval of ``entity``, checked."""
        value = int(getattr(self, f"{entity}_minutes"))
        check_minutes(value, f"[pipelines.schedule] {entity}_minutes")
        return value


def settings() -> ScheduleSettings:
    """``[pipelines.schedule]`` as configured."""
    return resolve_configuration(ScheduleSettings(), sections=("pipelines", "schedule"))


def check_entity(entity: str) -> str:
    """``entity`` if it has a schedule, else ``BadSchedule`` naming the choices."""
    if entity not in scheduled_entities():
        from connector.entities import ENTITY_TABLE

        extra = (f" ({entity} comes with {ENTITY_TABLE[entity].comes_with})"
                 if entity in ENTITY_TABLE else "")
        raise BadSchedule(f"unknown entity {entity!r}{extra}; choose from "
                          f"{', '.join(scheduled_entities())}", field=entity)
    return entity


def check_minutes(value: Any, what: str) -> int:
    """A whole number of minutes from 1 to 30 days, else ``BadSchedule``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise BadSchedule(f"{what}: the interval must be a whole number of minutes, "
                          f"not {value!r}")
    if value < MIN_MINUTES:
        raise BadSchedule(f"{what}: the interval must be at least 1 minute, not {value!r}")
    if value > MAX_MINUTES:
        raise BadSchedule(f"{what}: the interval must be at most 30 days ({MAX_MINUTES} "
                          "minutes): a Xero refresh token unused for 60 days dies")
    return int(value)


_EVERY = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "": 60, "h": 3600, "d": 86400}


def parse_every(text: str) -> int:
    """``5m``, ``90m``, ``1h``, ``1d``, ``300s`` or a bare number of minutes → minutes."""
    found = _EVERY.match(text or "")
    if not found:
        raise BadSchedule(f"--every {text!r}: write a number and a unit, e.g. 5m, 1h or 1d")
    seconds = int(found[1]) * _UNIT_SECONDS[found[2].lower()]
    if seconds < 60:
        raise BadSchedule(f"--every {text}: the interval must be at least 1 minute")
    if seconds % 60:
        raise BadSchedule(f"--every {text}: the interval must be whole minutes")
    return check_minutes(seconds // 60, f"--every {text}")


def every_text(minutes: int) -> str:
    """Minutes for a person: ``5m``, ``1h``, ``1d``, ``90m``."""
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


@dataclass(frozen=True)
class EntitySchedule:
    """One organisation's entity: its interval, whence, and when it is next due."""

    entity: str
    every_minutes: int
    overridden: bool
    last_read_at: datetime | None
    next_due_at: datetime | None  # None: due now (never read here, or a first load)
    due: bool

    def summary(self) -> dict[str, Any]:
        """JSON-ready (``xero-elt status --json``, ``schedule show --json``)."""
        return {"every_minutes": self.every_minutes, "overridden": self.overridden,
                "last_read_at": to_text(self.last_read_at),
                "next_due_at": to_text(self.next_due_at), "due": self.due}


def plan(store: Any, target: str, connections: Sequence[Any], now: datetime | None = None,
         config: ScheduleSettings | None = None) -> dict[str, list[EntitySchedule]]:
    """Per connection's organisation (tenant id), each scheduled entity's interval and next due
    time, for the destination and dataset ``target`` (the shared pipeline name). Two queries,
    whatever the number of organisations. A connection never loaded is due in full."""
    now = now or utcnow()
    config = config or settings()
    defaults = {e: config.minutes(e) for e in scheduled_entities()}
    overrides = store.schedule_overrides()
    reads = store.entity_reads(target)
    found: dict[str, list[EntitySchedule]] = {}
    for conn in connections:
        if not conn.tenant_id:
            continue
        mine = overrides.get(conn.connection_id, {})
        first = conn.last_synced_at is None
        rows = []
        for entity in scheduled_entities():
            every = mine.get(entity, defaults[entity])
            last = None if first else reads.get((conn.tenant_id, entity))
            if last is None:
                rows.append(EntitySchedule(entity, every, entity in mine, None, None, True))
                continue
            next_due = last + timedelta(minutes=every)
            early = min(timedelta(seconds=config.early_seconds), timedelta(minutes=every) / 5)
            rows.append(EntitySchedule(entity, every, entity in mine, last, next_due,
                                       now >= next_due - early))
        found[conn.tenant_id] = rows
    return found


def due(store: Any, target: str, connections: Sequence[Any],
        now: datetime | None = None) -> dict[str, list[str]]:
    """The entities due now per organisation (tenant id), only organisations with any."""
    return {tenant: names for tenant, rows in plan(store, target, connections, now).items()
            if (names := [r.entity for r in rows if r.due])}


def next_due(planned: Mapping[str, list[EntitySchedule]]) -> datetime | None:
    """The earliest time anything of ``planned`` becomes due."""
    return min((r.next_due_at for rows in planned.values() for r in rows if r.next_due_at),
               default=None)


class ScheduleQueries:
    """The schedules' queries, mixed into ``Store`` (which supplies ``_read`` and ``_write``)."""

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Mapping[str, Any]]:
        raise NotImplementedError

    def _write(self) -> Any:
        raise NotImplementedError

    def schedule_overrides(self) -> dict[str, dict[str, int]]:
        """Every connection's overrides: {connection id: {entity: minutes}}."""
        found: dict[str, dict[str, int]] = {}
        for row in self._read("SELECT connection_id, entity, every_minutes"
                              " FROM schedule_overrides"):
            found.setdefault(row["connection_id"], {})[row["entity"]] = int(row["every_minutes"])
        return found

    def set_schedule(self, connection_id: str, every: Mapping[str, int | None]) -> None:
        """Set (minutes) or clear (None) a connection's overrides, all in one transaction.

        Raises:
            BadSchedule: an entity without a schedule, or an interval out of bounds.
        """
        checked = {check_entity(e): None if m is None else check_minutes(m, e)
                   for e, m in every.items()}
        now = to_text(utcnow())
        with self._write() as tx:
            for entity, minutes in sorted(checked.items()):
                if minutes is None:
                    tx.execute("DELETE FROM schedule_overrides WHERE connection_id = ?"
                               " AND entity = ?", (connection_id, entity))
                    continue
                tx.execute(
                    "INSERT INTO schedule_overrides (connection_id, entity, every_minutes,"
                    " updated_at) VALUES (?, ?, ?, ?) ON CONFLICT (connection_id, entity)"
                    " DO UPDATE SET every_minutes = excluded.every_minutes,"
                    " updated_at = excluded.updated_at",
                    (connection_id, entity, minutes, now))

    def clear_schedule(self, connection_id: str) -> int:
        """Drop every override of a connection; how many there were."""
        with self._write() as tx:
            return int(tx.execute("DELETE FROM schedule_overrides WHERE connection_id = ?",
                                  (connection_id,)))

    def entity_reads(self, target: str) -> dict[tuple[str, str], datetime]:
        """When each (tenant id, entity) was last read successfully into ``target``."""
        rows = self._read("SELECT tenant_id, entity, read_at FROM entity_reads WHERE target = ?",
                          (target,))
        return {(r["tenant_id"], r["entity"]): from_text(r["read_at"])  # type: ignore[misc]
                for r in rows}

    def record_entity_reads(self, target: str,
                            reads: Mapping[tuple[str, str], datetime]) -> None:
        """Keep the successful reads of a run (never moving a read back in time)."""
        if not reads:
            return
        with self._write() as tx:
            for (tenant_id, entity), when in sorted(reads.items()):
                tx.execute(
                    "INSERT INTO entity_reads (target, tenant_id, entity, read_at)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (target, tenant_id, entity) DO UPDATE"
                    " SET read_at = excluded.read_at"
                    " WHERE excluded.read_at > entity_reads.read_at",
                    (target, tenant_id, entity, to_text(when)))


__all__ = ["MAX_MINUTES", "MIN_MINUTES", "BadSchedule", "EntitySchedule",
           "ScheduleQueries", "ScheduleSettings", "check_entity", "check_minutes", "due",
           "every_text", "next_due", "parse_every", "plan", "scheduled_entities", "settings"]
