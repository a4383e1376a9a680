"""The dlt part of a run: finish what a killed run left, keep grants alive, extract and load.

Kept apart from `run.py` so the lock and usage checks never import the connector's source.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.errors import XeroError
from connector.settings import load_settings
from pipelines import state_rows
from pipelines.bookkeeping import EntityOutcome, RunOutcomes
from pipelines.destinations import Target
from pipelines.layout import first_loads_per_package
from pipelines.runlocks import give_back_turn, keep_turn
from store import Store, lifecycle
from store.token_provider import StoreTokens, access_token_for

log = logging.getLogger("xero_elt.run")

# Refresh tokens die after 60 days unused; a run rotates any it touches that is older than this.
KEEPALIVE_AFTER = timedelta(days=1)
# Above this many extracted rows, normalize runs in NORMALIZE_WORKERS processes.
PARALLEL_NORMALIZE_ROWS = 20_000
NORMALIZE_WORKERS = 2
# Below this many extracted rows the extract step's heap is small: handing it back to the system
# (a full gc and malloc_trim, 0.2 s a run with many threads) is not worth it.
RELEASE_MEMORY_ROWS = 5_000
# dlt's load jobs at once. DuckDB runs one statement at a time anyway (threads=1), and jobs side
# by side share its memory_limit: with a table of its own per child list, 100,000 suppliers'
# copy and merge jobs together ran out of DuckDB's 100 MB one load in three.
DUCKDB_LOAD_WORKERS = 1
LOAD_WORKERS = 20  # dlt's default
# Bounded slices: dlt starts a new intermediate file every so many rows of a table and writes
# its buffers out at fewer, so extract and normalize hold a bounded slice of a large load rather
# than all of it (normalize peaked at 423 MB for 25,000 suppliers in one file; 214 MB in
# slices). That was dlt's normalizer reading rows; Arrow tables skip it, and a parquet file is
# written a buffer at a time, so their files are ten times larger: 100,000 suppliers went from
# 34.0 to 30.4 s (CPU 33.7 -> 29.8 s, peak RSS 492 -> 487 MB), fewer files to rotate and load.
# With history (rows through the normalizer) the smaller files stay. A configured value
# (`[data_writer]`, `DATA_WRITER__...`) wins.
WRITER_DEFAULTS: dict[str, int] = {"data_writer.file_max_items": 50_000,
                                   "data_writer.buffer_max_items": 1_000}
NORMALIZED_FILE_MAX_ITEMS = 5_000
# glibc gives every thread that allocates an arena of its own (up to 8 per core); the pages the
# reading threads decoded stay in their arenas, freed but resident, through the load. Two arenas
# keep that bounded (``MALLOC_ARENA_MAX`` set in the environment wins). With Arrow on the system
# allocator (``_bounded_allocators``) peak RSS went 491/498 -> 472/479 MB at 100,000 suppliers and
# 429 -> 415 MB at 200 organisations x 200; no change at 20,000 (~435) or 200,000 (527/526).
MALLOC_ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter
# glibc serves a large block (DuckDB's buffers, Arrow's columns, a decoded page) from the heap
# once a block that size has been freed (its mmap threshold rises up to 32 MB), and freed heap is
# not handed back while anything above it lives. A fixed threshold keeps every block of 128 KB
# or more its own mapping, returned when freed: a first load of 300 organisations in slices
# peaked at 386 MB against 401 and 411 MB (``MALLOC_MMAP_THRESHOLD_`` in the environment wins).
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3


def finish_pending(pipeline: Any, target: Target) -> int:
    """Normalize and load packages a killed run left behind; how many there were."""
    pending = len(pipeline.list_extracted_load_packages()) + len(
        pipeline.list_normalized_load_packages()
    )
    if _interrupted_mid_load(pipeline):
        # Jobs that had started when the run died would run again on resume, into staging
        # tables dlt does not empty twice: the merge then copies the rows twice into tables
        # with child tables. Abort instead; the local state rolls back with the package, so
        # this run reads that data from Xero again and merges it by key, exactly once.
        log.warning("the interrupted run was killed while loading; its package is dropped and "
                    "its data read from Xero again")
        pipeline.abort_packages()
        return pending
    if pipeline.has_pending_data:
        # The file format travels with the extracted package; normalize follows it.
        try:
            pipeline.normalize()
        except Exception as exc:
            if not _normalize_failed_for_good(exc):
                raise
            # Data the destination can never take (e.g. an amount no decimal column holds):
            # retrying the same package would fail every run from now on. Abort it, which also
            # rolls the local state back, so the next extraction reads that data from Xero again.
            log.error("a pending load package cannot be normalized, dropping it (its data will "
                      "be read from Xero again): %s", _job_message(exc))
            pipeline.abort_packages()
            return pending
        try:
            pipeline.load()
        except Exception as exc:
            if not _load_failed_for_good(exc):
                raise
            # A package the destination refuses for good (a job it rejects, a table dropped
            # under it, a purge that died halfway in an older release) would otherwise fail
            # every run of every organisation from now on. Abort it: dlt rolls the state back
            # and this run reads that data from Xero again.
            log.error("a pending load package cannot be loaded, dropping it (its data will be "
                      "read from Xero again): %s", _job_message(exc))
            pipeline.abort_packages()
    return pending


def _interrupted_mid_load(pipeline: Any) -> bool:
    """A normalized package with jobs a killed run had started but not finished."""
    for load_id in pipeline.list_normalized_load_packages():
        jobs = pipeline.get_load_package_info(load_id).jobs
        if jobs.get("started_jobs"):
            return True
    return False


def _normalize_failed_for_good(exc: BaseException) -> bool:
    """A normalize step that failed on a job's data (not on the environment, e.g. the disk)."""
    from dlt.normalize.exceptions import NormalizeJobFailed
    from dlt.pipeline.exceptions import PipelineStepFailed

    return (isinstance(exc, PipelineStepFailed) and exc.step == "normalize"
            and isinstance(exc.exception, NormalizeJobFailed))


