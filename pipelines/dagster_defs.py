"""Dagster definitions: every connected Xero organisation is a partition; a run loads a batch.

    dagster dev -m pipelines.dagster_defs          # or dagster-webserver + dagster-daemon

- ``xero_organisations``: dynamic partitions keyed by tenant id, one per connected organisation
  (status, history, backfills and alerts per customer);
- ``xero_organisations_sensor``: keeps them in step with the store — a new connection adds a
  partition and, unless its first load already ran or runs (the auth server starts one when
  the customer confirms), asks for it; one no longer connected loses its partition (its
  history stays in Dagster's event log);
- ``xero_hourly``: every five minutes (``schedule_cron``), the organisations with an entity due
  (``store.schedules``, the question ``xero-elt run`` asks), in runs of up to ``batch_size``;
  each run reads only what is due for each of its organisations. The name is older than
  schedules per entity; CONVENTIONS fixes it. One schedule, not one per interval: the
  intervals are per organisation and entity (defaults, a customer's own), so a cron per
  interval could not express them, and two schedules would ask for the same organisations;
  the tick is only the clock's resolution, and a tick with nothing due launches nothing;
- ``xero_sync_job``: materialises the five tables of the run's organisations.

Batches. A Python process per run costs seconds before any work (docs/benchmarks.md), so the
schedule and the sensor ask for runs over up to ``batch_size`` (100) partitions at once, by
Dagster's partition-range tags ``dagster/asset_partition_range_start`` / ``…_end`` — what
Dagster's docs give for one run over many partitions, and the one of its mechanisms a schedule
and a sensor can use (``BackfillPolicy.multi_run`` applies to backfills only, and a run request
has no list of keys). A range covers every key between its ends in the partitions' order (the
order they were added), so batches are blocks of neighbours in that order (``batches``). A
batch of one asks by ``partition_key``, as before.

Inside a run, one process runs what ``xero-elt run --tenant A --tenant B …`` runs
(``pipelines.run.execute``) on the per-organisation layout (``pipelines/layout.py``): a dlt
pipeline per organisation, side by side in threads, each with its own ``sync_runs`` rows and
organisation lock. Each organisation's tables are materialised on its own partition (metadata:
``organisation`` — its name —, tenant id, rows, API calls, outcome); one that failed gets an
observation saying why on its partition, and the run then fails, which is how Dagster marks a
partition failed: planned by a failed run and not materialised — only that organisation's. We
do not use dagster-dlt's ``@dlt_assets``: it runs the dlt pipeline itself, which would be a
second loading path beside the one with our locks, bookkeeping and exit meanings.

Run tags: Dagster's (``dagster/partition``, or the range's ends) say which partitions, and
``xero_elt/organisations`` their names, cut to ``NAMES_TAG_CHARS``. No tag lists a batch's tenant
ids: Dagster's PostgreSQL storage indexes tags of at most 2,704 bytes, a list of 100 ids (37
characters each) is longer, and a run request whose tag is refused never starts.

Concurrency: at most one run per organisation comes from the store's organisation locks (every
worker sees them); the schedule leaves out organisations a queued or running run already
covers, and a run tag limit on ``dagster/partition`` in ``dagster.yaml`` queues single-partition
runs (a backfill's, a launch from the UI); the pool ``xero_organisations`` caps the runs
loading at once (docs/deploy.md has both).
"""

# No `from __future__ import annotations`: Dagster reads the config class from the annotations.
import hashlib
import logging
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import timedelta
from typing import Any

import dagster as dg
from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration

from connector.entities import ENTITY_TABLE
from connector.errors import ConfigurationError
from connector.settings import ENTITIES as TABLES
from pipelines import exitcodes
from pipelines.destinations import target_key
from pipelines.run import RunOptions, RunReport, execute
from store import Connection, ConnectionStatus, open_store, schedules, utcnow

log = logging.getLogger("xero_elt.dagster")

