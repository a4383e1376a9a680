"""How one organisation's suppliers are read from Xero, and what a run remembers about them.

Xero pages Contacts by position in the requested order, evaluated anew for every page. Ordered by
``UpdatedDateUTC`` an edit moves a contact to the end and shifts every later one back, so a
reader skips a contact nobody touched. Every read here is therefore ordered by ``ContactID``,
which no edit changes: an edited contact keeps its place, a new one only pushes later ones forward
(a duplicate, never a gap). The cursor is Xero's own clock (the envelope's ``DateTimeUTC``) when a
read began, so whatever was edited while we paged is read again next run.

Per organisation and run, one of:

- **full read** (first run, ``full_refresh``, or an unfinished full read): every supplier, page by
  page; resumable at the next page after a day limit (positions are stable in this order);
- **incremental read**: ``If-Modified-Since`` the cursor minus an overlap; rows whose content did
  not change inside the overlap are not yielded again (hashes kept for that window only);
- **reconciliation** (every ``reconcile_interval_hours``, or on demand) after the incremental
  read: finds contacts whose ``IsSupplier`` changed without ``UpdatedDateUTC`` moving. One probe
  (``pageSize=1``) gives Xero's supplier count; a rotating slice (``1/reconcile_sweep_parts``)
  of the supplier list is read in summary form. A contact there that we do not know became a
  supplier; if the counts still differ, the whole summary list is read and compared, and the
  contacts that stopped being suppliers are read again and loaded with ``is_supplier`` false. A
  swap (one in, one out) that the count cannot see is found by the sweep within
  ``reconcile_sweep_parts`` reconciliations. Changed contacts are fetched by ``IDs=``.

High-volume organisations (Xero's ``400 HighVolumeException`` for the unoptimised ``IsSupplier``
filter) are read without the filter, suppliers chosen on our side; that is decided per
organisation on the first refusal and remembered in the state. Their reconciliation has no count
to probe: it reads a rotating slice (``1/reconcile_sweep_parts``) of every contact's summary,
pages of the unfiltered list in ContactID order, and compares each contact in it with what we
hold, so a flag flip is found within ``reconcile_sweep_parts`` reconciliations
(``SupplierRead._sweep_contacts`` says why slices are positions, not ContactID ranges).
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from connector import masking, wire
from connector.client import OrganisationSession, Page
from connector.errors import HighVolumeRefused
from connector.memory import SupplierEntry, supplier_entry

log = logging.getLogger(__name__)

PATH = "Contacts"
COLLECTION = "Contacts"
ENTITY = "suppliers"
ORDER = "ContactID ASC"
SUPPLIER_FILTER = "IsSupplier==true"
BASE_PARAMS = {"includeArchived": "true", "order": ORDER}
TARGETED = "t"  # marks a recent hash a targeted (webhook) read recorded


# --- the supplier rule ---------------------------------------------------------------------------

def is_supplier(record: dict, *, unknown: bool) -> bool:
    """Whether a contact (a raw record or a built row) is a supplier by Xero's ``IsSupplier``.

    Xero computes ``IsSupplier`` (true once a bill was entered against the contact) and sends it
    as true or false; a record may also come without it (absent, null, or a value that is not a
    boolean). What such an unknown flag means depends on the answer it came in, so the caller
    says so with ``unknown``:

    - ``unknown=True`` where Xero already chose the contacts (an answer to
      ``where=IsSupplier==true``) or where only an explicit false may take a supplier away
      (reads by ``IDs=``, membership updates): unknown counts as a supplier;
    - ``unknown=False`` where we choose suppliers ourselves from an unfiltered answer (a
      high-volume organisation): only an explicit true counts.

    Every supplier decision of the connector goes through this function.
    """
    flag = record.get("IsSupplier")
    return flag if isinstance(flag, bool) else unknown


# --- the remembered state ------------------------------------------------------------------------

def encode_ids(ids: Iterable[str]) -> str:
    """A set of ContactIDs as compact text for dlt state (16 bytes each, base64)."""
    raw = b"".join(sorted(uuid.UUID(i).bytes for i in ids))
    return base64.b64encode(raw).decode("ascii")


def decode_ids(text: str | list[str]) -> set[str]:
    """The inverse of ``encode_ids`` (also of a list of encoded chunks)."""
    if isinstance(text, list):
        return set().union(*(decode_ids(chunk) for chunk in text))
    raw = base64.b64decode(text)
    return {str(uuid.UUID(bytes=raw[i:i + 16])) for i in range(0, len(raw), 16)}


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat() if moment else None


def _from_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


VERSION = 3  # dlt state without per-record data (memory rows hold it: connector.memory)


@dataclass
class SupplierState:
    """What the next run needs to know about one organisation's suppliers.

    The cursors row (``connector.memory.CURSORS_KEY``; dlt's state before) keeps the small part
    (``dump``): the cursor, when the last reconciliation ran,
    the high-volume flag, the sweep position and an unfinished full read's watermark and next
    page. The per-record part (members, hashes near the cursor, what an unfinished full read
    found) is memory rows (``connector.memory``): ``memory_changes`` says which to write.

    ``members`` is None for state written before membership was kept: the next reconciliation is
    then a full read, which establishes it.
    """

    cursor: datetime | None = None  # Xero's time when the last complete read began
    # id -> [hash, updated iso] (+ TARGETED when a webhook-driven read loaded it)
    recent: dict[str, list[str]] = field(default_factory=dict)
    reconciled_at: datetime | None = None
    members: set[str] | None = None  # ContactIDs we hold as suppliers
    high_volume: bool = False  # read without the IsSupplier filter
    # where the next reconciliation's sweep starts: a page index in the supplier list, or for a
    # high-volume organisation a position in the list of every contact
    sweep: int = 0
    sweep_part: int = 0  # high volume: the slices of the current rotation read so far
    full_read: dict[str, Any] | None = None  # an unfinished full read: watermark, next page
    found: set[str] = field(default_factory=set)  # what the unfinished full read found so far
    # the memory rows as stored: id -> entry (empty when moving out of an older dlt state)
    written: dict[str, SupplierEntry] = field(default_factory=dict)

    @classmethod
    def load(cls, raw: dict[str, Any] | None,
             memory_rows: Iterable[dict[str, Any]] = ()) -> SupplierState:
        """The state from dlt's part and the organisation's memory rows.

        State an older version wrote (ids, hashes and a full read's ids in dlt's state) is read
        from there instead, and ``written`` left empty, so this run writes all of it as memory
        rows.
        """
        raw = raw or {}
        full_read = raw.get("full_read")
        state = cls(
            cursor=_from_iso(raw.get("cursor")),
            reconciled_at=_from_iso(raw.get("reconciled_at")),
            high_volume=bool(raw.get("high_volume")),
            sweep=int(raw.get("sweep") or 0),
            sweep_part=int(raw.get("sweep_part") or 0),
            full_read={"watermark": full_read.get("watermark"),
                       "next_page": full_read.get("next_page")} if full_read else None,
        )
        if raw and int(raw.get("v") or 0) < VERSION:  # an older version's state
            members = raw.get("members")
            state.members = decode_ids(members) if isinstance(members, str) else None
            state.recent = dict(raw.get("recent") or {})
            chunks = (full_read or {}).get("members") or []
            state.found = decode_ids(chunks if isinstance(chunks, list) else [chunks])
            return state
        watermark = (state.full_read or {}).get("watermark")
        members: set[str] | None = set() if raw.get("members") else None
        for row in memory_rows:
            key = row["record_id"]
            entry = supplier_entry(row)
            state.written[key] = entry
            member, digest, updated, targeted, found_by = entry
            if member and members is not None:
                members.add(key)
            if digest is not None and updated is not None:
                state.recent[key] = [digest, updated, *([TARGETED] if targeted else [])]
            if watermark is not None and found_by == watermark:
                state.found.add(key)
        state.members = members
        return state

    def dump(self) -> dict[str, Any]:
        """dlt's part of the state: a few hundred bytes, whatever the number of suppliers."""
        state: dict[str, Any] = {"v": VERSION, "sweep": self.sweep}
        if self.cursor:
            state["cursor"] = _iso(self.cursor)
        if self.reconciled_at:
            state["reconciled_at"] = _iso(self.reconciled_at)
        if self.members is not None:
            state["members"] = True  # the memory rows say who
        if self.high_volume:
            state["high_volume"] = True
        if self.sweep_part:
            state["sweep_part"] = self.sweep_part
        if self.full_read:
            state["full_read"] = self.full_read
        return state

    def entry(self, key: str) -> SupplierEntry | None:
        """The memory row one supplier should have now (None: nothing to remember)."""
        in_read = key in self.found and self.full_read is not None
        member = (key in self.members or in_read) if self.members is not None else (
            True if in_read else None)
        recent = self.recent.get(key)
        if not member and recent is None:
            return None
        written = self.written.get(key)
        found_by = self.full_read["watermark"] if in_read and self.full_read else (
            written[4] if written else None)
        if recent is None:
            return member, None, None, False, found_by
        return member, recent[0], recent[1], recent[2:] == [TARGETED], found_by

    def memory_changes(self, keys: Iterable[str] | None = None
                       ) -> list[tuple[str, SupplierEntry | None]]:
        """The memory rows to write for ``keys`` (default every key this state knows) so the
        stored ones match this state; they count as written from now on."""
        if keys is None:
            keys = set(self.written) | set(self.recent) | self.found | (self.members or set())
        out: list[tuple[str, SupplierEntry | None]] = []
        for key in keys:
            entry = self.entry(key)
            written = self.written.get(key)
            if entry == written:
                continue
            if entry is None:
                del self.written[key]
            else:
                self.written[key] = entry
            out.append((key, entry))
        return out


# --- one organisation's read ---------------------------------------------------------------------

@dataclass(frozen=True)
class ReadOptions:
    """The settings and run facts a supplier read depends on."""

    started_at: datetime
    overlap: timedelta
    reconcile_interval: timedelta
    sweep_parts: int
    ids_per_call: int
    page_size: int
    reconcile: bool = False
    full_refresh: bool = False
    contact_ids: tuple[str, ...] | None = None
    """A targeted read (Xero's webhook events): exactly these contacts by ``IDs=``, nothing
    else (no full, incremental or reconciliation read)."""


# dlt's part of the state, and the memory rows (id, entry or None to forget) written with it
Progress = tuple[dict[str, Any], list[tuple[str, "SupplierEntry | None"]]]
Emit = Callable[[list[dict], "Progress | None"], bool]


class SupplierRead:
    """Reads one organisation's suppliers; hands rows over with ``emit``.

    ``emit(rows, progress)`` passes rows on (and, where given, the dumped state and the memory
    rows to record with them so a later run resumes there); it returns False when the run was
    cancelled. When the read ends, ``state.dump()`` and ``state.memory_changes()`` are the rest.

    Args:
        session: the organisation's session of the run's client.
        state: what the last run remembered.
        options: settings and run facts.
        build_row: validates a raw record into a row (None for a bad record, already reported).
        digest: a content hash of a raw record (taken before ``build_row`` changes it).
        warn: records a warning for this organisation's suppliers.
        stored: looks up values already loaded (masked values must not overwrite them).
    """

    def __init__(
        self,
        session: OrganisationSession,
        state: SupplierState,
        options: ReadOptions,
        *,
        build_row: Callable[[dict], dict | None],
        digest: Callable[[dict], str],
        warn: Callable[[str], None],
        stored: masking.StoredValues,
        emit: Emit,
        memory: Callable[[], SupplierState] | None = None,
        admit: Callable[[bool], None] = lambda probe: None,
    ) -> None:
        self.session = session
        self._take(state)
        self._memory = memory
        self.options = options
        self.build_row = build_row
        self.digest = digest
        self.warn = warn
        self.stored = stored
        self.emit = emit
        self.admit = admit
        self.yielded: set[str] = set()  # ContactIDs loaded by this run
        self.touched: set[str] = set()  # ContactIDs whose memory changed since the last emit

    def _take(self, state: SupplierState) -> None:
        """Read from ``state`` (kept as ``old``) into a working copy."""
        self.old = state
        self.state = SupplierState(**{**vars(state), "recent": dict(state.recent),
                                      "members": set(state.members)
                                      if state.members is not None else None,
                                      "found": set(state.found),
                                      "written": dict(state.written)})

    def _ensure_memory(self) -> None:
        """Read the organisation's memory rows, the first time they are needed.

        An incremental read that Xero answers with no record (the usual run) needs none, so
        it reads none: no query, no connection. What the read changed in dlt's part so far (the
        high-volume switch) is kept.
        """
        if self._memory is None:
            return
        load, self._memory = self._memory, None
        now = self.state
        self._take(load())
        for name in ("cursor", "reconciled_at", "high_volume", "sweep", "sweep_part",
                     "full_read"):
            setattr(self.state, name, getattr(now, name))

    # -- the plan -------------------------------------------------------------------------------

    def run(self) -> SupplierState:
        """Read what this run needs; returns the state to remember."""
        o = self.options
        if o.contact_ids is not None:
            self._ensure_memory()
            self._targeted(o.contact_ids)
            return self.state
        due = (o.reconcile or self.state.reconciled_at is None
               or o.started_at - self.state.reconciled_at >= o.reconcile_interval)
        if o.full_refresh or due or self.state.cursor is None or self.state.full_read:
            self._ensure_memory()
        state = self.state
        if o.full_refresh:
            state.full_read, state.cursor, state.recent = None, None, {}
        if state.cursor is None or state.full_read or (due and state.members is None):
            self._full_read()
            return state
        self._incremental()
        if due:
            self._reconcile()
        return self.state

    def _pages(self, *, summary: bool = False, since: datetime | None = None,
               start_page: int = 1, page_size: int | None = None) -> Iterator[Page]:
        """Contacts pages in ContactID order; the filter unless the organisation is too large.

        A ``HighVolumeException`` on the first page switches the organisation to unfiltered
        reads for good (remembered in the state) and starts again that way.
        """
        params = dict(BASE_PARAMS)
        if summary:
            params["summaryOnly"] = "true"
        while True:
            filtered = not self.state.high_volume
            query = {**params, "where": SUPPLIER_FILTER} if filtered else params
            try:
                yield from self.session.iter_pages(
                    PATH, COLLECTION, entity=ENTITY, params=query, if_modified_since=since,
                    page_size=page_size or self.options.page_size, start_page=start_page)
                return
            except HighVolumeRefused:
                if not filtered:
                    raise
                self._switch_to_high_volume()

    def _admitted(self, pages: Iterator[Page], *, probe: bool = False) -> Iterator[Page]:
        """``pages``, each fetched only once ``admit`` lets it: the run bounds how many
        decoded pages wait for dlt across all organisations (a reader waits without one).
        ``probe``: the first page is an incremental read's, mostly empty (``admit(True)``)."""
        while True:
            self.admit(probe)
            probe = False
            try:
                page = next(pages)
            except StopIteration:
                return
            yield page

    def _switch_to_high_volume(self) -> None:
        self.state.high_volume = True
        self.state.full_read = None  # positions of the filtered list mean nothing now
        self.state.sweep = self.state.sweep_part = 0  # nor does the sweep's place in it
        self.warn("suppliers: Xero refused the IsSupplier filter for this high-volume "
                  "organisation (HighVolumeException); reading every contact and choosing "
                  "suppliers here from now on")

    # -- full read ------------------------------------------------------------------------------

    def _full_read(self) -> None:
        state = self.state
        resume = state.full_read or {}
        watermark = _from_iso(resume.get("watermark"))
        found = state.found  # what the unfinished full read found (memory rows say which)
        start = int(resume.get("next_page") or 1)
        newest: list[datetime] = []  # the cursor if Xero's envelope had no DateTimeUTC
        for page in self._admitted(self._pages(start_page=start)):
            if watermark is None:
                watermark = page.server_time
            rows = self._rows(page.records, watermark, newest)
            new = {_key(r) for r in rows if is_supplier(r, unknown=True)} - found
            found |= new
            self.touched |= new
            state.full_read = {"watermark": _iso(watermark), "next_page": page.number + 1}
            # The page's members go with its rows: a full read a day limit stops resumes here.
            if not self._emit(rows, self._progress()):
                return
        gone = (self.old.members or set()) - found - self.yielded
        if gone:
            self._load_ids(gone)
        state.members = found
        state.full_read = None
        state.found = set()
        state.cursor = watermark or max(newest, default=None) or state.cursor
        state.reconciled_at = self.options.started_at
        self._prune_recent()

    def _progress(self) -> tuple[dict[str, Any], list[tuple[str, Any]]]:
        """The state to record with the rows emitted now, and the memory rows that go with
        them (those of the records touched since the last emit)."""
        keys, self.touched = self.touched, set()
        return self.state.dump(), self.state.memory_changes(keys)

    # -- incremental read -----------------------------------------------------------------------

    def _incremental(self) -> None:
        state = self.state
        assert state.cursor is not None
        since = state.cursor - self.options.overlap
        watermark: datetime | None = None
        for page in self._admitted(self._pages(since=since), probe=True):
            if watermark is None:
                watermark = page.server_time
            if page.records and self._memory is not None:
                self._ensure_memory()  # the hashes near the cursor drop re-sent rows
                state = self.state
            rows = self._rows(page.records, state.cursor, [], dedupe=True)
            self._track_members(rows)
            if not self._emit(rows, None):
                return
        if watermark is not None and watermark > state.cursor:
            state.cursor = watermark
        self._prune_recent()

    def _track_members(self, rows: list[dict]) -> None:
        members = self.state.members
        if members is None:
            return
        for row in rows:
            if is_supplier(row, unknown=True):
                members.add(_key(row))
            else:
                members.discard(_key(row))

    # -- reconciliation -------------------------------------------------------------------------

    def _reconcile(self) -> None:
        state = self.state
        members = state.members
        assert members is not None
        if state.high_volume:
            self._sweep_contacts(members)
        else:
            count, found = self._probe_and_sweep()
            if count is None:  # the probe met the high-volume refusal
                self._sweep_contacts(members)
            else:
                new = found - members - self.yielded
                if new:
                    self._load_ids(new)
                    members |= new
                if count != len(members):
                    xero = self._supplier_ids(self._pages(summary=True))
                    self._apply_difference(xero, members)
        state.reconciled_at = self.options.started_at

    def _sweep_contacts(self, members: set[str]) -> None:
        """A high-volume organisation's reconciliation: one rotating slice of every contact's
        summary, ``1/reconcile_sweep_parts`` of them, compared with what we hold.

        Xero gives such an organisation no supplier count and no filtered list (``IsSupplier``
        is not an optimised filter), so each contact in the slice is judged here: a supplier we
        do not hold became one, a contact we hold that is no longer a supplier stopped being
        one. Both are read again by ``IDs=`` and loaded. Without a count there is nothing to say
        that a change happened elsewhere, so a flag flip is found when the rotation reaches its
        contact: within ``reconcile_sweep_parts`` reconciliations.

        A slice is addressed by position, as pages of the unfiltered list in ContactID order
        (``summaryOnly``, archived included, ``page`` and ``pageSize``: every part of it Xero
        allows on a high-volume organisation). Not by ContactID ranges: Xero documents only
        ``ContactID==Guid(...)`` (the sandbox, like Dynamic LINQ, refuses ``>=`` on a Guid as a
        parse error), and a database may order GUIDs otherwise than as text (SQL Server compares
        a uniqueidentifier's last six bytes first), so a range in our order need not be one in
        Xero's. Positions in ContactID order are stable: an edit keeps a contact's place, Xero
        never deletes a contact (archived ones are in the list), and a new contact only pushes
        later ones forward. The sweep keeps the position where the next slice starts
        (``sweep``, one integer in dlt's state); a contact not yet reached can only move further
        from it, never behind it, so inserts between reconciliations, or between the pages of
        one, cause a duplicate, never a gap.

        Slice ``j`` of ``parts`` ends at page ``floor(j * pages / parts)`` of ``page_size``
        (pages counted from what the first page reports), so a slice is 1/parts of the list to
        within a page, and the last slice reads to the end of the list: a rotation is ``parts``
        reconciliations (fewer for a list of fewer pages), however many contacts were added
        meanwhile (``sweep_part`` counts its slices). Contacts added can push a contact not yet
        read into the next slice, so between two rotations its visits may be a reconciliation
        further apart; they cannot make a slice skip it.
        """
        state = self.state
        size = self.options.page_size
        parts = max(1, self.options.sweep_parts)
        first = state.sweep // size + 1
        part = min(state.sweep_part, parts - 1) + 1  # this slice's number in the rotation
        page = self._summary_page(first, size)
        if not page.records and first > 1:  # past the end: the list is shorter than it was
            first, part = 1, 1
            page = self._summary_page(first, size)
        pages_read = [page]
        if page.item_count is None:  # no count: read to the end of the list
            while len(page.records) >= size:
                page = self._summary_page(page.number + 1, size)
                pages_read.append(page)
            last = page.number
            end = True
        else:
            total_pages = max(1, -(-page.item_count // size))
            last = _slice_end(first, part, total_pages, parts)
            for number in range(first + 1, last + 1):
                pages_read.append(self._summary_page(number, size))
            end = last >= total_pages
        state.sweep, state.sweep_part = (0, 0) if end else (last * size, part)
        seen: set[str] = set()
        suppliers: set[str] = set()
        for read in pages_read:
            for raw in read.records:
                contact_id = raw.get("ContactID")
                if not isinstance(contact_id, str):
                    continue
                key = contact_id.lower()
                seen.add(key)
                if is_supplier(raw, unknown=False):  # an unfiltered answer: we choose
                    suppliers.add(key)
        gained = suppliers - members
        lost = (members & seen) - suppliers
        changed = (gained | lost) - self.yielded
        if changed:
            self._load_ids(changed)
        state.members = (members - lost) | gained

    def _summary_page(self, number: int, size: int) -> Page:
        """One page of every contact's summary in ContactID order (no filter)."""
        return self.session.get_page(
            PATH, COLLECTION, entity=ENTITY, number=number,
            params={**BASE_PARAMS, "summaryOnly": "true", "pageSize": str(size),
                    "page": str(number)})

    def _probe_and_sweep(self) -> tuple[int | None, set[str]]:
        """Xero's supplier count (None if refused) and the ids of this run's sweep slice."""
        try:
            probe = self.session.get_page(
                PATH, COLLECTION, entity=ENTITY,
                params={**BASE_PARAMS, "where": SUPPLIER_FILTER, "summaryOnly": "true",
                        "pageSize": "1", "page": "1"})
        except HighVolumeRefused:
            self._switch_to_high_volume()
            return None, set()
        count = probe.item_count if probe.item_count is not None else len(probe.records)
        if count == 0:
            return 0, set()
        parts = max(1, self.options.sweep_parts)
        size = min(self.options.page_size, -(-count // parts))
        pages = -(-count // size)
        per_run = -(-pages // parts)
        first = self.state.sweep % pages
        found: set[str] = set()
        for offset in range(per_run):
            number = (first + offset) % pages + 1
            page = self.session.get_page(
                PATH, COLLECTION, entity=ENTITY, number=number,
                params={**BASE_PARAMS, "where": SUPPLIER_FILTER, "summaryOnly": "true",
                        "pageSize": str(size), "page": str(number)})
            found |= self._supplier_ids([page])
        self.state.sweep = (first + per_run) % pages
        return count, found

    def _supplier_ids(self, pages: Iterable[Page]) -> set[str]:
        ids: set[str] = set()
        for page in pages:
            for raw in page.records:
                contact_id = raw.get("ContactID")
                if isinstance(contact_id, str) and is_supplier(raw, unknown=True):
                    ids.add(contact_id.lower())
        return ids

    def _apply_difference(self, xero: set[str], members: set[str]) -> None:
        """Load the contacts whose supplier status differs from what we hold; adopt Xero's set."""
        changed = (xero - members) | (members - xero)
        changed -= self.yielded
        if changed:
            self._load_ids(changed)
        self.state.members = xero

    # -- targeted read (webhook events) ----------------------------------------------------------

    def _targeted(self, ids: Iterable[str]) -> None:
        """Read exactly these contacts and load the suppliers among them, plus those that stopped
        being one (``is_supplier`` false); other contacts are read and ignored.

        Their hashes are kept marked, so the incremental read that meets them again within its
        overlap (the cursor does not move here) does not load them a second time.
        """
        self._load_ids({i.lower() for i in ids}, targeted=True)
        self._prune_recent()  # as every read does: hashes older than the overlap go

    def _load_ids(self, ids: Iterable[str], *, targeted: bool = False) -> None:
        """Read contacts by id (Xero's optimised ``IDs``, archived included) and load them."""
        wanted = sorted(ids)
        step = max(1, self.options.ids_per_call)
        for i in range(0, len(wanted), step):
            chunk = wanted[i:i + step]
            self.admit(False)
            page = self.session.get_page(
                PATH, COLLECTION, entity=ENTITY,
                params={"IDs": ",".join(chunk), "includeArchived": "true", "page": "1",
                        "pageSize": str(self.options.page_size)})
            records = page.records
            if targeted:
                records = [r for r in records if is_supplier(r, unknown=True)
                           or str(r.get("ContactID")).lower() in (self.old.members or set())]
            rows = self._rows(records, self.state.cursor, [], dedupe=targeted,
                              mark=targeted)
            if targeted:
                self._track_members(rows)
            missing = set(chunk) - {str(r.get("ContactID")).lower() for r in page.records}
            if missing:
                log.info("%d contacts not returned by id (gone at Xero)", len(missing))
            if not self._emit(rows, None):
                return

    # -- rows -----------------------------------------------------------------------------------

    def _rows(self, records: list[dict], bound: datetime | None, newest: list[datetime],
              *, dedupe: bool = False, mark: bool = False) -> list[dict]:
        """Rows of one page: validated, filtered to suppliers (or ex-suppliers we hold), masked
        values restored, and (``dedupe``) without the unchanged ones of the overlap window.

        Hashes are kept only for records a later run may meet again: those updated within the
        overlap of ``bound`` (the cursor to be). A ``mark``ed hash (a targeted read's) also
        stands for a record updated after ``bound``: the cursor did not move past it.
        """
        horizon = self.options.overlap + timedelta(seconds=2)
        members = self.old.members or set()
        rows: list[dict] = []
        for raw in records:
            contact_id = raw.get("ContactID")
            if self.state.high_volume and not is_supplier(raw, unknown=False) \
                    and str(contact_id).lower() not in members:
                continue  # a contact that is not (and was not) a supplier
            hint = _updated_hint(raw)
            near = hint is None or bound is None or hint >= bound - horizon
            needs_digest = near or (dedupe and contact_id in self.state.recent)
            text = self.digest(raw) if needs_digest else None
            row = self.build_row(raw)
            if row is None:
                continue
            updated = row["UpdatedDateUTC"]
            if not newest or updated > newest[0]:
                newest[:] = [updated]  # only the newest is needed: memory must not grow with N
            if text is not None:
                seen = self.state.recent.get(row["ContactID"])
                if dedupe and seen is not None and seen[0] == text and (
                        (bound is not None and updated <= bound) or seen[2:] == [TARGETED]):
                    continue
                if near:
                    self.state.recent[row["ContactID"]] = [text, updated.isoformat(),
                                                           *([TARGETED] if mark else [])]
                    self.touched.add(row["ContactID"])
            rows.append(row)
        masking.restore(rows, self.stored, self.warn)
        self.yielded.update(_key(r) for r in rows)
        return rows

    def _prune_recent(self) -> None:
        if self.state.cursor is None:
            return
        horizon = self.state.cursor - self.options.overlap - timedelta(seconds=2)
        self.state.recent = {k: v for k, v in self.state.recent.items()
                             if datetime.fromisoformat(v[1]) >= horizon}

    def _emit(self, rows: list[dict], progress: Progress | None) -> bool:
        return self.emit(rows, progress)


def _slice_end(first: int, part: int, pages: int, parts: int) -> int:
    """The last page of slice ``part`` (1-based) of a rotation of ``parts``, starting on page
    ``first`` of ``pages``: page ``floor(part * pages / parts)``, so the slices differ in size by
    one page at most; at least ``first`` (a slice reads a page), and the last slice reads to the
    end of the list whatever it grew to."""
    if part >= parts:
        return pages
    return min(pages, max(first, (part * pages) // parts))


def _key(row: dict) -> str:
    """A row's ContactID as members and ``IDs=`` hold it (lower case); the row's own string when
    it already is, so the run's id sets share one copy of each id."""
    text = str(row["ContactID"])
    lower = text.lower()
    return text if lower == text else lower


def _updated_hint(raw: dict) -> datetime | None:
    """A record's UpdatedDateUTC before validation, when it reads cleanly."""
    value = raw.get("UpdatedDateUTC")
    try:
        return wire.parse_net_date(value) if wire.is_net_date(value) else None
    except ValueError:
        return None


__all__ = ["ReadOptions", "SupplierRead", "SupplierState", "decode_ids", "encode_ids",
           "is_supplier"]
