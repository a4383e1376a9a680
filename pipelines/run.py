"""`xero-elt run`: load every connected organisation into the destination, made for cron.

One run: take the lock, decide per organisation which entities are due (``store.schedules``:
suppliers every 5 minutes, accounts hourly, the rest daily, unless a connection has its own
intervals; ``--entities``, ``--full-refresh``, ``--reconcile``, ``--webhook-events`` and first
loads read what they name, as asked), finish load packages a killed run left behind, extract
the organisations' due entities in parallel through the connector's source, load, then write
`sync_runs` and `connections`, update the store, log one line per organisation, and exit with
0 (ok), 1 (failed), 2 (usage), 3 (partial) or 75 (locked).

On the per-organisation layout (Dagster's) a run of several organisations is one run of them
all, through one pipeline whose working folder is private to the run (``_execute_each``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connector.entities import ENTITIES, select_entities
from connector.errors import ConfigurationError
from pipelines import exitcodes, state_rows
from pipelines.bookkeeping import EntityOutcome, RunOutcomes, bookkeeping_resources
from pipelines.destinations import (
    DestinationError,
    DestinationFailed,
    Target,
    check_destination,
    resolve_target,
)
from pipelines.layout import (
    batch_folder,
    batch_pipeline_name,
    configured_layout,
    organisation_pipeline_name,
    pipeline_name,
)
from pipelines.lock import LockHeld, run_lock
from pipelines.runlocks import (
    TurnTakingPipeline,
    give_back_turn,
    keep_turn,
    organisation_locks,
)
from store import ConnectionStatus, LockBusy, Store, StoreError, open_store, schedules

log = logging.getLogger("xero_elt.run")

HISTORY_FILE = "runs.jsonl"
# Events one targeted run takes at most (the rest wait for the next): at 50 IDs a call, 100 calls.
WEBHOOK_EVENTS_PER_RUN = 5000


@dataclass(frozen=True)
class RunOptions:
    """What `xero-elt run` was asked to do."""

    destination: str | None = None
    dataset: str | None = None
    tenants: Sequence[str] | None = None
    entities: Sequence[str] | None = None
    reconcile: bool = False
    full_refresh: bool = False
    wait: float | None = None
    as_json: bool = False
    # None: `[pipelines] layout` (pipelines/layout.py); Dagster asks for "per_organisation".
    layout: str | None = None
    # A targeted supplier read of the contacts named by Xero's pending webhook events.
    webhook_events: bool = False
    # Read per organisation only the entities its schedule says are due (store/schedules.py);
    # False reads every entity named (the demo, benchmarks). Forced runs ignore it: see
    # `scheduled`.
    schedule: bool = True


def scheduled(options: RunOptions) -> bool:
    """Whether this run reads only what is due: a run that names entities, refreshes, reconciles
    or reads webhook events reads what it names; ``[pipelines.schedule] enabled = false``
    turns schedules off."""
    if not options.schedule or options.entities is not None or options.full_refresh \
            or options.reconcile or options.webhook_events:
        return False
    return bool(schedules.settings().enabled)


@dataclass
class RunReport:
    """The outcome of one run: the exit code and the summary `--json` prints."""

    exit_code: int
    summary: dict[str, Any]


def _now() -> datetime:
    return datetime.now(UTC)


def _setup_logging() -> None:
    from connector.logs import setup_logging

    setup_logging()


def run_from_cli(options: RunOptions) -> int:
    """The `xero-elt run` command: run, log, print the JSON summary when asked."""
    _setup_logging()
    report = execute(options)
    if options.as_json:
        json.dump(report.summary, sys.stdout, indent=2, default=str)
        sys.stdout.write("\n")
    return report.exit_code


def execute(options: RunOptions, store: Store | None = None) -> RunReport:
    """Run once with the lock held; never raises for a Xero or destination problem."""
    try:
        try:
            select_entities(options.entities)
        except ConfigurationError as exc:
            raise DestinationError(str(exc)) from None
        target = resolve_target(options.destination, options.dataset)
        layout = configured_layout(options.layout)
        options = replace(options, layout=layout)
        store = store or open_store()
        if layout == "per_organisation" and len(set(options.tenants or ())) != 1:
            return _execute_each(options, target, store)
        name = pipeline_name(target, layout, options.tenants)
    except (DestinationError, StoreError) as exc:
        log.error("%s", exc)
        return RunReport(exitcodes.USAGE, {"outcome": "usage", "error": str(exc)})
    try:
        # The home lock guards the shared pipeline's working dir on this machine; a
        # per-organisation pipeline has a dir of its own, so only the store's organisation lock
        # (taken in _run_locked, on every layout) applies to it.
        home_lock = (run_lock(store.home, options.wait) if layout == "shared"
                     else contextlib.nullcontext())
        with home_lock, contextlib.ExitStack() as held:
            return _run_locked(options, target, store, name, held)
    except (LockHeld, LockBusy) as exc:
        # One line, for cron mail: the other run is doing the work.
        print(f"xero-elt run: {exc}; exiting", file=sys.stderr)
        return RunReport(exitcodes.LOCKED, {"outcome": "locked", "error": str(exc)})
    except OSError as exc:  # the lock file itself cannot be opened (permissions, a directory…)
        message = f"cannot use the run lock {store.home / 'run.lock'}: {exc.strerror or exc}"
        print(f"xero-elt run: {message}", file=sys.stderr)
        return RunReport(exitcodes.FAILURE, {"outcome": "failed", "error": message})


def _execute_each(options: RunOptions, target: Target, store: Store) -> RunReport:
    """Several organisations on the per-organisation layout (a Dagster batch, or
    ``xero-elt run --tenant A --tenant B`` with ``PIPELINES__LAYOUT=per_organisation``): ONE
    run of them all, through one pipeline whose working folder is private to the run
    (``layout.batch_pipeline_name``), so one pre-flight turn and one load package in one load
    turn for the batch. Possible because dlt's state holds nothing per organisation: their
    cursors are memory rows beside the data (``connector.memory.CURSORS_KEY``), written in the
    package they describe. An organisation whose lock another run holds is left out and
    reported ``locked``, the others load; 75 only when every one of them was locked."""
    started = _now()
    clock = time.monotonic()
    try:
        connections = _selected_connections(store, options.tenants)
    except DestinationError as exc:
        log.error("%s", exc)
        return RunReport(exitcodes.USAGE, {"outcome": "usage", "error": str(exc)})
    names = {c.tenant_id: c.organisation_name for c in connections}
    due: dict[str, list[str]] | None = None
    following = None
    if scheduled(options):
        # Asked again by the run under the organisations' locks; here only to take no lock for
        # an organisation with nothing due.
        try:
            planned = schedules.plan(store, target.pipeline_name, connections)
        except schedules.BadSchedule as exc:
            log.error("%s", exc)
            return RunReport(exitcodes.USAGE, {"outcome": "usage", "error": str(exc)})
        due = {t: names for t, rows in planned.items()
               if (names := [r.entity for r in rows if r.due])}
        following = schedules.next_due(planned)
        connections = [c for c in connections if c.tenant_id in due]
    tenants = list(dict.fromkeys(c.tenant_id for c in connections))
    report: RunReport | None = None
    locked: dict[str, str] = {}
    if tenants:
        try:
            with contextlib.ExitStack() as held:
                locked = _hold_available(store, held, tenants, options.wait)
                free = [t for t in tenants if t not in locked]
                if free:
                    workdir = held.enter_context(batch_folder(store.home / "pipelines"))
                    report = _run_locked(replace(options, tenants=free), target, store,
                                         batch_pipeline_name(target), held,
                                         pipelines_dir=workdir, locks_held=True)
        except OSError as exc:
            message = f"cannot make the batch's working folder: {exc.strerror or exc}"
            log.error("%s", message)
            return RunReport(exitcodes.FAILURE, {"outcome": "failed", "error": message})
    elif due is not None:
        log.info("nothing due: every organisation's entities were read within their interval "
                 "(`xero-elt status` shows when each is next due)")
    else:
        log.info("no connected organisations to load (see `xero-elt connections`)")
    summary = dict(report.summary) if report is not None else {}
    organisations = [{**org, "run_id": summary.get("run_id")}
                     for org in summary.get("organisations") or []]
    for tenant, error in locked.items():
        organisations.append({
            "tenant_id": tenant, "organisation_name": names.get(tenant), "run_id": None,
            "outcome": "locked", "rows_loaded": 0, "api_calls": 0, "bytes_received": 0,
            "error": error, "entities": {},
        })
    codes = ([report.exit_code] if report is not None else []) + [exitcodes.LOCKED] * len(
        locked)
    code, overall = _overall(codes) if codes else (exitcodes.OK, "ok")
    if report is not None and report.exit_code != exitcodes.OK and not report.summary.get(
            "organisations"):
        # The run failed as a whole (the destination, a usage error): say so as it did.
        code, overall = report.exit_code, report.summary.get("outcome") or overall
    summary.update({
        "run_id": summary.get("run_id") or started.strftime("%Y%m%dT%H%M%SZ-")
        + secrets.token_hex(3),
        "outcome": overall, "exit_code": code, "started_at": started.isoformat(),
        "duration_s": round(time.monotonic() - clock, 3),
        "destination": target.name, "dataset": target.dataset,
        "pipeline": summary.get("pipeline") or batch_pipeline_name(target),
        "organisations": organisations,
        "token_calls": summary.get("token_calls", 0),
        "connections_calls": summary.get("connections_calls", 0),
        "withdrawn": summary.get("withdrawn", 0),
        "due": None if due is None else (summary.get("due") or {}),
        "options": {"entities": list(options.entities or ENTITIES),
                    "reconcile": options.reconcile, "full_refresh": options.full_refresh,
                    "webhook_events": options.webhook_events},
    })
    if locked and not summary.get("error"):
        summary["error"] = "; ".join(locked.values())
    if due is not None and not tenants:
        summary["next_due_at"] = following.isoformat() if following else None
    log.info("run of %d organisation(s) as one batch, %d locked: %s (%.1f s)", len(tenants),
             len(locked), overall, summary["duration_s"])
    return RunReport(code, summary)


def _hold_available(store: Store, held: contextlib.ExitStack, tenants: list[str],
                    wait: float | None) -> dict[str, str]:
    """Take the locks of those of ``tenants`` no other run holds, kept on ``held`` (one
    ``Store.exclusive``: one session on PostgreSQL, however many organisations); the others,
    with why, are returned (each busy one found costs one more try)."""
    locked: dict[str, str] = {}
    left = list(tenants)
    while left:
        try:
            held.enter_context(store.exclusive(organisation_locks(left), wait))
            return locked
        except LockBusy as exc:
            tenant = exc.name.removeprefix("organisation:")
            if tenant not in left:
                raise
            locked[tenant] = str(exc)
            left.remove(tenant)
    return locked


def _overall(codes: Sequence[int]) -> tuple[int, str]:
    """One exit code for runs of one organisation each."""
    if all(c == exitcodes.OK for c in codes):
        return exitcodes.OK, "ok"
    if all(c == exitcodes.LOCKED for c in codes):
        return exitcodes.LOCKED, "locked"
    if all(c == exitcodes.USAGE for c in codes):
        return exitcodes.USAGE, "usage"
    if any(c in (exitcodes.OK, exitcodes.PARTIAL) for c in codes):
        return exitcodes.PARTIAL, "partial"
    return exitcodes.FAILURE, "failed"


def _selected_connections(store: Store, tenants: Sequence[str] | None) -> list[Any]:
    connected = store.list_connections([ConnectionStatus.CONNECTED])
    if not tenants:
        return connected
    wanted = set(tenants)
    known = {c.tenant_id for c in connected}
    missing = wanted - known
    if missing:
        raise DestinationError(
            "not connected: " + ", ".join(sorted(missing))
            + " (see `xero-elt connections`)"
        )
    return [c for c in connected if c.tenant_id in wanted]


# dlt settings a run defaults to (the environment or dlt's config still win): gzip of dlt's own
# intermediate files cost ~20% of a 100k-supplier load's wall time in the benchmarks, and those
# files live only until the load finishes. (Their size in rows: loading.WRITER_DEFAULTS.)
DLT_DEFAULTS = {
    "DATA_WRITER__DISABLE_COMPRESSION": "true",
    # A loaded package's job files are a copy of the data (bank details, tax numbers, of
    # organisations since disconnected too): dlt deletes them once the package is loaded.
    "LOAD__DELETE_COMPLETED_JOBS": "true",
}


def _run_locked(
    options: RunOptions, target: Target, store: Store, name: str, held: contextlib.ExitStack,
    *, pipelines_dir: Path | None = None, locks_held: bool = False,
) -> RunReport:
    """One run, its organisations' locks kept on ``held`` (LockBusy when another run has one;
    ``locks_held``: the caller holds them already). ``pipelines_dir``: dlt's working folder
    (default ``XERO_ELT_HOME/pipelines``; a batch's is private to it)."""
    import dlt

    for key, value in DLT_DEFAULTS.items():
        os.environ.setdefault(key, value)

    from pipelines.loading import finish_pending, load_organisations

    started = _now()
    run_id = started.strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)
    try:
        connections = _selected_connections(store, options.tenants)
    except DestinationError as exc:
        log.error("%s", exc)
        return RunReport(exitcodes.USAGE, {"run_id": run_id, "outcome": "usage",
                                           "error": str(exc)})
    if not locks_held:
        held.enter_context(store.exclusive(
            organisation_locks([c.tenant_id for c in connections]), options.wait))
    # Read again now that the organisations are ours: a purge (or a disconnect) may have begun
    # while this run waited for them, and a purging organisation is never loaded.
    connections = _still_connected(store, connections)
    events: dict[str, list[Any]] = {}
    if options.webhook_events:
        # Read only now, under the organisations' locks: events that came while a scheduled
        # run held them are included.
        events = _pending_events(store, connections)
        connections = [c for c in connections if c.tenant_id in events]
        if not connections:
            log.info("no pending Xero webhook events to load")
            return RunReport(exitcodes.OK, {"run_id": run_id, "outcome": "ok",
                                            "organisations": [], "webhook_events": 0})
    due: dict[str, list[str]] | None = None
    if scheduled(options):
        # Asked under the organisations' locks: a run that just held them has just read them.
        try:
            planned = schedules.plan(store, target.pipeline_name, connections, started)
        except schedules.BadSchedule as exc:
            log.error("%s", exc)
            return RunReport(exitcodes.USAGE, {"run_id": run_id, "outcome": "usage",
                                               "error": str(exc)})
        due = {t: names for t, rows in planned.items()
               if (names := [r.entity for r in rows if r.due])}
        if connections and not due:
            return _nothing_due(run_id, started, target, planned)
        _log_due(due, len(connections))
        connections = [c for c in connections if c.tenant_id in due]
    pipeline = dlt.pipeline(
        pipeline_name=name,
        destination=target.destination,
        dataset_name=target.dataset,
        pipelines_dir=str(pipelines_dir or store.home / "pipelines"),
        progress=_progress(),
    )
    # Every touch of the destination takes the dataset's turn, the pre-flight too: DuckDB lets
    # one process at a time open its file, so runs side by side (Dagster's) would otherwise
    # fail it while another run loads.
    pipeline = TurnTakingPipeline(pipeline, store, target)
    # The pre-flight's touches (the check, packages left behind, the state check, the memory's
    # migration) share one turn, given back before extracting; the data's load and the
    # bookkeeping's load (with pruning and the views) keep one each (pipelines.runlocks). A
    # kept turn is given back at the end, or on the way out: before the organisations' locks,
    # which `held` took first.
    held.callback(pipeline.give_back_turn)
    pipeline.keep_turn(reads_only=True)
    try:
        check_destination(pipeline, target)  # before any Xero call: a bad setting costs no quota
    except DestinationError as exc:
        print(f"xero-elt run: {exc}", file=sys.stderr)
        return RunReport(exitcodes.USAGE, {"run_id": run_id, "outcome": "usage",
                                           "error": str(exc)})
    except DestinationFailed as exc:
        print(f"xero-elt run: {exc}", file=sys.stderr)
        return RunReport(exitcodes.FAILURE, {"run_id": run_id, "outcome": "failed",
                                             "error": str(exc), "organisations": []})
    entities = ["suppliers"] if options.webhook_events else select_entities(options.entities)
    if due is not None:  # the union of the organisations' due entities, in load order
        entities = select_entities(sorted({e for names in due.values() for e in names}))
    outcomes = RunOutcomes(run_id=run_id)
    legacy = None
    if name == batch_pipeline_name(target):  # cursors an older version kept per organisation
        def legacy(tenants: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
            return state_rows.organisation_cursors(
                pipeline, {t: organisation_pipeline_name(target, t) for t in tenants})
    clock = time.monotonic()
    withdrawn = 0
    try:
        finished = finish_pending(pipeline, target)
        if finished:
            log.info("finished %d load package(s) left by an interrupted run", finished)
        if connections:
            store.update_connections({c.connection_id: {"sync_state": "syncing"}
                                      for c in connections})
            gone = load_organisations(pipeline, target, store, connections, entities, options,
                                      outcomes,
                                      contact_ids=_contact_ids(events) if events else None,
                                      due=due, legacy=legacy)
            if gone:  # purging or disconnected since: no sync_runs, no store update for them
                connections = [c for c in connections if c.tenant_id not in gone]
                withdrawn = len(gone)
            _finish_events(store, events, outcomes)
    except KeyboardInterrupt:
        _interrupted(options, target, store, outcomes, connections, entities, started, clock,
                     due)
        raise
    except Exception as exc:  # a destination or pipeline failure: everything failed
        if isinstance(_root_cause(exc), KeyboardInterrupt):  # dlt wraps Ctrl-C in a step
            _interrupted(options, target, store, outcomes, connections, entities, started,
                         clock, due)
            raise KeyboardInterrupt from None
        log.error("run %s failed: %s", run_id, _one_line(exc))
        seen = {(o.tenant_id, o.entity) for o in outcomes.entities}  # one pass: 1,000s of orgs
        for conn in connections:
            for entity in _entities_of(conn.tenant_id, entities, due):
                if (conn.tenant_id, entity) not in seen:
                    outcomes.entities.append(EntityOutcome(
                        tenant_id=conn.tenant_id, entity=entity,
                        organisation_name=conn.organisation_name, started_at=started,
                        finished_at=_now(), outcome="failed", error=_one_line(exc)))
        for o in outcomes.entities:
            if o.outcome == "ok":
                o.outcome, o.error, o.rows_loaded = "failed", _one_line(exc), 0
    finally:
        _record(pipeline, store, outcomes, connections, target)
        pipeline.give_back_turn()
    report = _report(options, target, outcomes, connections, started, time.monotonic() - clock)
    report.summary["pipeline"] = name
    report.summary["due"] = due
    report.summary["withdrawn"] = withdrawn
    if options.webhook_events:
        report.summary["webhook_events"] = sum(len(v) for v in events.values())
    append_history(store.home, report.summary)
    return report


INTERRUPTED = "interrupted"
INTERRUPTED_ERROR = "interrupted (Ctrl-C) before loading; the next run catches up"


def _entities_of(tenant_id: str, entities: list[str],
                 due: dict[str, list[str]] | None) -> list[str]:
    """The entities this run reads for one organisation: its due ones, or all of the run's."""
    return entities if due is None else select_entities(due.get(tenant_id, []))


def _log_due(due: dict[str, list[str]], organisations: int) -> None:
    """One line for the terminal: what this run reads, by entity."""
    by_entity: dict[str, int] = {}
    for names in due.values():
        for name in names:
            by_entity[name] = by_entity.get(name, 0) + 1
    reading = ", ".join(f"{name} of {count}" for name, count in by_entity.items())
    rest = organisations - len(due)
    log.info("due now: %s organisation(s)%s; %d with nothing due",
             len(due), f" ({reading})" if reading else "", rest)


def _nothing_due(run_id: str, started: datetime, target: Target,
                 planned: dict[str, list[schedules.EntitySchedule]]) -> RunReport:
    """Every organisation was read within its intervals: no pipeline, no Xero call, exit 0."""
    following = schedules.next_due(planned)
    when = f"{following:%Y-%m-%d %H:%M:%S} UTC" if following else "-"
    log.info("nothing due: %d organisation(s) read within their intervals; next due at %s "
             "(`xero-elt status` shows each entity's schedule)", len(planned), when)
    return RunReport(exitcodes.OK, {
        "run_id": run_id, "outcome": "ok", "exit_code": exitcodes.OK,
        "started_at": started.isoformat(), "destination": target.name,
        "dataset": target.dataset, "organisations": [], "due": {},
        "next_due_at": following.isoformat() if following else None,
    })


def _interrupted(options: RunOptions, target: Target, store: Store, outcomes: RunOutcomes,
                 connections: list[Any], entities: list[str], started: datetime,
                 clock: float, due: dict[str, list[str]] | None = None) -> None:
    """Ctrl-C: every entity of the run is ``interrupted`` (nothing of it was loaded; whatever
    dlt extracted stays in its working folder and the next run loads it first), and the run
    goes into the history as interrupted. Quick: no Xero call, no wait for the warehouse."""
    seen = {(o.tenant_id, o.entity) for o in outcomes.entities}
    for conn in connections:
        for entity in _entities_of(conn.tenant_id, entities, due):
            if (conn.tenant_id, entity) not in seen:
                outcomes.entities.append(EntityOutcome(
                    tenant_id=conn.tenant_id, entity=entity,
                    organisation_name=conn.organisation_name, started_at=started,
                    finished_at=_now(), outcome=INTERRUPTED, error=INTERRUPTED_ERROR))
    for o in outcomes.entities:
        o.outcome, o.error, o.rows_loaded = INTERRUPTED, INTERRUPTED_ERROR, 0
    summary = {"run_id": outcomes.run_id, "outcome": INTERRUPTED,
               "started_at": started.isoformat(),
               "duration_s": round(time.monotonic() - clock, 1),
               "destination": target.name, "dataset": target.dataset,
               "organisations": [{"tenant_id": c.tenant_id,
                                  "organisation_name": c.organisation_name,
                                  "outcome": INTERRUPTED} for c in connections]}
    append_history(store.home, summary)
    log.debug("run %s interrupted; recorded as such", outcomes.run_id)


def _still_connected(store: Store, connections: list[Any]) -> list[Any]:
    """Those of ``connections`` still connected in the store."""
    connected = {c.connection_id for c in store.list_connections([ConnectionStatus.CONNECTED])}
    left = [c for c in connections if c.connection_id in connected]
    if len(left) < len(connections):
        log.info("%d organisation(s) stopped being connected while this run waited for them "
                 "(purged or disconnected); they are left out", len(connections) - len(left))
    return left


def _pending_events(store: Store, connections: list[Any]) -> dict[str, list[Any]]:
    """Per connected organisation, its pending CONTACT events (organisations without any left
    out)."""
    events = {}
    for conn in connections:
        pending = store.pending_xero_events(conn.tenant_id, limit=WEBHOOK_EVENTS_PER_RUN)
        if pending:
            events[conn.tenant_id] = pending
    return events


def _contact_ids(events: dict[str, list[Any]]) -> dict[str, list[str]]:
    """The contacts a targeted read fetches: each once, however many events named it."""
    return {tenant: sorted({e.resource_id for e in mine}) for tenant, mine in events.items()}


def _finish_events(store: Store, events: dict[str, list[Any]], outcomes: RunOutcomes) -> None:
    """Mark processed the events of organisations whose suppliers loaded (the load has
    committed by now); a failed organisation's stay pending for the next targeted run."""
    for tenant_id, mine in events.items():
        done = [o for o in outcomes.entities
                if o.tenant_id == tenant_id and o.entity == "suppliers"]
        if done and all(o.outcome == "ok" for o in done):
            store.finish_xero_events(mine, "processed")


def _progress() -> Any:
    """dlt's progress display on stderr when a person watches; nothing for cron."""
    if not sys.stderr.isatty():
        return None
    from dlt.common.runtime.collector import LogCollector

    # stdout stays clean for --json.
    return LogCollector(log_period=2.0, logger=sys.stderr, dump_system_stats=False)


def _root_cause(exc: BaseException) -> BaseException:
    """The innermost exception: dlt wraps the real cause (a full disk, a refused connection)."""
    seen = {id(exc)}
    while True:
        inner = (getattr(exc, "exception", None) or getattr(exc, "inner_exc", None)
                 or exc.__cause__)
        if not isinstance(inner, BaseException) or id(inner) in seen:
            return exc
        seen.add(id(inner))
        exc = inner


def _one_line(exc: BaseException) -> str:
    """One line for logs and sync_runs: the step that failed, then the root cause."""
    root = _root_cause(exc)
    cause = " ".join(str(root).split()) or type(root).__name__
    if len(cause) > 400:  # causes are often at the end of long messages: keep both ends
        cause = f"{cause[:150]} … {cause[-250:]}"
    step = getattr(exc, "step", None)
    if root is exc:
        return cause
    prefix = f"{step} step failed: " if step else ""
    return f"{prefix}{type(root).__name__}: {cause}"


def _by_tenant(outcomes: RunOutcomes) -> dict[str, list[EntityOutcome]]:
    """The run's outcomes per tenant (one pass: a run may cover 1,000 organisations)."""
    grouped: dict[str, list[EntityOutcome]] = {}
    for item in outcomes.entities:
        grouped.setdefault(item.tenant_id, []).append(item)
    return grouped


def _update_store(store: Store, outcomes: RunOutcomes, connections: list[Any],
                  target: Target) -> None:
    """Each connection's sync state, last sync time and rows, and each entity's last successful
    read into this destination and dataset (what schedules count from), from this run's
    outcomes; they run after the load, so a read is recorded only once its rows are in."""
    finished = _now()
    store.record_entity_reads(target.pipeline_name, {
        (o.tenant_id, o.entity): o.started_at for o in outcomes.entities if o.outcome == "ok"})
    by_tenant = _by_tenant(outcomes)
    changes: dict[str, dict[str, Any]] = {}
    for conn in connections:
        mine = by_tenant.get(conn.tenant_id, [])
        if not mine:
            changes[conn.connection_id] = {"sync_state": None}
            continue
        if any(o.outcome == INTERRUPTED for o in mine):  # not a failure: nothing to report
            changes[conn.connection_id] = {"sync_state": None, "last_sync_outcome": INTERRUPTED}
            continue
        failed = [o for o in mine if o.outcome != "ok"]
        fields: dict[str, Any] = {
            "sync_state": "failed" if failed else "synced",
            "last_sync_outcome": "partial" if failed and len(failed) < len(mine)
            else ("failed" if failed else "ok"),
        }
        if not failed or len(failed) < len(mine):
            fields["last_synced_at"] = finished
            fields["last_sync_rows"] = sum(o.rows_loaded for o in mine)
        changes[conn.connection_id] = fields
    store.update_connections(changes)  # one transaction, not one per organisation


def _record(pipeline: Any, store: Store, outcomes: RunOutcomes, connections: list[Any],
            target: Target) -> None:
    """Write sync_runs and connections into the destination, and sync results into the store."""
    give_back_turn(pipeline)  # the store's updates and the bookkeeping's extraction: local work
    try:
        _update_store(store, outcomes, connections, target)
    except StoreError as exc:
        # The warehouse may hold the rows, but what we know about them could not be kept.
        log.error("%s", exc)
        for item in outcomes.entities:
            if item.outcome == "ok":
                item.outcome, item.error = "failed", f"the store could not be updated: {exc}"
        return
    from auth_server.invites import expire_stale_invites

    try:
        expire_stale_invites(store)  # so lapsed invites read `expired` in the table too
        _write_bookkeeping(pipeline, bookkeeping_resources(outcomes, store.list_connections()),
                           target)
    except Exception as exc:
        log.error("could not write sync_runs/connections: %s", _one_line(exc))
        return
    try:
        state_rows.prune(pipeline)
    except Exception as exc:  # the next run prunes again; nothing is lost meanwhile
        log.warning("could not prune dlt's older state copies: %s", _one_line(exc))
    from pipelines.analyst import create_views

    try:
        create_views(pipeline)
    except Exception as exc:
        log.error("could not create the analyst views: %s", _one_line(exc))


def _write_bookkeeping(pipeline: Any, resources: list[Any], target: Target) -> None:
    """``pipeline.run(resources)`` with only the load in the dataset's turn (kept for pruning
    and the views after it): extracting and normalizing a few rows is local work, and in a
    batch of per-organisation runs every second in the turn is paid by every organisation
    waiting for it. A killed run leaves the package for the next run's ``finish_pending``.

    In the run's file format, as the data: DuckDB's preferred insert_values spent 7.6 s
    parsing the INSERT statements of 1,000 organisations' 4,000 sync_runs rows (py-spy)."""
    give_back_turn(pipeline)
    pipeline.extract(resources, loader_file_format=target.loader_file_format)
    pipeline.normalize()
    keep_turn(pipeline)
    pipeline.load()


def _report(
    options: RunOptions,
    target: Target,
    outcomes: RunOutcomes,
    connections: list[Any],
    started: datetime,
    seconds: float,
) -> RunReport:
    organisations = []
    failed_orgs = ok_orgs = 0
    by_tenant = _by_tenant(outcomes)
    for conn in connections:
        mine = by_tenant.get(conn.tenant_id, [])
        bad = [o for o in mine if o.outcome not in ("ok", "skipped")]
        outcome = "ok" if not bad else ("deferred" if all(
            o.outcome == "deferred" for o in bad) else "failed")
        if bad:
            failed_orgs += 1
        else:
            ok_orgs += 1
        rows = sum(o.rows_loaded for o in mine)
        calls = sum(o.api_calls for o in mine)
        received = sum(o.bytes_received for o in mine)
        error = "; ".join(f"{o.entity}: {o.error}" for o in bad if o.error)
        line = (f"{conn.organisation_name or conn.tenant_id} ({conn.tenant_id}): {outcome}, "
                f"{rows} rows, {calls} API calls")
        if error:
            line += f" — {error}"
        (log.info if outcome == "ok" else log.error)("%s", line)
        organisations.append({
            "tenant_id": conn.tenant_id,
            "organisation_name": conn.organisation_name,
            "connection_id": conn.connection_id,
            "outcome": outcome,
            "rows_loaded": rows,
            "api_calls": calls,
            "bytes_received": received,
            "error": error or None,
            "entities": {
                o.entity: {
                    "rows_loaded": o.rows_loaded,
                    "api_calls": o.api_calls,
                    "bytes_received": o.bytes_received,
                    "bytes_decoded": o.bytes_decoded,
                    "skipped_records": o.skipped_records,
                    "duration_s": round((o.finished_at - o.started_at).total_seconds(), 3),
                    "outcome": o.outcome,
                    "error": o.error,
                }
                for o in mine
            },
        })
    if not connections:
        log.info("no connected organisations to load (see `xero-elt connections`)")
    if failed_orgs == 0:
        code, overall = exitcodes.OK, "ok"
    elif ok_orgs:
        code, overall = exitcodes.PARTIAL, "partial"
    else:
        code, overall = exitcodes.FAILURE, "failed"
    summary = {
        "run_id": outcomes.run_id,
        "outcome": overall,
        "exit_code": code,
        "started_at": started.isoformat(),
        "duration_s": round(seconds, 3),
        "destination": target.name,
        "dataset": target.dataset,
        "pipeline": target.pipeline_name,
        "organisations": organisations,
        "token_calls": outcomes.token_calls,
        "connections_calls": outcomes.connections_calls,
        "options": {"entities": ["suppliers"] if options.webhook_events
                    else list(options.entities or ENTITIES),
                    "reconcile": options.reconcile, "full_refresh": options.full_refresh,
                    "webhook_events": options.webhook_events},
    }
    log.info("run %s: %s (%d organisation(s), %.1f s)", outcomes.run_id, overall,
             len(connections), seconds)
    return RunReport(code, summary)


def append_history(home: Path, summary: dict[str, Any]) -> None:
    """Keep the run's summary in XERO_ELT_HOME/runs.jsonl for `xero-elt status`."""
    try:
        with open(home / HISTORY_FILE, "a", encoding="utf-8") as fh:
            os.fchmod(fh.fileno(), 0o600)  # a file from before umask 077 was 0644
            fh.write(json.dumps(summary, default=str) + "\n")
    except OSError as exc:
        log.warning("could not append to the run history: %s", exc.strerror)


def read_history(home: Path, limit: int = 50) -> list[dict[str, Any]]:
    """The last `limit` run summaries, oldest first (unreadable lines are skipped)."""
    path = home / HISTORY_FILE
    if not path.exists():
        return []
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines()[-limit:]:
        try:
            runs.append(json.loads(line))
        except ValueError:
            continue
    return runs
