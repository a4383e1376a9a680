"""The dlt source: suppliers, accounts, tax rates and tracking categories/options of every
connected organisation, loaded in parallel, incrementally, with deletions marked.

Tables (every row, child rows included, carries ``tenant_id``, part of every primary key):

- ``suppliers`` (tenant_id, contact_id): Contacts ``where=IsSupplier==true``, archived included,
  1000 a page in ``ContactID`` order, ``If-Modified-Since`` the cursor minus an overlap; a cheap
  reconciliation once a day or on demand (see ``connector.suppliers``).
- ``accounts`` (tenant_id, account_id): one call, ``If-Modified-Since`` the cursor (Xero's
  clock when the last read began) minus the overlap, what it returns diffed against the memory;
  the whole chart, diffed for deletions too, every ``accounts_snapshot_hours`` (and on
  ``full_refresh``, ``reconcile``, a first run; with history on, also when the answer shows a
  change).
- ``tax_rates`` (tenant_id, tax_type): one call; components in ``tax_rates__tax_components``.
- ``tracking_categories`` (tenant_id, tracking_category_id) and ``tracking_options``
  (tenant_id, tracking_option_id, with tracking_category_id): one call shared by both.

Snapshot entities yield only what changed since the last run (a content hash per key is kept in
the memory table beside the data, ``connector.memory``); a key that disappears at Xero is
yielded once more with ``is_deleted = true`` and ``deleted_at`` = the time a whole snapshot
found it missing (rows Xero still lists but calls deleted — ``Status`` DELETED, ``IsDeleted`` —
carry ``is_deleted = true`` and no ``deleted_at``). With history on for an entity (``history``
setting) the table is dlt ``scd2``: whenever anything is loaded the whole snapshot is read and
yielded (accounts: only when Xero's If-Modified-Since answer shows a change, or the whole chart
is due), and rows are retired only within the organisations loaded (``merge_key`` on
``tenant_id``).

An organisation that fails (dead grant, disconnected, day limit, retries exhausted, malformed
body) is recorded in the run's ``SyncStats`` and stops; it never aborts the other organisations.
Cursors advance only over rows that were yielded. No token ever reaches the state or a row.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import logging
import queue
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple

import dlt
from dlt.extract.resource import DltResource

from connector import child_keys, masking, wire
from connector.arrow_pages import DEDUPLICATED, PageTables, child_variant
from connector.client import XeroClient
from connector.entities import ENTITY_TABLE, TRACKING_PATH, Entity, select_entities
from connector.errors import XeroError
from connector.memory import (
    MEMORY_TABLE,
    DestinationMemory,
    Memory,
    NoMemory,
    as_memory,
    cursors_row,
    memory_hints,
    snapshot_rows,
    supplier_rows,
)
from connector.models import validate_record
from connector.settings import XeroSettings, load_settings
from connector.snapshot_state import SnapshotMarks, SnapshotState
from connector.stats import OK, SKIPPED, SyncStats, outcome_for
from connector.suppliers import VERSION as SUPPLIER_STATE_VERSION
from connector.suppliers import Progress, ReadOptions, SupplierRead, SupplierState
from connector.token_providers import Organisation, TokenProvider, default_provider

log = logging.getLogger(__name__)

TENANT_ID = "tenant_id"
# Supplier pages fetched but not yet handed to dlt, across all organisations of a run.
PAGES_IN_HAND = 16
# Snapshot answers (per entity) fetched but not yet taken by the extraction.
SNAPSHOTS_IN_HAND = 32
# Incremental reads' first pages in flight or in hand across organisations (beside
# PAGES_IN_HAND, as many as the HTTP client's connections).
PROBES_IN_HAND = 48
# Cursors rows gathered before they go to dlt as one table (``_Cursors``).
CURSORS_PER_TABLE = 1000


# --- small helpers -------------------------------------------------------------------------------

class _Cursors:
    """Cursors rows of many organisations, handed to dlt as one memory table per
    ``CURSORS_PER_TABLE``: one row per organisation and entity, each its own Arrow table, left
    dlt writing tables of a thousand one-row chunks (1.2 s of a 400-organisation no-change
    run's 12). A row still goes in the load package of the rows it covers, after them."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, *rows: dict[str, Any]) -> Iterator[Any]:
        self.rows.extend(rows)
        if len(self.rows) >= CURSORS_PER_TABLE:
            yield from self.drain()

    def drain(self) -> Iterator[Any]:
        if self.rows:
            rows, self.rows = self.rows, []
            yield as_memory(rows)


def _canonical(record: dict) -> str:
    """A stable JSON text of a raw record (hashing, and the copy kept to mark deletions)."""
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_number)


def _json_number(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=10).hexdigest()


def _whole_digest(records: list[tuple[dict, str, str]]) -> str:
    """One hash of a whole snapshot (its records' hashes, in any order)."""
    return _digest(",".join(sorted(digest for _, _, digest in records)))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _envelope_time(envelope: Mapping[str, Any]) -> datetime | None:
    """Xero's clock when it answered (the envelope's ``DateTimeUTC``); None if it sent none."""
    value = envelope.get("DateTimeUTC")
    try:
        return wire.parse_net_date(value) if wire.is_net_date(value) else None
    except ValueError:
        return None