def _load_failed_for_good(exc: BaseException) -> bool:
    """A load step that failed for a reason retrying the same package cannot fix."""
    from dlt.common.exceptions import TerminalException
    from dlt.pipeline.exceptions import PipelineStepFailed

    return (isinstance(exc, PipelineStepFailed) and exc.step == "load"
            and isinstance(exc.exception, TerminalException))


def _job_message(exc: BaseException) -> str:
    inner = getattr(exc, "exception", exc)
    text = getattr(inner, "failed_message", None) or str(inner)
    return " ".join(str(text).split())[:300]


def stale_grants(store: Store, connections: list[Any]) -> bool:
    """Whether a grant of these connections was not refreshed within a day."""
    now = datetime.now(UTC)
    for grant_id in {c.grant_id for c in connections if c.grant_id}:
        with contextlib.suppress(Exception):  # keep_grants_alive reports it
            if now - store.get_grant(grant_id).refreshed_at > KEEPALIVE_AFTER:
                return True
    return False


def keep_grants_alive(store: Store, connections: list[Any], outcomes: RunOutcomes) -> set[str]:
    """Rotate every touched grant not refreshed within a day; the tenants whose grant is dead."""
    settings = load_settings()
    dead: set[str] = set()
    now = datetime.now(UTC)
    for grant_id in sorted({c.grant_id for c in connections if c.grant_id}):
        try:
            grant = store.get_grant(grant_id)
            if now - grant.refreshed_at > KEEPALIVE_AFTER:
                # Passing the current token as rejected forces one refresh (with rotation).
                access_token_for(store, settings, grant_id, rejected=grant.access_token)
                outcomes.token_calls += 1
        except XeroError as exc:
            log.error("grant %s: %s", grant_id, exc)
            dead.update(c.tenant_id for c in connections if c.grant_id == grant_id)
    return dead


