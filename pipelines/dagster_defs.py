"""Dagster definitions: every connected Xero organisation is a partition of one job.

    dagster dev -m pipelines.dagster_defs          # or dagster-webserver + dagster-daemon

- ``xero_organisations``: dynamic partitions keyed by tenant id, one per connected organisation;
- ``xero_organisations_sensor``: keeps them in step with the store — a new connection adds a
  partition and asks for its first load, one no longer connected loses its partition (its
  history stays in Dagster's event log);
- ``xero_hourly``: a run per organisation every hour;
- ``xero_sync_job``: materialises the five tables of one organisation.

A partition runs what ``xero-elt run --tenant ID`` runs (``pipelines.run.execute``), with the
per-organisation pipeline layout (``pipelines/layout.py``): same source, store, ``sync_runs``
and ``connections`` rows, the store's organisation lock. We do not use dagster-dlt's
``@dlt_assets``: it runs the dlt pipeline itself, which would be a second loading path beside
the one with our locks, bookkeeping and exit meanings.

Concurrency: at most one run per organisation comes from the store's organisation lock (every
worker sees it) and, so runs queue rather than fail, from a run tag limit on ``dagster/partition``
in ``dagster.yaml``; the pool ``xero_organisations`` caps the organisations loading at once
(docs/deploy.md has both).
"""

# No `from __future__ import annotations`: Dagster reads the config class from the annotations.
import logging
from collections.abc import Iterator, Sequence
from datetime import timedelta
from typing import Any

import dagster as dg
from dlt.common.configuration import configspec, resolve_configuration
from dlt.common.configuration.specs import BaseConfiguration

from connector.entities import ENTITY_TABLE
from connector.settings import ENTITIES as TABLES
from pipelines import exitcodes
from pipelines.run import RunOptions, RunReport, execute
from store import ConnectionStatus, open_store

log = logging.getLogger("xero_elt.dagster")

PARTITIONS = "xero_organisations"
POOL = "xero_organisations"
ORGANISATION_TAG = "xero_elt/organisation"
organisations = dg.DynamicPartitionsDefinition(name=PARTITIONS)

# The entity of `xero-elt run --entities` that loads each table: options come with categories.
ENTITY_OF = {table: ENTITY_TABLE[table].comes_with or table for table in TABLES}
# The hourly schedule's runs are late after three hours without a load (two missed ticks).
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=3),
                                           warn_window=timedelta(hours=2))


@configspec
class DagsterSettings(BaseConfiguration):
    """``[pipelines.dagster]``: when the schedule and the sensor run."""

    schedule_cron: str = "0 * * * *"
    """The cron of ``xero_hourly`` (hourly; ``PIPELINES__DAGSTER__SCHEDULE_CRON``)."""
    sensor_interval_seconds: int = 30
    """How often the sensor compares partitions with the store
    (``PIPELINES__DAGSTER__SENSOR_INTERVAL_SECONDS``)."""


SETTINGS = resolve_configuration(DagsterSettings(), sections=("pipelines", "dagster"))


class XeroRunConfig(dg.Config):
    """The options of `xero-elt run` a Dagster run may set (None: the configured default)."""

    destination: str | None = None
    dataset: str | None = None
    reconcile: bool = False
    full_refresh: bool = False


def table_key(table: str) -> dg.AssetKey:
    """The asset of one table: ``xero/<table>``."""
    return dg.AssetKey(["xero", table])


SPECS = [
    dg.AssetSpec(
        table_key(table), description=f"The `{table}` table of dataset xero, every organisation.",
        # A day's call budget defers a table without failing the run: no materialisation then.
        skippable=True, kinds={"dlt", "xero"}, group_name="xero", freshness_policy=FRESHNESS,
        deps=[table_key(ENTITY_TABLE[table].comes_with)] if ENTITY_TABLE[table].comes_with
        else None,
    )
    for table in TABLES
]


def entities_for(selected: Sequence[dg.AssetKey]) -> list[str]:
    """The `--entities` a materialisation of these tables needs, in load order."""
    tables = {key.path[-1] for key in selected}
    return list(dict.fromkeys(ENTITY_OF[t] for t in TABLES if t in tables))


def _results(report: RunReport, tables: Sequence[str]) -> Iterator[dg.MaterializeResult]:
    """A materialisation per table its entity loaded; raises Failure when one failed."""
    summary = report.summary
    if report.exit_code in (exitcodes.USAGE, exitcodes.LOCKED) or not summary.get(
        "organisations"
    ):
        raise dg.Failure(f"xero-elt run exited {report.exit_code}: "
                         f"{summary.get('error') or summary.get('outcome')}")
    org = summary["organisations"][0]
    failed: list[str] = []
    for table in tables:
        entity = org["entities"].get(ENTITY_OF[table], {})
        outcome = entity.get("outcome")
        if outcome == "ok":
            yield dg.MaterializeResult(asset_key=table_key(table), metadata={
                "tenant_id": org["tenant_id"], "run_id": summary["run_id"],
                "entity_rows_loaded": entity.get("rows_loaded", 0),
                "entity_api_calls": entity.get("api_calls", 0),
            })
        elif outcome in ("deferred", "skipped"):
            # Xero's day limit (or our budget): the next run carries on, nothing is wrong here.
            log.warning("%s of %s %s: %s", table, org["tenant_id"], outcome, entity.get("error"))
        else:
            failed.append(f"{table}: {entity.get('error') or outcome}")
    if failed:
        raise dg.Failure(f"organisation {org['tenant_id']}: " + "; ".join(failed),
                         metadata={"run_id": summary["run_id"]})


