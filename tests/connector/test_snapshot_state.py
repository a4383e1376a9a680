"""The per-organisation memory of a snapshot entity: both older dlt-state layouts are read (to be
moved out of the state), memory rows are read and only what changed is written."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from connector.memory import snapshot_rows
from connector.snapshot_state import SnapshotMarks, SnapshotState, _pack


def _text(name: str) -> str:
    return json.dumps({"AccountID": name, "Name": f"Account {name}", "Code": "200"})


def _stored(state: SnapshotState, changes: list) -> list[dict]:
    """The memory rows a destination holds after writing ``changes`` over ``state``'s rows."""
    rows = {r["record_id"]: r for r in snapshot_rows("t", "accounts",
                                                      [(k, state.entry(k)) for k in state.hashes])}
    for row in snapshot_rows("t", "accounts", changes):
        if row["forget"]:
            rows.pop(row["record_id"], None)
        else:
            rows[row["record_id"]] = row
    return list(rows.values())


def test_a_first_run_has_an_empty_memory() -> None:
    state = SnapshotState.from_memory([])
    assert (state.hashes, state.deleted, state.texts) == ({}, {}, {})
    assert state.changes(state.after({}, {}, {})) == []
    assert not SnapshotState.is_legacy(None)
    assert not SnapshotState.is_legacy({})


def test_both_older_state_layouts_are_read_so_the_memory_moves_out_of_dlt_state() -> None:
    layout1 = {"rows": {
        "a": {"h": "ha", "raw": _text("a")},
        "b": {"h": "hb", "raw": _text("b"), "deleted_at": "2026-11-30T10:00:00+00:00"},
    }}
    layout2 = {"v": 2, "h": {"a": "ha", "b": "hb"},
               "deleted": {"b": "2026-11-30T10:00:00+00:00"},
               "last": _pack({"a": _text("a"), "b": _text("b")})}
    for stored in (layout1, layout2):
        assert SnapshotState.is_legacy(stored)
        state = SnapshotState.from_state(stored)
        assert state.hashes == {"a": "ha", "b": "hb"}
        assert state.deleted == {"b": "2026-11-30T10:00:00+00:00"}
        assert state.last_text("b") == _text("b")
        # nothing changed, yet everything is written: the memory moves into memory rows
        same = state.after(dict(state.hashes), dict(state.deleted), {"a": _text("a")})
        changes = state.changes(same, everything=True)
        assert {k for k, _ in changes} == {"a", "b"}
        moved = SnapshotState.from_memory(snapshot_rows("t", "accounts", changes))
        assert (moved.hashes, moved.deleted, moved.texts) == (
            state.hashes, state.deleted, {"a": _text("a"), "b": _text("b")})


def test_only_changed_keys_are_written_and_a_forgotten_key_is_deleted() -> None:
    first = SnapshotState().after({"a": "ha", "b": "hb", "c": "hc"}, {},
                                  {"a": _text("a"), "b": _text("b"), "c": _text("c")})
    before = SnapshotState.from_memory(_stored(first, []))

    same = before.after({"a": "ha", "b": "hb", "c": "hc"}, {}, {})
    assert before.changes(same) == []  # a no-change run writes no memory

    changed = _text("a").replace("Account a", "Renamed")
    after = before.after({"a": "ha2", "b": "hb", "c": "hc"},
                         {"c": "2026-12-01T00:00:00+00:00"}, {"a": changed})
    changes = before.changes(after)
    assert {k for k, _ in changes} == {"a", "c"}  # b's record was unchanged (or bad)
    reread = SnapshotState.from_memory(_stored(before, changes))
    assert reread.last_text("a") == changed
    assert reread.last_text("b") == _text("b")  # carried over
    assert reread.deleted == {"c": "2026-12-01T00:00:00+00:00"}

    # a full refresh knows only what Xero lists now: the rest is forgotten, not marked
    refreshed = SnapshotState().after({"a": "ha2"}, {}, {"a": changed})
    gone = reread.changes(refreshed)
    assert ("b", None) in gone
    assert ("c", None) in gone
    assert [r["record_id"] for r in _stored(reread, gone)] == ["a"]


def test_marks_ask_for_what_changed_until_the_whole_snapshot_is_due() -> None:
    read_at = datetime(2026, 12, 1, 9, tzinfo=UTC)
    xero_time = datetime(2026, 12, 1, 9, 0, 5, tzinfo=UTC)
    every, overlap = timedelta(hours=24), timedelta(seconds=60)
    # nothing to go on: a first run, or state from before the cursor ({"d": …})
    assert SnapshotMarks.load(None).modified_since(read_at, every, overlap) is None
    older = SnapshotMarks.load({"d": "abc"})
    assert older.digest == "abc"
    assert older.modified_since(read_at, every, overlap) is None

    marks = SnapshotMarks.load(older.after_whole(read_at, xero_time, "abc").dump())
    assert marks.dump() == {"d": "abc", "cursor": "2026-12-01T09:00:05+00:00",
                            "snapshot_at": "2026-12-01T09:00:00+00:00"}
    later = read_at + timedelta(hours=23)
    assert marks.modified_since(later, every, overlap) == xero_time - overlap
    assert marks.modified_since(read_at + every, every, overlap) is None  # due
    assert marks.modified_since(later, None, overlap) is None  # every run whole

    # a partial read moves the cursor forward only, and drops the digest once memory changed
    moved = marks.after_partial(xero_time + timedelta(hours=1), memory_changed=False)
    assert (moved.cursor, moved.digest, moved.snapshot_at) == (
        xero_time + timedelta(hours=1), "abc", read_at)
    assert marks.after_partial(None, memory_changed=False) == marks  # a 304
    assert marks.after_partial(xero_time, memory_changed=True).digest is None
    # a whole read without Xero's time: no cursor, so the next run reads whole again
    assert marks.after_whole(later, None, "x").modified_since(later, every, overlap) is None
    # state an older version kept in dlt's state: no marks
    assert SnapshotMarks.load({"v": 2, "h": {}, "deleted": {}, "last": ""}) == SnapshotMarks()