def _contract(mode: str) -> Any:
    """dlt schema contract for the ``schema_contract`` setting (new tables always allowed)."""
    if mode == "evolve":
        return None
    if mode == "freeze":
        return {"tables": "evolve", "columns": "freeze", "data_type": "freeze"}
    return {"tables": "evolve", "columns": mode, "data_type": "evolve"}


# --- the run: organisations, client, shared fetches ----------------------------------------------


class SnapshotAnswer(NamedTuple):
    """One organisation's answer for a snapshot entity."""

    records: list[dict]
    server_time: datetime | None  # the envelope's DateTimeUTC (None: 304, or none sent)


def _handling_interrupt() -> bool:
    """True while a Ctrl-C unwinds the caller (a generator closed by it sees GeneratorExit,
    whose context is the KeyboardInterrupt)."""
    exc = sys.exc_info()[1]
    while exc is not None:
        if isinstance(exc, KeyboardInterrupt):
            return True
        exc = exc.__context__
    return False

class _Run:
    """What one extraction shares across resources: the client, the organisations, the pool.

    Nothing is opened when the source is built: the first resource to start extracting opens
    the token provider, lists the organisations and starts the HTTP client and the thread pool;
    when the last running resource finishes (or its generator is closed: ``add_limit``, an
    error) they are closed again. A source built and never run, or run with a few of its
    resources (``with_resources``), leaves no thread, client or file open.
    """

    def __init__(
        self,
        settings: XeroSettings,
        tokens: Callable[[], TokenProvider],
        stats: SyncStats,
        tenant_ids: Sequence[str] | None,
        entities: Sequence[str],
        *,
        reconcile: bool,
        full_refresh: bool,
        contact_ids: Mapping[str, Sequence[str]] | None = None,
        memory: Memory | None = None,
        due: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self.settings = settings
        # Per tenant id, the entities to read (a schedule's choice); None: every entity.
        self.due = None if due is None else {t: set(select_entities(list(names)))
                                             for t, names in due.items()}
        self._given_memory = memory
        self._memory: Memory | None = None
        self.stats = stats
        self.reconcile = reconcile
        self.full_refresh = full_refresh
        self.contact_ids = contact_ids
        self._make_tokens = tokens
        self._tenant_ids = tenant_ids
        self._entities = list(entities)
        self._lock = threading.Lock()
        self._active = 0
        self._tokens: TokenProvider | None = None
        self._client: XeroClient | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._readers: ThreadPoolExecutor | None = None
        self._orgs: list[Organisation] | None = None
        self._tracking: dict[str, Future[list[dict]]] = {}
        self._tracking_lock = threading.Lock()  # not _lock: pool threads take it while closing
        self.started_at = datetime.now(UTC)

    @property
    def orgs(self) -> list[Organisation]:
        """The organisations being read (known once the first resource has started)."""
        assert self._orgs is not None, "the run is not open"
        return self._orgs

    def for_entity(self, entity: str) -> _Run:
        """This open run as one entity's resource sees it: only the organisations for which
        ``entity`` is due. A shallow copy: client, pool, memory, stats and the shared tracking
        fetch stay the run's own; opening and closing stay with the run."""
        if self.due is None:
            return self
        view = copy.copy(self)
        view._orgs = [o for o in self.orgs if entity in self.due.get(o.tenant_id, ())]
        return view

    @property
    def memory(self) -> Memory:
        """Where the organisations' memory is read (while a resource is extracting)."""
        assert self._memory is not None, "the run is not open"
        return self._memory

    def stored_cursors(self, entity: str, legacy: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Per organisation of this run, its stored cursors for ``entity``: the memory's
        (``connector.memory.CURSORS_KEY``, read for every organisation of the run at once), else
        what an older version left in dlt's state (``legacy``, the resource's ``tenants``),
        which the first run of this version moves into the memory."""
        stored = self.memory.cursors([o.tenant_id for o in self.orgs])
        out = {}
        for org in self.orgs:
            found = stored.get((org.tenant_id, entity))
            if found is None:
                found = legacy.get(org.tenant_id)
            if found is not None:
                out[org.tenant_id] = found
        return out

    @property
    def client(self) -> XeroClient:
        """The run's HTTP client (while a resource is extracting)."""
        assert self._client is not None, "the run is not open"
        return self._client

    @property
    def pool(self) -> ThreadPoolExecutor:
        """Threads fetching organisations' snapshots (while a resource is extracting)."""
        assert self._pool is not None, "the run is not open"
        return self._pool

    @property
    def readers(self) -> ThreadPoolExecutor:
        """Threads reading organisations' suppliers (while a resource is extracting)."""
        assert self._readers is not None, "the run is not open"
        return self._readers

    def open(self) -> None:
        """A resource starts extracting: open what the run needs, the first time."""
        with self._lock:
            if self._orgs is None:
                self.started_at = datetime.now(UTC)
                self._tokens = self._make_tokens()
                self._client = XeroClient(self.settings, self._tokens, self.stats)
                try:
                    self._orgs = self._organisations(self._tokens)
                except BaseException:
                    self._release()
                    raise
            if self._memory is None:
                self._memory = self._given_memory or _destination_memory()
                self._memory.prepare(self.settings.history)
            if self._pool is None:
                # Snapshot fetches: each entity keeps SNAPSHOTS_IN_HAND in flight.
                self._pool = ThreadPoolExecutor(max_workers=4 * SNAPSHOTS_IN_HAND,
                                                thread_name_prefix="xero-org")
            if self._readers is None:
                # Supplier readers: one per organisation would be a thread per organisation
                # waiting for a slot (1,000 threads, ~130 MB of a no-change run's peak); a
                # reader beyond the slots would only wait, so it waits queued instead.
                self._readers = ThreadPoolExecutor(max_workers=PAGES_IN_HAND + PROBES_IN_HAND,
                                                   thread_name_prefix="xero-suppliers")
            self._active += 1

    def resource_done(self) -> None:
        """A resource finished (or its generator was closed); the last one closes the run."""
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self._release()

    def _release(self) -> None:
        pools, self._pool, self._readers = (self._readers, self._pool), None, None
        for pool in pools:
            if pool is not None:
                # On Ctrl-C nobody waits for pages in flight (Xero may take seconds to
                # answer): the run stops now, and what was extracted stays for the next run.
                pool.shutdown(wait=not _handling_interrupt(), cancel_futures=True)
        if self._client is not None:
            self._client.close()  # sessions (and their pacing) stay; connections close
        if self._tokens is not None:
            self._tokens.close()
        memory, self._memory = self._memory, None
        if memory is not None:
            memory.close()

    def _organisations(self, tokens: TokenProvider) -> list[Organisation]:
        """The provider's organisations (all, or the named ones); a named one it cannot reach
        is recorded as ``skipped`` for every selected entity."""
        by_tenant = {org.tenant_id: org for org in tokens.organisations()}
        if self._tenant_ids is None:
            return list(by_tenant.values())
        chosen = []
        for tenant_id in dict.fromkeys(self._tenant_ids):
            org = by_tenant.get(tenant_id)
            if org is not None:
                chosen.append(org)
                continue
            reason = tokens.missing_reason(tenant_id)
            wanted = self._entities if self.due is None else self.due.get(tenant_id, ())
            for entity in (e for e in self._entities if e in wanted):
                self.stats.finish(tenant_id, entity, SKIPPED, reason)
        return chosen

    def fetch_snapshot(self, org: Organisation, entity: Entity,
                       since: datetime | None = None) -> SnapshotAnswer:
        """The raw records of a snapshot entity for one organisation (one call): the whole
        snapshot, or (``since``, an entity Xero reads with ``If-Modified-Since``) what changed
        since then; an answer of 304 Not Modified is no records."""
        session = self.client.session(org)
        if entity.path == TRACKING_PATH:
            categories = self._tracking_categories(org)
            if entity.name == "tracking_categories":
                return SnapshotAnswer([{k: v for k, v in c.items() if k != "Options"}
                                       for c in categories], None)
            options = []
            for category in categories:
                for option in category.get("Options") or []:
                    if isinstance(option, dict):
                        options.append({**option,
                                        "TrackingCategoryID": category.get("TrackingCategoryID")})
            return SnapshotAnswer(options, None)
        records, envelope = session.get_collection(
            entity.path, entity.collection, entity=entity.name, params=dict(entity.params),
            if_modified_since=since if entity.modified_since else None)
        return SnapshotAnswer(records, _envelope_time(envelope))

    def _tracking_categories(self, org: Organisation) -> list[dict]:
        """One ``GET /TrackingCategories`` per organisation per run, shared by both tables."""
        with self._tracking_lock:
            future = self._tracking.get(org.tenant_id)
            owner = future is None
            if owner:
                future = self._tracking[org.tenant_id] = Future()
        assert future is not None
        if owner:
            try:
                spec = ENTITY_TABLE["tracking_categories"]
                records, _ = self.client.session(org).get_collection(
                    spec.path, spec.collection, entity=spec.name, params=dict(spec.params))
                future.set_result(records)
            except BaseException as exc:
                future.set_exception(exc)
        return future.result()

    def bad_record(self, org: Organisation, entity: Entity, raw: dict, problem: str) -> None:
        """Report a record that failed its model; it is left out, the others load."""
        record_id = raw.get(entity.key) or raw.get("Name") or "(no id)"
        message = (f"{entity.name}: record {record_id} of organisation "
                   f"{org.name or org.tenant_id} skipped: {problem}")
        log.warning(message)
        self.stats.skip_record(org.tenant_id, entity.name, message)

    def build_row(self, org: Organisation, entity: Entity, raw: dict) -> dict | None:
        """Validate a raw record and turn it into a row with ``tenant_id``; None if bad."""
        try:
            # One walk decodes the dates and stamps tenant_id on every child row.
            row, notes = validate_record(entity.model, raw, org.tenant_id, entity.key)
        except ValueError as exc:
            self.bad_record(org, entity, raw, str(exc))
            return None
        for note in notes:
            self.stats.warn(
                org.tenant_id, entity.name,
                f"{entity.name}: field {note} in organisation {org.name or org.tenant_id}; "
                "loaded as it came (dlt adds a variant column for a changed type)",
            )
        return {TENANT_ID: org.tenant_id, **row}


def _destination_memory() -> Memory:
    """The memory of the pipeline running this extraction (called in dlt's thread: its context
    is per thread); none when the source runs without one."""
    pipeline = masking.running_pipeline()
    return DestinationMemory(pipeline) if pipeline is not None else NoMemory()


# --- snapshot entities ---------------------------------------------------------------------------

def _snapshot_rows(run: _Run, entity: Entity, history: bool, tables: _Tables
                   ) -> Iterator[Any]:
    """Per organisation, the rows of a snapshot entity that changed (all of them, with history),
    and the memory rows that changed with them (``connector.memory``).

    An entity Xero reads with ``If-Modified-Since`` (accounts) is read whole only when due
    (``_snapshot_every``); otherwise only what changed since the cursor (minus the overlap) is
    asked for, compared with the memory like a snapshot, and no key is marked deleted: a partial
    answer (or a 304, or a whole one Xero sent although it was not asked for) says nothing of
    what it leaves out. With history (scd2) an answer that shows a change is followed by a read
    of the whole snapshot, which is loaded whole as history always is.
    """
    tenants_state: dict[str, Any] = dlt.current.resource_state().setdefault("tenants", {})
    found = run.stored_cursors(entity.name, tenants_state)
    marks = {org.tenant_id: SnapshotMarks.load(found.get(org.tenant_id)) for org in run.orgs}
    every = _snapshot_every(run, entity)
    overlap = timedelta(seconds=run.settings.cursor_overlap_seconds)

    def since(org: Organisation) -> datetime | None:
        return marks[org.tenant_id].modified_since(run.started_at, every, overlap)

    cursors = _Cursors()
    for org in run.orgs:
        run.stats.start(org.tenant_id, entity.name, org.name)
    for ready in _windowed(run, entity, since):
        if ready is None:
            yield None  # nothing ready yet: dlt reads the other resources meanwhile
            continue
        future, org, asked_since = ready
        mark = marks[org.tenant_id]
        partial = asked_since is not None
        try:
            answer = future.result()
            records = _hashed(answer.records)
            whole = _whole_digest(records)
            if history and partial and records and mark.digest != whole:
                # Something changed: scd2 needs the whole snapshot (it retires what a load
                # leaves out), so it is read now (a second call, only when accounts changed).
                answer, partial = run.fetch_snapshot(org, entity), False
                records = _hashed(answer.records)
                whole = _whole_digest(records)
            legacy = found.get(org.tenant_id)
            # Nothing changed: Xero sent nothing (or the very records of the last whole read),
            # or (without history, which loads every row) the same snapshot as last time.
            quiet = partial and (not records or mark.digest == whole)
            if SnapshotState.is_legacy(legacy):  # an older version kept it in dlt's state
                stored: SnapshotState | None = SnapshotState.from_state(legacy)
            elif not run.full_refresh and (quiet or (not history and mark.digest == whole)):
                stored = None  # no memory to read, nothing to load
            else:
                stored = SnapshotState.from_memory(run.memory.read(org.tenant_id, entity.name))
        except XeroError as exc:
            run.stats.fail(org.tenant_id, entity.name, exc)
            continue
        except Exception as exc:  # a bug must not take the other organisations down
            log.exception("unexpected error reading %s for %s", entity.name, org.tenant_id)
            run.stats.fail(org.tenant_id, entity.name, exc)
            continue
        rows: list[dict] = []
        clean = True  # every record passed its model (a bad one is reported every run)
        changed = False
        if stored is not None:
            skipped = run.stats.entry(org.tenant_id, entity.name).skipped_records
            # A full refresh loads every row again, and still marks what went missing since the
            # last whole snapshot (forgetting it would leave a deleted account live for good).
            rows, after = _diff_snapshot(run, org, entity, records, stored,
                                         history or run.full_refresh, partial=partial)
            clean = run.stats.entry(org.tenant_id, entity.name).skipped_records == skipped
            if rows:
                yield from tables.items(rows)
            changes = stored.changes(after, everything=SnapshotState.is_legacy(legacy))
            if changes:
                changed = True
                yield as_memory(snapshot_rows(org.tenant_id, entity.name, changes))
        # The cursors row keeps one digest of the whole snapshot per organisation (the next run
        # that finds the same snapshot reads no memory and writes nothing) and, for an entity
        # read with If-Modified-Since, the cursor and when the whole snapshot was last read;
        # written only when they moved (or when they still live in dlt's state).
        digest = whole if clean else None
        if partial:
            mark = mark.after_partial(answer.server_time, changed)
        elif entity.modified_since:
            mark = mark.after_whole(run.started_at, answer.server_time, digest)
        else:
            mark = SnapshotMarks(digest=digest)
        if mark.dump() != found.get(org.tenant_id) or org.tenant_id in tenants_state:
            yield from cursors.add(cursors_row(org.tenant_id, entity.name, mark.dump()))
            tenants_state.pop(org.tenant_id, None)
        run.stats.add_rows(org.tenant_id, entity.name, len(rows))
        run.stats.finish(org.tenant_id, entity.name, OK)
    yield from cursors.drain()


def _hashed(raws: list[dict]) -> list[tuple[dict, str, str]]:
    """Each raw record with its canonical text and content hash."""
    return [(raw, text, _digest(text)) for raw in raws for text in (_canonical(raw),)]


def _snapshot_every(run: _Run, entity: Entity) -> timedelta | None:
    """How often the whole snapshot is read; None: every run. Only an entity Xero reads with
    ``If-Modified-Since`` can do with less, and not on ``full_refresh`` or ``reconcile`` (which
    ask for the whole of it)."""
    hours = run.settings.accounts_snapshot_hours
    if not entity.modified_since or run.full_refresh or run.reconcile or hours <= 0:
        return None
    return timedelta(hours=hours)


def _windowed(run: _Run, entity: Entity, since: Callable[[Organisation], datetime | None]
              ) -> Iterator[tuple[Future[SnapshotAnswer], Organisation, datetime | None] | None]:
    """Each organisation's snapshot fetch (``If-Modified-Since`` ``since(org)``) as it
    completes, at most ``SNAPSHOTS_IN_HAND`` at a time: an answer waits decoded until the
    extraction takes it, so 1,000 organisations' answers must not all wait at once.

    None while no answer is ready, rather than waiting: dlt's round robin moves on to the
    run's other resources at a None, so every entity's calls are in flight together (waiting
    here read the entities one after another: a no-change run of 1,000 small organisations
    took 2.7 times its floor)."""
    waiting = iter(run.orgs)
    running: dict[Future[SnapshotAnswer], tuple[Organisation, datetime | None]] = {}

    def submit(org: Organisation) -> None:
        moment = since(org)
        running[run.pool.submit(run.fetch_snapshot, org, entity, moment)] = (org, moment)

    for org in itertools.islice(waiting, SNAPSHOTS_IN_HAND):
        submit(org)
    while running:
        done = [future for future in running if future.done()]
        if not done:
            yield None
            continue
        for future in done:
            org, moment = running.pop(future)
            following = next(waiting, None)
            if following is not None:
                submit(following)
            yield future, org, moment


def _listed(row: dict) -> dict:
    """A row Xero still lists: deleted only if Xero itself says so (Status or IsDeleted).

    Xero's own ``IsDeleted`` (tracking options) would normalise to our ``is_deleted`` column, so
    it is folded into the marker rather than left to collide with it.
    """
    xero_deleted = bool(row.pop("IsDeleted", False)) or row.get("Status") == "DELETED"
    return {**row, "is_deleted": xero_deleted, "deleted_at": None}


def _diff_snapshot(
    run: _Run,
    org: Organisation,
    entity: Entity,
    records: list[tuple[dict, str, str]],
    before: SnapshotState,
    everything: bool,
    *,
    partial: bool = False,
) -> tuple[list[dict], SnapshotState]:
    """Rows to yield and the new state for one organisation's snapshot (``records``: each raw
    record with its canonical text and content hash). ``everything``: every row is yielded,
    changed or not (history; a full refresh). ``partial``: the records are only those Xero says
    changed; a key not among them is kept as it was, never marked deleted."""
    rows: list[dict] = []
    hashes: dict[str, str] = {}
    deleted: dict[str, str] = {}
    texts: dict[str, str] = {}
    for raw, text, digest in records:
        key = raw.get(entity.key)
        unchanged = isinstance(key, str) and before.hashes.get(key) == digest
        if unchanged and not everything and key not in before.deleted:
            # the same content passed its model when it was first loaded
            hashes[key] = digest
            texts[key] = text
            continue
        row = run.build_row(org, entity, raw)
        if row is None:
            if isinstance(key, str) and key in before.hashes:  # a bad record is not a deleted one
                hashes[key] = before.hashes[key]
                if key in before.deleted:
                    deleted[key] = before.deleted[key]
            continue
        rows.append(_listed(row))
        hashes[key] = digest
        texts[key] = text
    for key, digest in before.hashes.items():
        if key in hashes:
            continue
        was_deleted = before.deleted.get(key)
        if partial:
            hashes[key] = digest
            if was_deleted:
                deleted[key] = was_deleted
            continue
        hashes[key] = digest
        deleted[key] = was_deleted or _iso(run.started_at)
        if was_deleted and not everything:
            continue  # already marked in an earlier run
        raw = json.loads(before.last_text(key), parse_float=Decimal)
        row = run.build_row(org, entity, raw)
        if row is not None:
            row.pop("IsDeleted", None)
            rows.append({**row, "is_deleted": True, "deleted_at": _from_iso(deleted[key])})
    return rows, before.after(hashes, deleted, texts)


# --- suppliers (incremental; the read strategy is in connector.suppliers) -----------------------

_DONE = object()


def _give_back(given: list[threading.BoundedSemaphore]) -> None:
    for gate in given:
        gate.release()


def _read_options(run: _Run) -> ReadOptions:
    s = run.settings
    return ReadOptions(
        started_at=run.started_at,
        overlap=timedelta(seconds=s.cursor_overlap_seconds),
        reconcile_interval=timedelta(hours=s.reconcile_interval_hours),
        sweep_parts=s.reconcile_sweep_parts,
        ids_per_call=s.ids_per_call,
        page_size=s.page_size,
        reconcile=run.reconcile,
        full_refresh=run.full_refresh,
    )


def _supplier_rows(run: _Run, tables: _Tables) -> Iterator[Any]:
    """Yield suppliers as organisations read them (in parallel), each page's memory rows with
    it; record each organisation's state only once the rows it covers have been handed over."""
    entity = ENTITY_TABLE["suppliers"]
    tenants_state: dict[str, Any] = dlt.current.resource_state().setdefault("tenants", {})
    found = run.stored_cursors(entity.name, tenants_state)
    latest: dict[str, dict[str, Any]] = {}  # cursors handed over, not yet written
    options = _read_options(run)
    # (organisation, rows | _DONE | an error, progress, page slots to give back)
    pages: queue.Queue[tuple[Organisation, Any, Progress | None, list[Any]]] = queue.Queue()
    # Pages fetched and decoded but not yet handed to dlt, across all organisations: a reader
    # takes a slot before it fetches a page and the slot comes back once dlt has the page's
    # rows. Readers wait without a page in hand (1,000 organisations' first load held every
    # organisation's decoded page at once: bounding the queue alone left them in the readers).
    slots = threading.BoundedSemaphore(PAGES_IN_HAND)
    # An incremental read's first page mostly comes back empty (a no-change run is one such
    # call per organisation): those take a probe instead, so 1,000 organisations' probes are
    # not queued behind PAGES_IN_HAND. A probe with rows is held like a page.
    probes = threading.BoundedSemaphore(PROBES_IN_HAND)
    cancelled = threading.Event()
    memory = run.memory

    def put(item: tuple[Organisation, Any, Progress | None, list[Any]]) -> bool:
        if cancelled.is_set():
            return False
        pages.put(item)
        return True

    def read(org: Organisation, stored: dict[str, Any] | None) -> None:
        held: list[threading.BoundedSemaphore] = []  # slots for pages not handed over yet

        def admit(probe: bool) -> None:
            if held:  # a slot not used yet (the end of a page list): never wait holding one
                return
            gate = probes if probe else slots
            while not cancelled.is_set():
                if gate.acquire(timeout=0.2):
                    held.append(gate)
                    return

        def emit(rows: list[dict], progress: Progress | None) -> bool:
            given = held[:]
            held.clear()
            return put((org, rows, progress, given))

        mine = options if run.contact_ids is None else replace(
            options, contact_ids=tuple(run.contact_ids.get(org.tenant_id, ())))
        try:
            # An older version's state holds the memory itself; else the reader reads it (one
            # organisation at a time) when it first needs it.
            state = SupplierState.load(stored)
            beside = stored is not None and int(stored.get("v") or 0) >= SUPPLIER_STATE_VERSION
            reader = SupplierRead(
                run.client.session(org), state, mine,
                build_row=lambda raw: run.build_row(org, entity, raw),
                digest=lambda raw: _digest(_canonical(raw)),
                warn=lambda message: run.stats.warn(org.tenant_id, entity.name, message),
                stored=lambda ids: memory.tax_numbers(org.tenant_id, ids),
                emit=emit,
                memory=(lambda: SupplierState.load(stored, memory.read(org.tenant_id,
                                                                        entity.name)))
                if beside else None,
                admit=admit,
            )
            final = reader.run()
            put((org, _DONE, (final.dump(), final.memory_changes()), held))
        except BaseException as exc:
            put((org, exc, None, held))

    cursors = _Cursors()
    try:
        for org in run.orgs:
            run.stats.start(org.tenant_id, entity.name, org.name)
            run.readers.submit(read, org, found.get(org.tenant_id))
        active = len(run.orgs)
        while active:
            try:
                org, item, progress, given = pages.get_nowait()
            except queue.Empty:
                yield None  # as in _windowed: the other resources go on meanwhile
                continue
            if isinstance(item, BaseException):
                _give_back(given)
                active -= 1
                if not isinstance(item, XeroError):
                    log.error("unexpected error reading suppliers for %s: %r", org.tenant_id,
                              item)
                run.stats.fail(org.tenant_id, entity.name, item)
                yield from cursors.add(*_cursors_moved(org.tenant_id, entity.name, latest,
                                                       found, tenants_state))
                continue
            if item is not _DONE and item:
                yield from tables.items(item)
            # Only now, with the rows handed over, may the state (and memory) move past them.
            if progress is not None:
                state, changes = progress
                if changes:
                    yield as_memory(supplier_rows(org.tenant_id, changes))
                latest[org.tenant_id] = state
            _give_back(given)
            if item is _DONE:
                yield from cursors.add(*_cursors_moved(org.tenant_id, entity.name, latest,
                                                       found, tenants_state))
                active -= 1
                run.stats.finish(org.tenant_id, entity.name, OK)
                continue
            run.stats.add_rows(org.tenant_id, entity.name, len(item))
        yield from cursors.drain()
    finally:
        cancelled.set()


def _cursors_moved(tenant_id: str, entity: str, latest: dict[str, dict[str, Any]],
                   found: dict[str, Any], tenants_state: dict[str, Any]
                   ) -> Iterator[dict[str, Any]]:
    """The cursors row of an organisation whose read ended (or failed after some pages), once
    per run and only if the cursors moved since stored; an older version's entry in dlt's
    state is dropped with it (same load package)."""
    state = latest.pop(tenant_id, None)
    if state is None:
        return
    if state != found.get(tenant_id) or tenant_id in tenants_state:
        yield cursors_row(tenant_id, entity, state)
        tenants_state.pop(tenant_id, None)


# --- the source ----------------------------------------------------------------------------------

def _resource(
    run: _Run, entity: Entity, settings: XeroSettings
) -> DltResource:
    history = settings.history_for(entity.name)
    columns: dict[str, Any] = {TENANT_ID: {"data_type": "text", "nullable": False}}
    if not entity.incremental:
        columns["is_deleted"] = {"data_type": "bool"}
        columns["deleted_at"] = {"data_type": "timestamp", "timezone": True}
    key = (TENANT_ID, entity.key)
    hints: dict[str, Any] = {"primary_key": key}
    if history:
        hints["write_disposition"] = {"disposition": "merge", "strategy": "scd2"}
        # Retire only within what was loaded: one organisation (snapshots) or the keys read
        # (incremental suppliers, which never see rows that did not change).
        hints["merge_key"] = key if entity.incremental else TENANT_ID
    else:
        hints["write_disposition"] = "merge"
    contract = _contract(settings.schema_contract)
    tables = _Tables(entity, settings, contract)

    def gen() -> Iterator[Any]:
        run.open()  # opened by the first resource to extract, closed by the last to finish
        try:
            tables.start()
            mine = run.for_entity(entity.name)
            if entity.incremental:
                yield from _supplier_rows(mine, tables)
            else:
                yield from _snapshot_rows(mine, entity, history, tables)
        finally:
            run.resource_done()
    # With history, dlt's normalizer makes the child tables (nested: scd2 versions them with
    # their parent's row hash); without, they are tables of their own (connector.arrow_pages).
    nested = child_keys.nested_hints(entity.name) if tables.nested else None
    resource = dlt.resource(
        gen, name=entity.name, columns=columns, nested_hints=nested, schema_contract=contract,
        **hints,
    )()
    memory_hints(resource)  # each page's memory rows go to the memory table, with the page
    return resource


class _Tables:
    """How a resource hands a page's rows to dlt: as Arrow tables, its own and one per child
    table (``connector.arrow_pages``), built once and written by dlt as they are; with history
    (scd2), as the rows themselves, which dlt's normalizer versions with their child rows."""

    def __init__(self, entity: Entity, settings: XeroSettings, contract: Any) -> None:
        self.entity = entity
        self.history = settings.history_for(entity.name)
        self.kept_nested = tuple(settings.history)  # entities whose child tables stay nested
        self.contract = contract
        self.resource: DltResource | None = None
        self._builder = PageTables(entity.name, entity.key)
        self._declared: set[str] = set()
        self._unnested = False
        self.file_format: str | None = None
        # The parents handed over in this extraction (hashes: a collision only costs the
        # deduplication it skips); one seen twice turns the child tables' deduplication on.
        self._parents: set[int] = set()
        self._repeated = False

    def start(self) -> None:
        """The extraction began: the tables this resource adds take the file format dlt was
        asked for (``loader_file_format``, set on the resource's own table as it starts; on
        PostgreSQL without it an Arrow table goes by CSV, where an empty text becomes NULL)."""
        # The resource dlt extracts (the source holds a copy of the one made here).
        self.resource = dlt.current.resource()
        self.file_format = self.resource.compute_table_schema().get("file_format")
        if self.file_format:
            self.resource.apply_hints(table_name=MEMORY_TABLE, create_table_variant=True,
                                      file_format=self.file_format)

    def _repeats(self, rows: list[dict]) -> bool:
        """Whether a parent of ``rows`` was handed over before in this extraction (Xero's
        pages can repeat a record: ``connector.suppliers``)."""
        key, parents = self.entity.key, self._parents
        before = len(parents)
        parents.update(hash((row.get(TENANT_ID), row.get(key))) for row in rows)
        return len(parents) - before < len(rows)

    @property
    def nested(self) -> bool:
        """The rows go to dlt's normalizer, their child tables nested (with history)."""
        return self.history

    def items(self, rows: list[dict]) -> Iterator[Any]:
        """What to yield for ``rows`` (validated, with ``tenant_id``)."""
        if self.nested:
            yield rows
            return
        schema = dlt.current.source_schema()
        prefix = self.entity.name + "__"
        if not self._unnested:  # the schema being extracted into (the memory moved the tables)
            child_keys.unnest_schema(schema, self.kept_nested)
            self._unnested = True
        known = {name: table["columns"] for name, table in schema.tables.items()
                 if name == self.entity.name or name.startswith(prefix)}
        children = [name for name in known if name != self.entity.name]
        load_id = dlt.current.load_package_state()["load_id"]
        built = self._builder.build(rows, load_id, known, children)
        assert self.resource is not None
        if not self._repeated and self._repeats(rows):
            self._repeated = True  # (declared again below, with deduplication)
            self._declared.clear()
            for name in children:  # a hint dlt merged in stays unless taken out
                schema.tables[name].pop(DEDUPLICATED, None)
        for name, table in built.items():
            own = name == self.entity.name
            if not own and name not in self._declared:
                child_variant(self.resource, name, self.entity.key, self.contract,
                              self.file_format, deduplicated=not self._repeated)
                self._declared.add(name)
            yield table if own else dlt.mark.with_table_name(table, name)


@dlt.source(name="xero", section="xero")
def xero_source(
    tenant_ids: Sequence[str] | None = None,
    entities: Sequence[str] | str | None = None,
    reconcile: bool = False,
    full_refresh: bool = False,
    tokens: Any = None,
    settings: Any = None,
    stats: Any = None,
    contact_ids: Any = None,
    memory: Any = None,
    due: Any = None,
) -> list[DltResource]:
    """Suppliers, accounts, tax rates and tracking categories/options of Xero organisations.

    Settings and secrets come from dlt's providers under ``[sources.xero]``
    (``connector.settings.XeroSettings``): ``client_id``, ``client_secret`` and, for use on its
    own, ``refresh_token``, adopted into a local token store on first use.

    Args:
        tenant_ids: tenant ids to load; default every organisation the token provider reaches
            (with a ``refresh_token``: all that ``/connections`` lists for the grant; with the
            app's store: every ``connected`` connection). A named one it cannot reach is
            recorded as ``skipped``.
        entities: tables to load (``suppliers``, ``accounts``, ``tax_rates``,
            ``tracking_categories``, ``tracking_options``); default all. ``tracking_categories``
            brings ``tracking_options`` along (one call gives both).
        reconcile: force the supplier reconciliation (otherwise it runs every
            ``reconcile_interval_hours``) and a whole read of the chart of accounts (otherwise
            every ``accounts_snapshot_hours``), so every deletion is found now.
        full_refresh: ignore the stored cursors and hashes of the organisations loaded: read
            everything whole and load every row again (snapshot entities still mark the keys
            gone since their last whole read deleted).
        tokens: a ``connector.token_providers.TokenProvider``; default ``SecretsTokens`` (the
            ``refresh_token`` setting); the app passes ``store.token_provider.StoreTokens``.
        settings: ``XeroSettings`` (default ``load_settings()``).
        stats: a ``SyncStats`` to fill with rows, API calls, outcome and error per
            (tenant, entity) and what access Xero took away (``access_lost()``).
        contact_ids: a targeted supplier read (Xero's webhook events): per tenant id, the
            ContactIDs to read by ``IDs=`` instead of the usual read; organisations not in it
            read nothing. Snapshot entities ignore it (name only ``suppliers`` then).
        memory: where each organisation's memory is read (``connector.memory.Memory``);
            default the dataset of the pipeline running the source.
        due: per tenant id, the entities to read for it (a schedule's choice: different
            organisations may need different entities in one run); an entity's resource reads
            only the organisations it names. Default: every selected entity of every one.

    Returns:
        One resource per selected entity.
    """
    if settings is None:
        settings = load_settings()
    if stats is None:
        stats = SyncStats()
    names = select_entities(entities)
    if tokens is None and settings.refresh_token:
        settings.require_client()  # say so now, not at the first extraction

    def provider() -> TokenProvider:
        return tokens if tokens is not None else default_provider(settings)

    run = _Run(settings, provider, stats, tenant_ids, names, reconcile=reconcile,
               full_refresh=full_refresh, contact_ids=contact_ids, memory=memory, due=due)
    return [_resource(run, ENTITY_TABLE[name], settings) for name in names]


def _is_variant(name: str, column: Mapping[str, Any]) -> bool:
    """A variant column by its name (``<column>__v_<type>``): dlt's normalizer marks the ones
    it makes, but the hint does not survive a column that arrives in an Arrow table."""
    return name.endswith(f"__v_{column.get('data_type')}")


def schema_changes(load_info: Any) -> list[str]:
    """Human-readable schema changes a load made: new columns, and variant columns (a field
    whose type changed at Xero); for logs and run summaries.

    Args:
        load_info: what ``pipeline.run`` returned.
    """
    messages: list[str] = []
    for package in getattr(load_info, "load_packages", []) or []:
        for table_name, table in (package.schema_update or {}).items():
            if table_name.startswith("_dlt"):
                continue
            for column_name, column in (table.get("columns") or {}).items():
                if column_name.startswith("_dlt"):
                    continue
                if column.get("variant") or _is_variant(column_name, column):
                    messages.append(
                        f"{table_name}.{column_name}: a field changed type at Xero; values of "
                        f"the new type ({column.get('data_type')}) go to this variant column"
                    )
                else:
                    messages.append(f"{table_name}.{column_name}: new column "
                                    f"({column.get('data_type')})")
    return messages


def make_source(
    *,
    tenants: Sequence[str] | None = None,
    entities: Sequence[str] | None = None,
    reconcile: bool = False,
    full_refresh: bool = False,
    tokens: TokenProvider | None = None,
    settings: XeroSettings | None = None,
    stats: SyncStats | None = None,
    contact_ids: Mapping[str, Sequence[str]] | None = None,
    memory: Memory | None = None,
    due: Mapping[str, Sequence[str]] | None = None,
) -> Any:
    """``xero_source(...)`` for the app (which passes ``store.token_provider.StoreTokens`` as
    ``tokens``); ``source.stats`` is the ``SyncStats`` it fills."""
    stats = stats if stats is not None else SyncStats()
    settings = settings if settings is not None else load_settings()
    source = xero_source(tenant_ids=tenants, entities=entities, reconcile=reconcile,
                         full_refresh=full_refresh, tokens=tokens, settings=settings,
                         stats=stats, contact_ids=contact_ids, memory=memory, due=due)
    source.stats = stats
    return source


__all__ = ["ENTITY_TABLE", "Entity", "make_source", "outcome_for", "schema_changes", "xero_source"]