def load_organisations(
    pipeline: Any,
    target: Target,
    store: Store,
    connections: list[Any],
    entities: list[str],
    options: Any,
    outcomes: RunOutcomes,
    *,
    contact_ids: dict[str, list[str]] | None = None,
    due: dict[str, list[str]] | None = None,
    legacy: Callable[[list[str]], dict[tuple[str, str], dict[str, Any]]] | None = None,
) -> set[str]:
    """Extract and load the organisations' entities, recording an outcome per (tenant, entity).

    ``legacy`` reads cursors an older version kept outside this pipeline's state, for the
    organisations whose memory has none (a batch's first run: their pipelines' states).

    ``contact_ids`` makes it a targeted supplier read of those contacts (webhook events);
    ``due`` (per tenant id, the entities its schedule says are due) narrows each organisation
    to its own entities.
    Returns the tenants left out because a purge of theirs began while the run extracted them:
    their rows were never loaded.
    """
    if stale_grants(store, connections):
        give_back_turn(pipeline)  # a refresh calls Xero: not in the dataset's turn
    keep_grants_alive(store, connections, outcomes)
    settings = load_settings()
    withdrawn: set[str] = set()
    for group in load_groups(connections, first_loads_per_package()):
        withdrawn |= _load_group(pipeline, target, store, group, entities, options, outcomes,
                                 settings, contact_ids, due, legacy)
    return withdrawn


def load_groups(connections: list[Any], first_loads: int) -> list[list[Any]]:
    """The load packages of a run: every organisation loaded before in one, then those never
    loaded (``last_synced_at`` unset) in slices of ``first_loads``."""
    known = [c for c in connections if c.last_synced_at is not None]
    new = [c for c in connections if c.last_synced_at is None]
    groups = [known] if known else []
    groups += [new[start:start + first_loads] for start in range(0, len(new), first_loads)]
    return groups


def _load_group(pipeline: Any, target: Target, store: Store, connections: list[Any],
                entities: list[str], options: Any, outcomes: RunOutcomes, settings: Any,
                contact_ids: dict[str, list[str]] | None,
                due: dict[str, list[str]] | None = None,
                legacy: Callable[[list[str]], dict[tuple[str, str], dict[str, Any]]]
                | None = None) -> set[str]:
    """One load package of organisations (again without those a purge took meanwhile)."""
    from connector import make_source
    from connector.memory import DestinationMemory
    from connector.stats import SyncStats

    remaining = list(connections)
    withdrawn: set[str] = set()
    while remaining:
        stats = SyncStats()
        # The memory's migration and the state check share one turn (none on PostgreSQL).
        keep_turn(pipeline, reads_only=True)
        memory = DestinationMemory(pipeline)
        # Before the extraction gives the dataset's turn back: the migration is a write.
        memory.prepare(settings.history)
        # The organisations' cursors, in one query while the turn is held (the source asks the
        # memory for them when it opens, and gets this answer).
        try:
            have = {tenant for tenant, _ in memory.cursors([c.tenant_id for c in remaining])}
            missing = [c.tenant_id for c in remaining if c.tenant_id not in have]
            if legacy is not None and missing:
                memory.adopt(legacy(missing))
        finally:
            memory.close()
        source = make_source(
            tenants=[c.tenant_id for c in remaining],
            entities=entities,
            reconcile=options.reconcile,
            full_refresh=options.full_refresh,
            tokens=StoreTokens(store, settings),
            settings=settings,
            stats=stats,
            contact_ids=contact_ids,
            due=None if due is None else {c.tenant_id: due.get(c.tenant_id, [])
                                          for c in remaining},
            # Read through the run's pipeline: its SQL client takes the dataset's load turn
            # (pipelines.runlocks), so no other process has the DuckDB file open meanwhile.
            memory=memory,
        )
        tenants = {c.tenant_id for c in remaining}
        gone: set[str] = set()
        try:
            gone = _extract_normalize_load(pipeline, source, stats, target, tenants,
                                           lambda t=tenants: being_purged(store, t),
                                           normalized=bool(settings.history))
        finally:
            record_access_lost(store, stats)
            if not gone:
                _collect(stats, remaining, outcomes)
        if not gone:
            break
        # Extracted but not loaded: dlt rolled its state back, so the others are read again.
        log.warning("%d organisation(s) began to be purged during this run; nothing of theirs "
                    "was loaded, the others are extracted again", len(gone))
        withdrawn |= gone
        remaining = [c for c in remaining if c.tenant_id not in gone]
    return withdrawn


