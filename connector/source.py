"""The dlt source: suppliers, accounts, tax rates and tracking categories/options of every
connected organisation, loaded in parallel, incrementally, with deletions marked.

Tables (every row, child rows included, carries ``tenant_id``, part of every primary key):

- ``suppliers`` (tenant_id, contact_id): Contacts ``where=IsSupplier==true``, archived included,
  1000 a page in ``ContactID`` order, ``If-Modified-Since`` the cursor minus an overlap; a cheap
  reconciliation once a day or on demand (see ``connector.suppliers``).
- ``accounts`` (tenant_id, account_id): one call, the snapshot diffed against state.
- ``tax_rates`` (tenant_id, tax_type): one call; components in ``tax_rates__tax_components``.
- ``tracking_categories`` (tenant_id, tracking_category_id) and ``tracking_options``
  (tenant_id, tracking_option_id, with tracking_category_id): one call shared by both.

Snapshot entities yield only what changed since the last run (a content hash per key is kept in
the resource state, per organisation); a key that disappears at Xero is yielded once more with
``is_deleted = true`` and ``deleted_at`` = the time it was found missing (rows Xero still lists
but calls deleted — ``Status`` DELETED, ``IsDeleted`` — carry ``is_deleted = true`` and no
``deleted_at``). With history on for an
entity (``history`` setting) the table is dlt ``scd2``: the whole snapshot is yielded and rows are
retired only within the organisations loaded (``merge_key`` on ``tenant_id``).

An organisation that fails (dead grant, disconnected, day limit, retries exhausted, malformed
body) is recorded in the run's ``SyncStats`` and stops; it never aborts the other organisations.
Cursors advance only over rows that were yielded. No token ever reaches the state or a row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import dlt
from dlt.extract.resource import DltResource

from connector import masking
from connector.client import Organisation, XeroClient
from connector.errors import ConfigurationError, XeroError
from connector.models import (
    Account,
    Contact,
    TaxRate,
    TrackingCategory,
    TrackingOption,
    XeroModel,
    validate_record,
)
from connector.settings import ENTITIES, XeroSettings, load_settings
from connector.stats import OK, SKIPPED, SyncStats, outcome_for
from connector.suppliers import ReadOptions, SupplierRead, SupplierState

log = logging.getLogger(__name__)

TENANT_ID = "tenant_id"
TRACKING_PATH = "TrackingCategories"


@dataclass(frozen=True)
class Entity:
    """One table: where it comes from at Xero and how it is keyed."""

    name: str
    path: str  # Accounting API path
    collection: str  # key of the records in Xero's envelope
    model: type[XeroModel]
    key: str  # Xero's key field
    incremental: bool = False  # True: cursor + If-Modified-Since; False: snapshot + diff
    params: tuple[tuple[str, str], ...] = ()


ENTITY_TABLE: dict[str, Entity] = {
    e.name: e
    for e in (
        Entity("suppliers", "Contacts", "Contacts", Contact, "ContactID", incremental=True,
               params=(("where", "IsSupplier==true"), ("includeArchived", "true"),
                       ("order", "UpdatedDateUTC ASC"))),
        Entity("accounts", "Accounts", "Accounts", Account, "AccountID"),
        Entity("tax_rates", "TaxRates", "TaxRates", TaxRate, "TaxType"),
        Entity("tracking_categories", TRACKING_PATH, "TrackingCategories", TrackingCategory,
               "TrackingCategoryID", params=(("includeArchived", "true"),)),
        Entity("tracking_options", TRACKING_PATH, "TrackingCategories", TrackingOption,
               "TrackingOptionID", params=(("includeArchived", "true"),)),
    )
}
assert tuple(ENTITY_TABLE) == ENTITIES


# --- small helpers -------------------------------------------------------------------------------

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


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _stamp_children(row: dict, tenant_id: str) -> None:
    """Put ``tenant_id`` on every dict inside a list (they become child-table rows)."""
    for value in row.values():
        if isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    item[TENANT_ID] = tenant_id
                    _stamp_children(item, tenant_id)
        elif isinstance(value, dict):
            _stamp_children(value, tenant_id)


def _contract(mode: str) -> Any:
    """dlt schema contract for the ``schema_contract`` setting (new tables always allowed)."""
    if mode == "evolve":
        return None
    if mode == "freeze":
        return {"tables": "evolve", "columns": "freeze", "data_type": "freeze"}
    return {"tables": "evolve", "columns": mode, "data_type": "evolve"}


# --- the run: organisations, client, shared fetches ----------------------------------------------

class _Run:
    """What one extraction shares across resources: the client, the organisations, the pool."""

    def __init__(
        self,
        settings: XeroSettings,
        store: Any,
        stats: SyncStats,
        orgs: list[Organisation],
        *,
        reconcile: bool,
        full_refresh: bool,
        resources: int,
    ) -> None:
        self.settings = settings
        self.stats = stats
        self.orgs = orgs
        self.reconcile = reconcile
        self.full_refresh = full_refresh
        self.started_at = datetime.now(UTC)
        self.client = XeroClient(settings, store, stats)
        self.pool = ThreadPoolExecutor(max_workers=max(4, 4 * len(orgs)),
                                       thread_name_prefix="xero-org")
        self._lock = threading.Lock()
        self._tracking: dict[str, Future[list[dict]]] = {}
        self._open = resources

    def resource_done(self) -> None:
        """Called as each resource finishes; the last one closes the client."""
        with self._lock:
            self._open -= 1
            last = self._open == 0
        if last:
            self.pool.shutdown(wait=False, cancel_futures=True)
            self.client.close()

    def fetch_snapshot(self, org: Organisation, entity: Entity) -> list[dict]:
        """The raw records of a snapshot entity for one organisation (one call)."""
        session = self.client.session(org)
        if entity.path == TRACKING_PATH:
            categories = self._tracking_categories(org)
            if entity.name == "tracking_categories":
                return [{k: v for k, v in c.items() if k != "Options"} for c in categories]
            options = []
            for category in categories:
                for option in category.get("Options") or []:
                    if isinstance(option, dict):
                        options.append({**option,
                                        "TrackingCategoryID": category.get("TrackingCategoryID")})
            return options
        records, _ = session.get_collection(entity.path, entity.collection, entity=entity.name,
                                            params=dict(entity.params))
        return records

    def _tracking_categories(self, org: Organisation) -> list[dict]:
        """One ``GET /TrackingCategories`` per organisation per run, shared by both tables."""
        with self._lock:
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
            row, notes = validate_record(entity.model, raw)
        except ValueError as exc:
            self.bad_record(org, entity, raw, str(exc))
            return None
        for note in notes:
            self.stats.warn(
                org.tenant_id, entity.name,
                f"{entity.name}: field {note} in organisation {org.name or org.tenant_id}; "
                "loaded as it came (dlt adds a variant column for a changed type)",
            )
        _stamp_children(row, org.tenant_id)
        return {TENANT_ID: org.tenant_id, **row}


# --- snapshot entities ---------------------------------------------------------------------------

def _snapshot_rows(run: _Run, entity: Entity, history: bool) -> Iterator[list[dict]]:
    """Per organisation, the rows of a snapshot entity that changed (all of them, with history)."""
    tenants_state: dict[str, Any] = dlt.current.resource_state().setdefault("tenants", {})
    try:
        futures = {run.pool.submit(run.fetch_snapshot, org, entity): org for org in run.orgs}
        for org in run.orgs:
            run.stats.start(org.tenant_id, entity.name, org.name)
        for future in as_completed(futures):
            org = futures[future]
            try:
                records = future.result()
            except XeroError as exc:
                run.stats.fail(org.tenant_id, entity.name, exc)
                continue
            except Exception as exc:  # a bug must not take the other organisations down
                log.exception("unexpected error reading %s for %s", entity.name, org.tenant_id)
                run.stats.fail(org.tenant_id, entity.name, exc)
                continue
            previous = {} if run.full_refresh else tenants_state.get(org.tenant_id, {})
            rows, known = _diff_snapshot(run, org, entity, records, previous.get("rows", {}),
                                         history)
            if rows:
                yield rows
            tenants_state[org.tenant_id] = {"rows": known}
            run.stats.add_rows(org.tenant_id, entity.name, len(rows))
            run.stats.finish(org.tenant_id, entity.name, OK)
    finally:
        run.resource_done()


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
    records: list[dict],
    known: dict[str, dict],
    history: bool,
) -> tuple[list[dict], dict[str, dict]]:
    """Rows to yield and the new per-key state for one organisation's snapshot.

    State per key: ``h`` (content hash), ``raw`` (canonical JSON, to mark a deletion with the
    last values), ``deleted_at`` (when it was found missing, if it is).
    """
    rows: list[dict] = []
    new_known: dict[str, dict] = {}
    for raw in records:
        key = raw.get(entity.key)
        text = _canonical(raw)
        digest = _digest(text)
        row = run.build_row(org, entity, raw)
        if row is None:
            if isinstance(key, str) and key in known:
                new_known[key] = known[key]  # a bad record is not a deleted one
            continue
        before = known.get(key)
        if history or before is None or before["h"] != digest or before.get("deleted_at"):
            rows.append(_listed(row))
        new_known[key] = {"h": digest, "raw": text}
    for key, before in known.items():
        if key in new_known:
            continue
        deleted_at = before.get("deleted_at") or _iso(run.started_at)
        new_known[key] = {**before, "deleted_at": deleted_at}
        if before.get("deleted_at") and not history:
            continue  # already marked in an earlier run
        raw = json.loads(before["raw"], parse_float=Decimal)
        row = run.build_row(org, entity, raw)
        if row is not None:
            row.pop("IsDeleted", None)
            rows.append({**row, "is_deleted": True, "deleted_at": _from_iso(deleted_at)})
    return rows, new_known


# --- suppliers (incremental; the read strategy is in connector.suppliers) -----------------------

_DONE = object()


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


def _supplier_rows(run: _Run) -> Iterator[list[dict]]:
    """Yield suppliers as organisations read them (in parallel); record each organisation's
    state only once the rows it covers have been handed over."""
    entity = ENTITY_TABLE["suppliers"]
    tenants_state: dict[str, Any] = dlt.current.resource_state().setdefault("tenants", {})
    options = _read_options(run)
    pipeline = masking.running_pipeline()  # dlt's context is this thread's, not the readers'
    pages: queue.Queue[tuple[Organisation, Any, SupplierState | None]] = queue.Queue(
        maxsize=4 * max(1, len(run.orgs)))
    cancelled = threading.Event()

    def put(item: tuple[Organisation, Any, SupplierState | None]) -> bool:
        while not cancelled.is_set():
            try:
                pages.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def read(org: Organisation, state: SupplierState) -> None:
        def emit(rows: list[dict], progress: SupplierState | None) -> bool:
            return put((org, rows, progress))

        reader = SupplierRead(
            run.client.session(org), state, options,
            build_row=lambda raw: run.build_row(org, entity, raw),
            digest=lambda raw: _digest(_canonical(raw)),
            warn=lambda message: run.stats.warn(org.tenant_id, entity.name, message),
            stored=masking.destination_values(pipeline, org.tenant_id),
            emit=emit,
        )
        try:
            final = reader.run()
            put((org, _DONE, final))
        except BaseException as exc:
            put((org, exc, None))

    try:
        for org in run.orgs:
            run.stats.start(org.tenant_id, entity.name, org.name)
            state = SupplierState.load(tenants_state.get(org.tenant_id))
            run.pool.submit(read, org, state)
        active = len(run.orgs)
        while active:
            org, item, progress = pages.get()
            if item is _DONE:
                active -= 1
                assert progress is not None
                tenants_state[org.tenant_id] = progress.dump()
                run.stats.finish(org.tenant_id, entity.name, OK)
                continue
            if isinstance(item, BaseException):
                active -= 1
                if not isinstance(item, XeroError):
                    log.error("unexpected error reading suppliers for %s: %r", org.tenant_id,
                              item)
                run.stats.fail(org.tenant_id, entity.name, item)
                continue
            if item:
                yield item
            # Only now, with the rows handed over, may the state move past them.
            if progress is not None:
                tenants_state[org.tenant_id] = progress.dump()
            run.stats.add_rows(org.tenant_id, entity.name, len(item))
    finally:
        cancelled.set()
        run.resource_done()


# --- the source ----------------------------------------------------------------------------------

def _organisations(store: Any, tenants: Sequence[str] | None, stats: SyncStats,
                   entities: Sequence[str]) -> list[Organisation]:
    """Connected organisations from the store (all, or the named ones); others are skipped."""
    by_tenant: dict[str, Organisation] = {}
    for connection in store.list_connections(statuses=["connected"]):
        if connection.tenant_id and connection.grant_id:
            by_tenant[connection.tenant_id] = Organisation(
                connection.tenant_id, connection.grant_id, connection.organisation_name)
    if tenants is None:
        return list(by_tenant.values())
    chosen = []
    for tenant_id in dict.fromkeys(tenants):
        org = by_tenant.get(tenant_id)
        if org is not None:
            chosen.append(org)
            continue
        known = store.connections_for_tenant(tenant_id)
        status = known[-1].status if known else "unknown"
        for entity in entities:
            stats.finish(tenant_id, entity, SKIPPED,
                         f"organisation {tenant_id} is not connected (status {status})")
    return chosen


def _selected(entities: Iterable[str] | None) -> list[str]:
    if entities is None:
        return list(ENTITIES)
    names = [e.strip() for e in (entities.split(",") if isinstance(entities, str) else entities)]
    unknown = set(names) - set(ENTITIES)
    if unknown:
        raise ConfigurationError(
            f"unknown entities {sorted(unknown)}; choose from {', '.join(ENTITIES)}"
        )
    # "tracking_categories" means both tracking tables: they come from one call.
    if "tracking_categories" in names and "tracking_options" not in names:
        names.append("tracking_options")
    return [e for e in ENTITIES if e in names]


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
    gen: Callable[[], Iterator[list[dict]]]
    if entity.incremental:
        def gen() -> Iterator[list[dict]]:
            yield from _supplier_rows(run)
    else:
        def gen() -> Iterator[list[dict]]:
            yield from _snapshot_rows(run, entity, history)
    return dlt.resource(
        gen, name=entity.name, columns=columns,
        schema_contract=_contract(settings.schema_contract), **hints,
    )()


@dlt.source(name="xero", section="xero")
def xero_source(
    tenants: Sequence[str] | None = None,
    entities: Sequence[str] | None = None,
    reconcile: bool = False,
    full_refresh: bool = False,
    store: Any = None,
    settings: Any = None,
    stats: Any = None,
) -> list[DltResource]:
    """Suppliers, accounts, tax rates and tracking categories/options of connected organisations.

    Args:
        tenants: tenant ids to load; default every organisation whose connection is
            ``connected``. A named organisation that is not connected is recorded as ``skipped``.
        entities: entities to load (``suppliers``, ``accounts``, ``tax_rates``,
            ``tracking_categories``, ``tracking_options``); default all. ``tracking_categories``
            brings ``tracking_options`` along (one call gives both).
        reconcile: force the full supplier read that finds contacts that became suppliers
            without ``UpdatedDateUTC`` moving (otherwise it runs every
            ``reconcile_interval_hours``).
        full_refresh: ignore the stored cursors and hashes of the organisations loaded: read
            everything and yield every row.
        store: the credential and connection store (default ``Store()``: ``XERO_ELT_HOME``).
        settings: ``XeroSettings`` (default ``load_settings()``).
        stats: a ``SyncStats`` to fill with rows, API calls, outcome and error per
            (tenant, entity); also reachable as ``source.stats`` after creation.

    Returns:
        One resource per selected entity.
    """
    if settings is None:
        settings = load_settings()
    if store is None:
        from connector.store import open_store

        store = open_store()
    if stats is None:
        stats = SyncStats()
    names = _selected(entities)
    orgs = _organisations(store, tenants, stats, names)
    run = _Run(settings, store, stats, orgs, reconcile=reconcile, full_refresh=full_refresh,
               resources=len(names))
    return [_resource(run, ENTITY_TABLE[name], settings) for name in names]


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
                if column.get("variant"):
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
    store: Any = None,
    settings: XeroSettings | None = None,
    stats: SyncStats | None = None,
) -> Any:
    """``xero_source(...)`` with ``source.stats`` set to the ``SyncStats`` it fills."""
    stats = stats if stats is not None else SyncStats()
    source = xero_source(tenants=tenants, entities=entities, reconcile=reconcile,
                         full_refresh=full_refresh, store=store, settings=settings, stats=stats)
    source.stats = stats
    return source


__all__ = ["ENTITY_TABLE", "Entity", "make_source", "outcome_for", "schema_changes", "xero_source"]