@dg.multi_asset(specs=SPECS, partitions_def=organisations, can_subset=True, pool=POOL,
                name="xero_organisation_tables")
def xero_organisation_tables(
    context: dg.AssetExecutionContext, config: XeroRunConfig
) -> Iterator[dg.MaterializeResult]:
    """One organisation's tables, loaded by `xero-elt run --tenant <partition>`."""
    tables = [t for t in TABLES if table_key(t) in context.selected_asset_keys]
    report = execute(RunOptions(
        destination=config.destination, dataset=config.dataset,
        tenants=[context.partition_key], entities=entities_for(
            [table_key(t) for t in tables]),
        reconcile=config.reconcile, full_refresh=config.full_refresh,
        layout="per_organisation",
    ))
    context.log.info("xero-elt run %s: exit %d, %s", report.summary.get("run_id"),
                     report.exit_code, report.summary.get("outcome"))
    yield from _results(report, tables)


xero_sync_job = dg.define_asset_job(
    "xero_sync_job", selection=dg.AssetSelection.assets(xero_organisation_tables),
    description="Every table of one organisation (a partition per connected organisation).",
    # One step per run: a subprocess per step (the default) would only add its start-up.
    executor_def=dg.in_process_executor,
)


def connected_tenants() -> dict[str, str]:
    """The store's connected organisations: tenant id → when it was (last) connected."""
    store = open_store()
    try:
        found = store.list_connections([ConnectionStatus.CONNECTED])
    finally:
        store.close()
    return {c.tenant_id: str(c.connected_at) for c in found if c.tenant_id}


def _run_request(tenant_id: str, run_key: str) -> dg.RunRequest:
    return dg.RunRequest(run_key=run_key, partition_key=tenant_id,
                         tags={ORGANISATION_TAG: tenant_id})


@dg.sensor(job=xero_sync_job, minimum_interval_seconds=SETTINGS.sensor_interval_seconds,
           default_status=dg.DefaultSensorStatus.RUNNING)
def xero_organisations_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Partitions follow the store: add the newly connected (with a first load), drop the rest."""
    wanted = connected_tenants()
    known = set(context.instance.get_dynamic_partitions(PARTITIONS))
    added = [t for t in wanted if t not in known]
    removed = sorted(known - set(wanted))
    requests: list[Any] = []
    if added:
        requests.append(organisations.build_add_request(added))
    if removed:
        requests.append(organisations.build_delete_request(removed))
    return dg.SensorResult(
        # The run key makes a first load once per connection, however often the sensor runs;
        # an organisation that reconnects (a new connected_at) gets a first load again.
        run_requests=[_run_request(t, f"first-load:{t}:{wanted[t]}") for t in added],
        dynamic_partitions_requests=requests,
        skip_reason=None if requests else "partitions match the connected organisations",
    )


@dg.schedule(job=xero_sync_job, cron_schedule=SETTINGS.schedule_cron, name="xero_hourly",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def xero_hourly(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest] | dg.SkipReason:
    """A run per organisation (partition) every hour (``schedule_cron``), except where one is
    still queued: it has not started, so it will read everything this tick would. Without this
    a pass that takes longer than the interval would pile up a queue without end."""
    tick = context.scheduled_execution_time.isoformat()
    waiting = _queued_partitions(context.instance)
    wanted = [t for t in context.instance.get_dynamic_partitions(PARTITIONS) if t not in waiting]
    if not wanted and waiting:
        return dg.SkipReason(f"every organisation already has a run queued ({len(waiting)})")
    return [_run_request(t, f"hourly:{tick}:{t}") for t in wanted]


def _queued_partitions(instance: dg.DagsterInstance) -> set[str]:
    """Organisations with a run of the job that has not started yet."""
    records = instance.get_run_records(dg.RunsFilter(
        job_name=xero_sync_job.name,
        statuses=[dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED]))
    return {r.dagster_run.tags[ORGANISATION_TAG] for r in records
            if ORGANISATION_TAG in r.dagster_run.tags}


defs = dg.Definitions(
    assets=[xero_organisation_tables],
    jobs=[xero_sync_job],
    sensors=[xero_organisations_sensor],
    schedules=[xero_hourly],
)