PARTITIONS = "xero_organisations"
POOL = "xero_organisations"
# A run's organisations' names, for people (the partitions are Dagster's own tags).
ORGANISATIONS_TAG = "xero_elt/organisations"
NAMES_TAG_CHARS = 200
# Dagster's own tags for a run over a range of partitions (dagster/_core/storage/tags.py).
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
organisations = dg.DynamicPartitionsDefinition(name=PARTITIONS)

# The entity of `xero-elt run --entities` that loads each table: options come with categories.
ENTITY_OF = {table: ENTITY_TABLE[table].comes_with or table for table in TABLES}


def freshness(table: str) -> dg.FreshnessPolicy:
    """A table is late after two of its default intervals without a load (warned after one
    and a half), and never sooner than two and three hours: a five-minute table must not flap
    for a slow pass. (Dagster's policy is per table; a customer's own interval is not in it.)"""
    every = timedelta(minutes=schedules.ScheduleSettings().minutes(ENTITY_OF[table]))
    return dg.FreshnessPolicy.time_window(fail_window=max(every * 2, timedelta(hours=3)),
                                          warn_window=max(every * 3 / 2, timedelta(hours=2)))


@configspec
class DagsterSettings(BaseConfiguration):
    """``[pipelines.dagster]``: when the schedule and the sensor run."""

    schedule_cron: str = "*/5 * * * *"
    """The cron of ``xero_hourly``: how often it asks what is due (every five minutes, the
    shortest default interval; ``PIPELINES__DAGSTER__SCHEDULE_CRON``)."""
    sensor_interval_seconds: int = 30
    """How often the sensor compares partitions with the store
    (``PIPELINES__DAGSTER__SENSOR_INTERVAL_SECONDS``)."""
    batch_size: int = 100
    """Organisations (partitions) one run of the schedule or the sensor loads at most, side by
    side in one process (``PIPELINES__DAGSTER__BATCH_SIZE``); 1 is a run per organisation.
    Dagster's advice for 1,000+ partitions is 50–100 a run."""

    def on_resolved(self) -> None:
        if self.batch_size < 1:
            raise ConfigurationError(
                f"pipelines.dagster.batch_size must be at least 1 (1 is a run per "
                f"organisation), got {self.batch_size}")


SETTINGS = resolve_configuration(DagsterSettings(), sections=("pipelines", "dagster"))


class XeroRunConfig(dg.Config):
    """The options of `xero-elt run` a Dagster run may set (None: the configured default)."""

    destination: str | None = None
    dataset: str | None = None
    reconcile: bool = False
    full_refresh: bool = False
    schedule: bool = False
    """Read per organisation only what is due (what the schedule's runs ask); a run launched
    by hand, a backfill or a first load reads every selected table."""


def table_key(table: str) -> dg.AssetKey:
    """The asset of one table: ``xero/<table>``."""
    return dg.AssetKey(["xero", table])


SPECS = [
    dg.AssetSpec(
        table_key(table), description=f"The `{table}` table of dataset xero, every organisation.",
        # A day's call budget defers a table without failing the run: no materialisation then.
        skippable=True, kinds={"dlt", "xero"}, group_name="xero",
        freshness_policy=freshness(table),
        deps=[table_key(ENTITY_TABLE[table].comes_with)] if ENTITY_TABLE[table].comes_with
        else None,
    )
    for table in TABLES
]


def entities_for(selected: Sequence[dg.AssetKey]) -> list[str]:
    """The `--entities` a materialisation of these tables needs, in load order."""
    tables = {key.path[-1] for key in selected}
    return list(dict.fromkeys(ENTITY_OF[t] for t in TABLES if t in tables))


def _table_metadata(org: dict[str, Any], entity: dict[str, Any]) -> dict[str, Any]:
    """What a table's materialisation (or failure) on one organisation's partition says."""
    metadata: dict[str, Any] = {
        "organisation": org.get("organisation_name") or org["tenant_id"],
        "tenant_id": org["tenant_id"],
        "run_id": org.get("run_id") or "",
        "outcome": entity.get("outcome") or org.get("outcome") or "failed",
        "entity_rows_loaded": entity.get("rows_loaded", 0),
        "entity_api_calls": entity.get("api_calls", 0),
        "organisation_rows_loaded": org.get("rows_loaded", 0),
        "organisation_api_calls": org.get("api_calls", 0),
        "entity_bytes_received": entity.get("bytes_received", 0),
        "organisation_bytes_received": org.get("bytes_received", 0),
    }
    if entity.get("error") or org.get("error"):
        metadata["error"] = str(entity.get("error") or org.get("error"))
    return metadata


