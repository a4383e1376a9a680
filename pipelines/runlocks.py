"""Run locks that every worker sees: they live in the store, not in a machine's files.

Two kinds, both ``Store.exclusive`` locks (PostgreSQL session advisory locks, or flocks beside
the SQLite file), which die with their holder:

- ``organisation:<tenant>``: at most one run per organisation at a time, whether cron
  (``xero-elt run``) or Dagster started it and on whichever machine. A run takes the locks of
  every organisation it loads, all or none, before it calls Xero: a held one means exit 75
  (``--wait`` waits for it), as the home lock always did.
- ``loads:<destination>/<dataset>``: held only while a run writes into the dataset (finishing
  packages, loading, ``sync_runs``/``connections``, the views). Loads of one dataset take turns,
  while extraction — the slow part, paced by Xero — runs side by side. Why: runs of different
  organisations still share tables whose keys overlap (``connections`` carries every
  organisation's rows, and two concurrent delete-insert merges of the same keys in PostgreSQL
  leave both copies), and the first loads of a new dataset would race to create its tables.

Order: the home lock (shared layout only), then the organisation locks, then the load lock, so
no two runs wait on each other in a circle.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from pipelines.destinations import Target, held_open
from store import Store

# How long a run waits for its turn to load: other runs hold it for one load each (seconds,
# for the incremental runs that are the norm), so a long wait means something is stuck.
LOAD_TURN_WAIT_SECONDS = 1800.0
# Destinations whose readers need no turn: PostgreSQL serves reads beside a writer (MVCC), while
# a DuckDB file is opened by one process at a time, to read as well.
READS_WITHOUT_TURN = ("postgres",)


def organisation_locks(tenant_ids: Sequence[str]) -> list[str]:
    """The lock names of these organisations, sorted and unique."""
    return [f"organisation:{t}" for t in sorted(set(tenant_ids))]


def load_lock(target: Target) -> str:
    """The lock name of loads into the target's dataset."""
    return f"loads:{target.name}/{target.dataset}"


class TurnTakingPipeline:
    """A dlt pipeline whose writes to the destination hold the dataset's load turn.

    Everything else goes to the pipeline itself, so the run code stays as it was. A run keeps
    a turn (``keep_turn``) for its pre-flight (the destination check, packages left behind, the
    state check, the memory's migration), for its data's load, and for the bookkeeping's load
    with the pruning and the views, and gives it back (``give_back_turn``) before each
    extraction and at its end: three turns, none while extracting. Touches inside a kept turn
    take no lock of their own, and a DuckDB file stays open for the whole turn, so each touch's
    open and close is DuckDB's cheap one instead of a full open (catalog read) and checkpoint:
    a no-change run of one organisation held the turn 1.5 s over 11 turns before, 0.45 s over 3
    (``bench/per_org_pass.py``, docs/deploy.md).
    """

    def __init__(self, pipeline: Any, store: Store, target: Target) -> None:
        self._pipeline = pipeline
        self._store = store
        self._lock = load_lock(target)
        self._target = target
        self._holding = False  # the turn is this run's now (any of its threads may touch)
        self._reads_free = target.name in READS_WITHOUT_TURN
        self._reading = False  # a pre-flight of reads only, on a destination that needs no turn
        self._kept: contextlib.ExitStack | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pipeline, name)

    @contextlib.contextmanager
    def _turn(self, write: bool = True) -> Iterator[None]:
        """The dataset's turn for a block, with a DuckDB file held open throughout; nothing
        more inside a turn this run already holds, nor for a read in a reads-only pre-flight."""
        if self._holding or (self._reading and not write):
            yield
            return
        with self._store.exclusive([self._lock], LOAD_TURN_WAIT_SECONDS), \
                held_open(self._target):
            self._holding = True
            try:
                yield
            finally:
                self._holding = False

    def keep_turn(self, *, reads_only: bool = False) -> None:
        """Take the dataset's turn and keep it until ``give_back_turn`` (no-op if kept).

        ``reads_only`` (the pre-flight): on a destination whose readers need no turn
        (PostgreSQL), take none; its reads then take none either, while a load inside it
        (a package a killed run left) still takes its turn. The memory's migration, a write
        done once per dataset when it is needed, runs there too: its ``ADD COLUMN IF NOT
        EXISTS`` and key fill are safe side by side."""
        if self._kept is not None:
            return
        kept = contextlib.ExitStack()
        if reads_only and self._reads_free:
            self._reading = True
            kept.callback(setattr, self, "_reading", False)
        else:
            kept.enter_context(self._turn())
        self._kept = kept

    def give_back_turn(self) -> None:
        """Give back a turn ``keep_turn`` took (no-op if none is kept): before extracting,
        which is paced by Xero and runs side by side with other runs' loads."""
        kept, self._kept = self._kept, None
        if kept is not None:
            kept.close()

    def load(self, *args: Any, **kwargs: Any) -> Any:
        """``pipeline.load``, in the dataset's turn, with a DuckDB file held open throughout."""
        with self._turn():
            return self._pipeline.load(*args, **kwargs)

    def sync_destination(self, *args: Any, **kwargs: Any) -> Any:
        """``pipeline.sync_destination`` (a read, but DuckDB takes one process at a time)."""
        with self._turn(write=False):
            return self._pipeline.sync_destination(*args, **kwargs)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """``pipeline.run``, in the dataset's turn."""
        with self._turn():
            return self._pipeline.run(*args, **kwargs)

    @contextlib.contextmanager
    def sql_client(self, *args: Any, **kwargs: Any) -> Iterator[Any]:
        """A SQL client used in the dataset's turn (the views are DDL too), or in a reads-only
        pre-flight."""
        with self._turn(write=False), self._pipeline.sql_client(*args, **kwargs) as client:
            yield client


def keep_turn(pipeline: Any, *, reads_only: bool = False) -> None:
    """``TurnTakingPipeline.keep_turn`` for a pipeline that takes turns (others: nothing)."""
    if isinstance(pipeline, TurnTakingPipeline):
        pipeline.keep_turn(reads_only=reads_only)


def give_back_turn(pipeline: Any) -> None:
    """``TurnTakingPipeline.give_back_turn`` for a pipeline that takes turns (others: nothing)."""
    if isinstance(pipeline, TurnTakingPipeline):
        pipeline.give_back_turn()
