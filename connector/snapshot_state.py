"""What a snapshot entity (accounts, tax rates, tracking) remembers per organisation between runs.

Per key: a content hash, when the key was found missing (if it was), and the record's last
values, kept so that a deletion can be marked with them. It is kept as memory rows beside the
data (``connector.memory``), one per key, and only the keys that changed are written by a run.

dlt's state held it in two older layouts, both still read once (``from_state``) so that the
first run of this version moves them into memory rows without a reload: layout 1
``{"rows": {key: {"h", "raw", "deleted_at"?}}}`` and layout 2 ``{"v": 2, "h": {key: hash},
"deleted": {key: time}, "last": base64(zlib(JSON {key: text}))}``.

Beside them, one cursors row per organisation keeps ``SnapshotMarks`` (a few dozen bytes; dlt's
state kept them before, and is read once for them): one digest of the
last whole snapshot and, for an entity Xero reads with ``If-Modified-Since`` (accounts), the
cursor and when the whole snapshot was last read. State written before the cursor existed
(``{"d": digest}``) has neither, so its first run reads the whole snapshot and starts them.
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from connector.memory import SnapshotEntry, snapshot_entry


@dataclass
class SnapshotState:
    """One organisation's memory of one snapshot entity."""

    hashes: dict[str, str] = field(default_factory=dict)
    deleted: dict[str, str] = field(default_factory=dict)  # key -> ISO time found missing
    texts: dict[str, str] = field(default_factory=dict)  # key -> canonical record text

    @staticmethod
    def is_legacy(stored: Mapping[str, Any] | None) -> bool:
        """True when dlt's state still holds this organisation's per-key memory."""
        return bool(stored) and ("rows" in stored or "h" in stored)  # type: ignore[operator]

    @classmethod
    def from_state(cls, stored: Mapping[str, Any] | None) -> SnapshotState:
        """Read what an older version left in dlt's state (either layout); empty if none."""
        if not stored:
            return cls()
        if "rows" in stored:  # layout 1
            rows: Mapping[str, Mapping[str, Any]] = stored["rows"]
            return cls(
                hashes={key: entry["h"] for key, entry in rows.items()},
                deleted={key: entry["deleted_at"] for key, entry in rows.items()
                         if entry.get("deleted_at")},
                texts={key: entry["raw"] for key, entry in rows.items()},
            )
        blob = stored.get("last")
        return cls(hashes=dict(stored.get("h") or {}), deleted=dict(stored.get("deleted") or {}),
                   texts=_unpack(blob) if blob else {})

    @classmethod
    def from_memory(cls, rows: Iterable[Mapping[str, Any]]) -> SnapshotState:
        """Read the memory rows of one organisation's entity."""
        state = cls()
        for row in rows:
            if row.get("hash") is None:
                continue
            key = row["record_id"]
            state.hashes[key], deleted_at, last = snapshot_entry(row)
            if deleted_at:
                state.deleted[key] = deleted_at
            if last is not None:
                state.texts[key] = last
        return state

    def last_text(self, key: str) -> str:
        """The canonical JSON of the record as it was last seen."""
        return self.texts[key]

    def after(self, hashes: dict[str, str], deleted: dict[str, str],
              texts: Mapping[str, str]) -> SnapshotState:
        """This run's memory: `texts` holds the records read now; every other key's last values
        come from this one."""
        last = {key: texts[key] if key in texts else self.texts[key] for key in hashes
                if key in texts or key in self.texts}
        return SnapshotState(hashes=hashes, deleted=deleted, texts=last)

    def entry(self, key: str) -> SnapshotEntry:
        """The memory row's values for one key."""
        return self.hashes[key], self.deleted.get(key), self.texts.get(key)

    def changes(self, after: SnapshotState, *, everything: bool = False
                ) -> list[tuple[str, SnapshotEntry | None]]:
        """What to write so the stored memory (this) becomes ``after``: the keys whose hash or
        deletion time changed (``everything``: every key, when moving out of dlt's state), and
        None for a key ``after`` no longer knows (a full refresh forgets them)."""
        out: list[tuple[str, SnapshotEntry | None]] = []
        for key, digest in after.hashes.items():
            if (everything or self.hashes.get(key) != digest
                    or self.deleted.get(key) != after.deleted.get(key)):
                out.append((key, after.entry(key)))
        out.extend((key, None) for key in self.hashes if key not in after.hashes)
        return out


@dataclass(frozen=True)
class SnapshotMarks:
    """What the cursors row keeps for one organisation's snapshot entity (no per-record data)."""

    # One hash of the last whole snapshot read, while the memory rows still match it: a run
    # that finds the same records reads no memory and writes nothing.
    digest: str | None = None
    # Xero's clock (the envelope's DateTimeUTC) when the last read began: If-Modified-Since is
    # this minus the overlap.
    cursor: datetime | None = None
    # Our clock when the last whole snapshot was read (only it shows deletions).
    snapshot_at: datetime | None = None

    @classmethod
    def load(cls, stored: Mapping[str, Any] | None) -> SnapshotMarks:
        """Read dlt's state; an older layout (memory in the state) or none: no marks."""
        if not stored or SnapshotState.is_legacy(stored):
            return cls()
        return cls(digest=stored.get("d"), cursor=_instant(stored.get("cursor")),
                   snapshot_at=_instant(stored.get("snapshot_at")))

    def dump(self) -> dict[str, str]:
        """The marks as dlt's state keeps them."""
        out = {}
        if self.digest:
            out["d"] = self.digest
        if self.cursor is not None:
            out["cursor"] = self.cursor.astimezone(UTC).isoformat()
        if self.snapshot_at is not None:
            out["snapshot_at"] = self.snapshot_at.astimezone(UTC).isoformat()
        return out

    def modified_since(self, now: datetime, every: timedelta | None,
                       overlap: timedelta) -> datetime | None:
        """``If-Modified-Since`` for this run; None when the whole snapshot is to be read: it
        is due (``every`` passed since the last one; ``every`` None: always), or there is no
        cursor or whole read to go on (a first run, state from an older version)."""
        if every is None or self.cursor is None or self.snapshot_at is None:
            return None
        if now - self.snapshot_at >= every:
            return None
        return self.cursor - overlap

    def after_whole(self, started_at: datetime, server_time: datetime | None,
                    digest: str | None) -> SnapshotMarks:
        """After a whole snapshot: its digest (None if not every record passed its model), the
        cursor at Xero's time of the answer (None if Xero sent none: the next run reads the
        whole snapshot again)."""
        return SnapshotMarks(digest=digest, cursor=server_time, snapshot_at=started_at)

    def after_partial(self, server_time: datetime | None, memory_changed: bool
                      ) -> SnapshotMarks:
        """After an ``If-Modified-Since`` read: the cursor moves to Xero's time of the answer
        (kept on a 304 or an answer without one); the digest no longer describes the memory
        once the read changed it."""
        cursor = self.cursor
        if server_time is not None and (cursor is None or server_time > cursor):
            cursor = server_time
        return replace(self, cursor=cursor,
                       digest=None if memory_changed else self.digest)


def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _pack(texts: Mapping[str, str]) -> str:
    """Layout 2's blob (kept for tests that write an older version's state)."""
    raw = json.dumps(texts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return base64.b64encode(zlib.compress(raw.encode(), 6)).decode("ascii")


def _unpack(blob: str) -> dict[str, str]:
    return json.loads(zlib.decompress(base64.b64decode(blob)))