def _events(report: RunReport, tables: Sequence[str]) -> Iterator[
        dg.AssetMaterialization | dg.AssetObservation]:
    """Per organisation (partition) and table: a materialisation when its entity loaded, an
    observation saying why when it did not; raises Failure at the end when any failed.

    Why a Failure: Dagster (1.13, ``build_failed_and_in_progress_partition_subset``) marks a
    partition failed when a run that planned it ended in failure without materialising it. The
    run therefore fails when an organisation failed, and only the partitions it did not
    materialise show failed; the batch's other organisations show their materialisations."""
    summary = report.summary
    due = summary.get("due")
    if report.exit_code == exitcodes.OK and due == {}:
        return  # nothing was due by the time the run started: nothing to materialise
    if report.exit_code in (exitcodes.USAGE, exitcodes.LOCKED) or not summary.get(
        "organisations"
    ):
        raise dg.Failure(f"xero-elt run exited {report.exit_code}: "
                         f"{summary.get('error') or summary.get('outcome')}")
    failed: list[str] = []
    for org in summary["organisations"]:
        tenant = org["tenant_id"]
        name = org.get("organisation_name") or tenant
        for table in tables:
            if due is not None and ENTITY_OF[table] not in due.get(tenant, [ENTITY_OF[table]]):
                continue  # not due for this organisation: not read, nothing to say
            entity = org["entities"].get(ENTITY_OF[table], {})
            metadata = _table_metadata(org, entity)
            outcome = metadata["outcome"]
            if outcome == "ok":
                yield dg.AssetMaterialization(table_key(table), partition=tenant,
                                              metadata=metadata)
                continue
            yield dg.AssetObservation(table_key(table), partition=tenant, metadata=metadata)
            if outcome in ("deferred", "skipped"):
                # Xero's day limit (or our budget): the next run carries on, nothing is wrong.
                log.warning("%s of %s (%s) %s: %s", table, name, tenant, outcome,
                            entity.get("error"))
            else:
                failed.append(f"{name} ({tenant}) {table}: {metadata.get('error') or outcome}")
    if failed:
        raise dg.Failure(f"{len(failed)} table(s) failed: " + "; ".join(failed[:20]),
                         metadata={"run_id": summary.get("run_id") or ""})


@dg.multi_asset(specs=SPECS, partitions_def=organisations, can_subset=True, pool=POOL,
                name="xero_organisation_tables")
def xero_organisation_tables(
    context: dg.AssetExecutionContext, config: XeroRunConfig
) -> Iterator[dg.AssetMaterialization | dg.AssetObservation]:
    """The tables of the run's organisations (one partition, or a range of them), loaded by
    ``xero-elt run --tenant A --tenant B …`` in this process, one pipeline per organisation."""
    tables = [t for t in TABLES if table_key(t) in context.selected_asset_keys]
    keys = list(context.partition_keys)
    connected = connected_organisations()
    # Disconnected since the run was asked for (the sensor drops its partition next): left
    # out, or `execute` would refuse the whole batch for one unknown tenant.
    tenants = [k for k in keys if k in connected]
    for gone in (k for k in keys if k not in connected):
        context.log.warning("organisation %s is no longer connected: not loaded", gone)
    if not tenants:
        return
    # A schedule's run of every table reads what is due (RunOptions.schedule); a subset of
    # the tables is asked for by name, which reads them.
    every_table = len(tables) == len(TABLES)
    report = execute(RunOptions(
        destination=config.destination, dataset=config.dataset,
        tenants=tenants,
        entities=None if config.schedule and every_table
        else entities_for([table_key(t) for t in tables]),
        reconcile=config.reconcile, full_refresh=config.full_refresh,
        layout="per_organisation", schedule=config.schedule,
    ))
    context.log.info("xero-elt run of %d organisation(s): exit %d, %s", len(tenants),
                     report.exit_code, report.summary.get("outcome"))
    yield from _events(report, tables)


