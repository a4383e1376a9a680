"""How often a run takes the dataset's load turn, and when it does not hold it.

A per-organisation run (what a Dagster batch runs, one per organisation side by side) waits its
turn for every touch of the dataset, so every turn it takes is paid by the whole batch: a
no-change run takes three (the pre-flight; the data's load; the bookkeeping's load, pruning and
the views), and holds none while it extracts, so others load meanwhile. On PostgreSQL, whose
readers need no turn, the pre-flight takes none.
"""

from __future__ import annotations

from typing import Any

import pytest
from dlt.pipeline.pipeline import Pipeline

from pipelines.destinations import resolve_target
from pipelines.runlocks import TurnTakingPipeline, load_lock
from store import LockBusy, open_store
from tests.pipelines.conftest import Warehouse
from tests.sandbox_handle import SandboxHandle


def test_a_no_change_run_of_one_organisation_takes_three_turns_and_none_while_extracting(
    duckdb_warehouse: Warehouse, sandbox: SandboxHandle, turns: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    wh = duckdb_warehouse
    tenant = sandbox.tenant_ids()[0]
    wh.run_ok(layout="per_organisation", tenants=[tenant], schedule=False)
    turns.clear()
    lock = load_lock(resolve_target(wh.destination, wh.dataset))
    free_while_extracting: list[bool] = []
    extract = Pipeline.extract

    def extract_and_look(self: Pipeline, *args: Any, **kwargs: Any) -> Any:
        other = open_store(wh.store.home)  # as another process would
        try:
            with other.exclusive([lock]):
                free_while_extracting.append(True)
        except LockBusy:
            free_while_extracting.append(False)
        finally:
            other.close()
        return extract(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "extract", extract_and_look)
    report = wh.run_ok(layout="per_organisation", tenants=[tenant], schedule=False)
    assert report.summary["organisations"][0]["outcome"] == "ok"
    # The organisation's extraction, then the bookkeeping's (sync_runs, connections).
    assert free_while_extracting == [True, True]
    assert turns == [lock, lock, lock]  # pre-flight; the data's load; the bookkeeping's load


@pytest.mark.postgres
def test_on_postgresql_the_pre_flight_reads_take_no_turn(
    postgres_warehouse: Warehouse, sandbox: SandboxHandle, turns: list[str],
) -> None:
    wh = postgres_warehouse
    tenant = sandbox.tenant_ids()[0]
    wh.run_ok(layout="per_organisation", tenants=[tenant], schedule=False)
    turns.clear()
    wh.run_ok(layout="per_organisation", tenants=[tenant], schedule=False)
    lock = load_lock(resolve_target(wh.destination, wh.dataset))
    assert turns == [lock, lock]  # the data's load; the bookkeeping's load


def test_a_kept_turn_is_one_lock_until_given_back(duckdb_warehouse: Warehouse) -> None:
    wh = duckdb_warehouse
    target = resolve_target(wh.destination, wh.dataset)
    pipeline = TurnTakingPipeline(object(), wh.store, target)
    other = open_store(wh.store.home)
    try:
        pipeline.keep_turn()
        pipeline.keep_turn()  # kept already: nothing more
        with pytest.raises(LockBusy), other.exclusive([load_lock(target)]):
            pass
        with pipeline._turn():  # a touch inside the kept turn waits for nothing
            pass
        pipeline.give_back_turn()
        with other.exclusive([load_lock(target)]):
            pass
        pipeline.give_back_turn()  # nothing kept: nothing to do
    finally:
        other.close()
