"""The per-organisation memory of a snapshot entity: both layouts read, last values kept
compressed and rewritten only on change."""

from __future__ import annotations

import json

from connector.snapshot_state import SnapshotState


def _text(name: str) -> str:
    return json.dumps({"AccountID": name, "Name": f"Account {name}", "Code": "200"})


def test_a_first_run_has_an_empty_state() -> None:
    state = SnapshotState.from_state(None)
    assert state.hashes == {}
    assert state.deleted == {}
    assert state.after({}, {}, {}).to_state() == {"v": 2, "h": {}, "deleted": {}}


def test_the_first_layout_is_read_and_rewritten_in_the_compact_one() -> None:
    stored = {"rows": {
        "a": {"h": "ha", "raw": _text("a")},
        "b": {"h": "hb", "raw": _text("b"), "deleted_at": "2026-11-30T10:00:00+00:00"},
    }}
    state = SnapshotState.from_state(stored)
    assert state.hashes == {"a": "ha", "b": "hb"}
    assert state.deleted == {"b": "2026-11-30T10:00:00+00:00"}
    assert state.last_text("b") == _text("b")

    # nothing changed, yet the old layout is replaced: the blob holds both last values
    kept = state.after(dict(state.hashes), dict(state.deleted), {"a": _text("a")}).to_state()
    assert set(kept) == {"v", "h", "deleted", "last"}
    again = SnapshotState.from_state(json.loads(json.dumps(kept)))
    assert again.last_text("a") == _text("a")
    assert again.last_text("b") == _text("b")


def test_the_blob_is_untouched_when_nothing_changed_and_rebuilt_when_something_did() -> None:
    first = SnapshotState().after({"a": "ha", "b": "hb"}, {},
                                  {"a": _text("a"), "b": _text("b")})
    stored = json.loads(json.dumps(first.to_state()))
    before = SnapshotState.from_state(stored)

    same = before.after({"a": "ha", "b": "hb"}, {}, {"a": _text("a"), "b": _text("b")})
    assert same.blob is before.blob  # not even decoded

    changed = _text("a").replace("Account a", "Renamed")
    after = before.after({"a": "ha2", "b": "hb"}, {}, {"a": changed})  # b's record was bad
    reread = SnapshotState.from_state(json.loads(json.dumps(after.to_state())))
    assert reread.last_text("a") == changed
    assert reread.last_text("b") == _text("b")  # carried over from the blob before


def test_last_values_are_not_kept_as_readable_text() -> None:
    texts = {f"k{i}": _text(f"k{i}") for i in range(200)}
    state = SnapshotState().after({k: f"h{k}" for k in texts}, {}, texts).to_state()
    encoded = json.dumps(state)
    assert "Account k1" not in encoded
    assert len(encoded) < sum(len(t) for t in texts.values()) / 2