xero_sync_job = dg.define_asset_job(
    "xero_sync_job", selection=dg.AssetSelection.assets(xero_organisation_tables),
    description="Every table of a batch of organisations (a partition per connected "
                "organisation; a run covers one partition or a range of them).",
    # One step per run: a subprocess per step (the default) would only add its start-up.
    executor_def=dg.in_process_executor,
)


def connected_organisations() -> dict[str, Connection]:
    """The store's connected organisations: tenant id → its connection record."""
    store = open_store()
    try:
        found = store.list_connections([ConnectionStatus.CONNECTED])
    finally:
        store.close()
    return {c.tenant_id: c for c in found if c.tenant_id}


def batches(order: Sequence[str], wanted: Collection[str], size: int) -> list[list[str]]:
    """``wanted`` cut into runs of at most ``size`` partitions, each a block of neighbours in
    ``order`` (the partitions definition's order): a range tag pair covers every key between
    its ends in that order, so a block must never span a key that is not wanted."""
    found: list[list[str]] = []
    block: list[str] = []
    for key in order:
        if key in wanted:
            block.append(key)
            if len(block) >= max(size, 1):
                found.append(block)
                block = []
        elif block:
            found.append(block)
            block = []
    if block:
        found.append(block)
    return found


def names_tag(names: Sequence[str]) -> str:
    """Organisation names for a run tag, cut to what a person reads in the runs list."""
    text = ""
    for i, name in enumerate(names):
        more = f", … (+{len(names) - i} more)"
        candidate = f"{text}, {name}" if text else name
        if len(candidate) + len(more) > NAMES_TAG_CHARS and i < len(names) - 1:
            return (text or name[:NAMES_TAG_CHARS]) + more
        text = candidate
    return text


def batch_request(keys: Sequence[str], names: dict[str, str], run_key: str,
                  run_config: dict[str, Any] | None = None) -> dg.RunRequest:
    """One run over these partitions (neighbours in the partitions' order): a single one by
    ``partition_key`` (so ``dagster/partition`` and its run tag limit apply), several by
    Dagster's partition-range tags. Our tag names the organisations."""
    tags = {ORGANISATIONS_TAG: names_tag([names.get(k) or k for k in keys])}
    if len(keys) == 1:
        return dg.RunRequest(run_key=run_key, partition_key=keys[0], tags=tags,
                             run_config=run_config or {})
    return dg.RunRequest(run_key=run_key, run_config=run_config or {}, tags={
        **tags, RANGE_START_TAG: keys[0], RANGE_END_TAG: keys[-1]})


def run_partitions(tags: Mapping[str, str], order: Sequence[str]) -> list[str]:
    """The organisations (partitions) a run of ``xero_sync_job`` covers, from its tags: its
    partition, or every key between its range's ends in ``order`` (the partitions' order,
    ``instance.get_dynamic_partitions``). New partitions are appended, so a range never gains
    keys; an end since removed (a disconnected organisation) leaves the ends still known."""
    if tags.get("dagster/partition"):
        return [tags["dagster/partition"]]
    ends = [tags.get(RANGE_START_TAG), tags.get(RANGE_END_TAG)]
    if not all(ends):
        return []
    where = {key: i for i, key in enumerate(order)}
    if all(end in where for end in ends):
        return list(order[where[ends[0]]:where[ends[1]] + 1])
    return [end for end in ends if end in where]


def needs_first_load(conn: Connection) -> bool:
    """False when this connection's first load already ran or is running (the auth server
    starts one when the customer confirms; a `xero-elt run` may have too), so a new connection
    gets exactly one: ``syncing`` means a run has it now, and a sync since ``connected_at``
    means one loaded it. A first load that failed outright leaves neither, and is asked for."""
    if conn.sync_state == "syncing":
        return False
    return not (conn.last_synced_at and conn.connected_at
                and conn.last_synced_at >= conn.connected_at)