def being_purged(store: Store, tenants: set[str]) -> set[str]:
    """Those of ``tenants`` being purged: a connection of theirs is ``purging``, or none names
    them any more (a purge clears the tenant id when it ends). An organisation this very run
    found needing reconnection is not among them: what it read before is still theirs to load.
    """
    statuses: dict[str | None, set[str]] = {}
    for conn in store.list_connections():
        statuses.setdefault(conn.tenant_id, set()).add(conn.status)
    return {t for t in tenants if t not in statuses or "purging" in statuses[t]}


def record_access_lost(store: Store, stats: Any) -> None:
    """Write what the connector reported Xero took away into the connections' statuses.

    A connection still ``connected`` on the grant (and tenant, if one is named) becomes
    ``needs_reconnection`` or ``disconnected``, so later runs leave it alone until an admin
    connects it again.
    """
    now = datetime.now(UTC)
    for lost in stats.access_lost():
        if lost.tenant_id is None:
            candidates = store.list_connections(statuses=["connected"])
        else:
            candidates = store.connections_for_tenant(lost.tenant_id)
        for connection in candidates:
            if connection.status != "connected":
                continue
            if lost.tenant_id is None and connection.grant_id != lost.grant_id:
                continue
            if connection.grant_id not in (None, lost.grant_id):
                continue
            fields: dict[str, Any] = {"status_reason": lost.reason}
            if lost.status == "disconnected":
                event = lifecycle.Event.XERO_DISCONNECTED
                fields["disconnected_at"] = now
            else:
                event = lifecycle.Event.ACCESS_LOST
            with contextlib.suppress(lifecycle.TransitionRefused):  # changed meanwhile
                lifecycle.apply(store, connection.connection_id, event, **fields)


def _extract_normalize_load(pipeline: Any, source: Any, stats: Any, target: Target,
                            tenants: set[str], withdrawn: Callable[[], set[str]],
                            normalized: bool = False) -> set[str]:
    """What `pipeline.run(source)` does, with normalize's workers chosen by the size extracted,
    and a last look at the store before loading: when ``withdrawn()`` names organisations (a
    purge began meanwhile), the package is aborted instead and they are returned.
    ``normalized``: some rows go through dlt's normalizer (history), in smaller files.

    Two normalize processes cut a 100k-supplier load by ~40% (benchmarks), but starting them
    costs about a second, which small incremental runs should not pay.
    """
    if pipeline.config.restore_from_destination:
        # A fresh machine takes cursors back from the warehouse; a machine whose own state is
        # the newest skips reading the whole state back (see pipelines.state_rows).
        if not state_rows.local_state_is_current(pipeline):
            pipeline.sync_destination()
        state_rows.mark_restored(pipeline)
    # Extraction waits on Xero: other runs load meanwhile. The turn is taken again to load and
    # kept until the run's bookkeeping is written (pipelines.runlocks).
    give_back_turn(pipeline)
    _bounded_slices(normalized)
    _bounded_allocators()
    pipeline.extract(source, loader_file_format=target.loader_file_format)
    rows = sum(item.rows for item in stats.entries())
    if rows >= RELEASE_MEMORY_ROWS:
        _release_memory()
    pipeline.normalize(workers=NORMALIZE_WORKERS if rows >= PARALLEL_NORMALIZE_ROWS else 1)
    gone = withdrawn()
    if gone:
        pipeline.abort_packages()
        return gone
    keep_turn(pipeline)
    info = pipeline.load(workers=DUCKDB_LOAD_WORKERS if target.duckdb_file else LOAD_WORKERS)
    _compact_memory(pipeline, info, tenants)
    return set()