@dg.sensor(job=xero_sync_job, minimum_interval_seconds=SETTINGS.sensor_interval_seconds,
           default_status=dg.DefaultSensorStatus.RUNNING)
def xero_organisations_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Partitions follow the store: add the newly connected (with a first load in runs of up to
    ``batch_size``, unless theirs already ran or runs), drop the rest."""
    wanted = connected_organisations()
    known = set(context.instance.get_dynamic_partitions(PARTITIONS))
    added = [t for t in wanted if t not in known]  # appended to the partitions in this order
    removed = sorted(known - set(wanted))
    requests: list[Any] = []
    if added:
        requests.append(organisations.build_add_request(added))
    if removed:
        requests.append(organisations.build_delete_request(removed))
    first = {t for t in added if needs_first_load(wanted[t])}
    names = {t: c.organisation_name or t for t, c in wanted.items()}
    # The run key makes a first load once per connection, however often the sensor runs; an
    # organisation that reconnects (a new connected_at) gets a first load again.
    run_requests = [
        batch_request(block, names, "first-load:" + _digest(
            f"{t}:{wanted[t].connected_at}" for t in block))
        for block in batches(added, first, SETTINGS.batch_size)
    ]
    return dg.SensorResult(
        run_requests=run_requests, dynamic_partitions_requests=requests,
        skip_reason=None if requests else "partitions match the connected organisations",
    )


def _digest(parts: Iterable[str]) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:24]


@dg.schedule(job=xero_sync_job, cron_schedule=SETTINGS.schedule_cron, name="xero_hourly",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def xero_hourly(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    """The organisations (partitions) with an entity due (``store.schedules.due``, the same
    question ``xero-elt run`` asks), every ``schedule_cron``, in runs of up to ``batch_size``
    that read only what is due; except those a run already covers that has not finished: a
    queued one will read what this tick would, and a running one holds their organisation
    locks (a second batch would be refused them). Without this a pass longer than the interval
    would pile up a queue without end."""
    tick = context.scheduled_execution_time.isoformat()
    order = context.instance.get_dynamic_partitions(PARTITIONS)
    busy = _busy_partitions(context.instance, order)
    connected = connected_organisations()
    wanted = {t for t in order if t not in busy}
    if not wanted and busy:
        return dg.SkipReason(f"every organisation already has a run under way ({len(busy)})")
    run_config: dict[str, Any] = {}
    if schedules.settings().enabled:
        # A partition the store no longer knows is left to the run (which skips it) and the
        # sensor (which drops it).
        not_due = set(connected) - set(_due(list(connected.values())))
        wanted -= not_due
        if not wanted:
            return dg.SkipReason(f"nothing due: {len(not_due)} organisation(s) read within "
                                 "their intervals (`xero-elt schedule show`)")
        run_config = {"ops": {xero_organisation_tables.op.name: {"config": {"schedule": True}}}}
    names = {t: c.organisation_name or t for t, c in connected.items()}
    return [batch_request(block, names, f"hourly:{tick}:{block[0]}:{len(block)}", run_config)
            for block in batches(order, wanted, SETTINGS.batch_size)]


def _due(connections: list[Connection]) -> dict[str, list[str]]:
    """What is due now per organisation, for the runs' default destination and dataset."""
    store = open_store()
    try:
        return schedules.due(store, target_key(), connections, utcnow())
    finally:
        store.close()


def _busy_partitions(instance: dg.DagsterInstance, order: Sequence[str]) -> set[str]:
    """Organisations with a run of the job that is queued or under way."""
    records = instance.get_run_records(dg.RunsFilter(
        job_name=xero_sync_job.name,
        statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED,
                  dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]))
    return {key for r in records for key in run_partitions(r.dagster_run.tags, order)}


defs = dg.Definitions(
    assets=[xero_organisation_tables],
    jobs=[xero_sync_job],
    sensors=[xero_organisations_sensor],
    schedules=[xero_hourly],
)