def _compact_memory(pipeline: Any, info: Any, tenants: set[str]) -> None:
    """Drop the memory rows this load made obsolete (``connector.memory.compact``), for the
    organisations of the run (their locks are held), when the load wrote memory at all."""
    from connector.memory import MEMORY_TABLE, compact

    wrote = any(job.job_file_info.table_name == MEMORY_TABLE
                for package in info.load_packages
                for job in package.jobs.get("completed_jobs", []))
    if wrote and tenants:
        with pipeline.sql_client() as client:
            compact(client, tenants, [package.load_id for package in info.load_packages])


def _bounded_slices(normalized: bool = False) -> None:
    """dlt's writer limits of ``WRITER_DEFAULTS`` where the configuration sets none;
    ``normalized``: rows go through dlt's normalizer (history), in smaller files."""
    import dlt

    for key, value in WRITER_DEFAULTS.items():
        if key == "data_writer.file_max_items" and normalized:
            value = NORMALIZED_FILE_MAX_ITEMS
        if dlt.config.get(key) is None or key in _SET_HERE:
            dlt.config[key] = value
            _SET_HERE.add(key)


_SET_HERE: set[str] = set()  # the limits set by _bounded_slices (not configured)


def _bounded_allocators() -> None:
    """Allocators that hand freed memory back: at most ``MALLOC_ARENAS`` glibc arenas, large
    blocks mapped on their own (``MMAP_THRESHOLD``), and Arrow's buffers from the system
    allocator, which ``_release_memory`` can trim, rather than Arrow's default mimalloc pool,
    which keeps what it took (unless ``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_`` or
    ``ARROW_DEFAULT_MEMORY_POOL`` is set). Called before the extraction starts its threads."""
    import os

    for variable, parameter, value in (("MALLOC_ARENA_MAX", _M_ARENA_MAX, MALLOC_ARENAS),
                                       ("MALLOC_MMAP_THRESHOLD_", _M_MMAP_THRESHOLD,
                                        MMAP_THRESHOLD)):
        if variable not in os.environ:
            with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to bound
                ctypes.CDLL(None).mallopt(parameter, value)
    if "ARROW_DEFAULT_MEMORY_POOL" not in os.environ:
        import pyarrow

        pyarrow.set_memory_pool(pyarrow.system_memory_pool())


def _release_memory() -> None:
    """Hand the extract step's freed heap back to the system before DuckDB takes its own.

    The pages are gone once extracted, but glibc keeps the freed memory in the process; the
    load's peak is what stays plus DuckDB's buffers, so returning it lowers the run's peak.
    """
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim
        ctypes.CDLL(None).malloc_trim(0)


def _with_skipped(item: Any) -> str | None:
    """The entity's error, with the count of records left out for failing their model: the
    summary and `sync_runs` then say how many were not loaded (the log says which and why)."""
    skipped = getattr(item, "skipped_records", 0)
    if not skipped:
        return item.error
    first = next((w for w in item.warnings if "skipped" in w), "")
    note = f"skipped {skipped} bad record(s), see the log" + (f"; first: {first}" if first
                                                                else "")
    return f"{item.error}; {note}" if item.error else note


def _collect(stats: Any, connections: list[Any], outcomes: RunOutcomes) -> None:
    """Turn the connector's per (tenant, entity) stats into sync_runs outcomes."""
    names = {c.tenant_id: c.organisation_name for c in connections}
    now = datetime.now(UTC)
    for item in stats.entries():
        outcomes.entities.append(EntityOutcome(
            tenant_id=item.tenant_id, entity=item.entity,
            organisation_name=item.organisation or names.get(item.tenant_id),
            started_at=item.started_at or now, finished_at=item.finished_at or now,
            rows_loaded=item.rows, api_calls=item.api_calls,
            bytes_received=item.bytes_received, bytes_decoded=item.bytes_decoded,
            outcome=item.outcome or "ok", error=_with_skipped(item),
            skipped_records=item.skipped_records,
        ))
    outcomes.token_calls += stats.identity_calls.get("token", 0)
    outcomes.connections_calls += stats.identity_calls.get("connections", 0)
