"""A run of many first loads loads them in slices (`[pipelines] first_loads_per_package`), so
its memory is bounded by a slice, not by the number of organisations; organisations loaded
before go in one package."""
# ruff: noqa: S608 - SQL built from this file's own table names

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from pipelines.loading import load_groups
from tests.pipelines.conftest import Warehouse


def _packages(w: Warehouse, table: str) -> int:
    return w.query(f"SELECT count(DISTINCT _dlt_load_id) FROM {{ds}}.{table}")[0][0]


def test_first_loads_come_in_slices_and_load_everything(
    duckdb_warehouse: Warehouse, monkeypatch: pytest.MonkeyPatch,
) -> None:
    w = duckdb_warehouse
    monkeypatch.setenv("PIPELINES__FIRST_LOADS_PER_PACKAGE", "1")
    report = w.run_ok()
    assert len(report.summary["organisations"]) == 2
    assert all(o["outcome"] == "ok" and o["rows_loaded"] > 0
               for o in report.summary["organisations"])
    # Two organisations, never loaded: a package each.
    assert _packages(w, "suppliers") == 2
    assert w.query("SELECT count(DISTINCT tenant_id) FROM {ds}.suppliers")[0][0] == 2
    per_package = w.query("SELECT count(DISTINCT tenant_id) FROM {ds}.suppliers "
                          "GROUP BY _dlt_load_id")
    assert sorted(n for (n,) in per_package) == [1, 1]


def test_the_default_takes_both_first_loads_in_one_package(duckdb_warehouse: Warehouse) -> None:
    duckdb_warehouse.run_ok()
    assert _packages(duckdb_warehouse, "suppliers") == 1


def test_organisations_loaded_before_go_together_and_new_ones_in_slices() -> None:
    now = datetime.now(UTC)
    known = [SimpleNamespace(tenant_id=f"k{i}", last_synced_at=now) for i in range(3)]
    new = [SimpleNamespace(tenant_id=f"n{i}", last_synced_at=None) for i in range(5)]
    groups = load_groups([*new[:2], *known, *new[2:]], 2)
    assert [[c.tenant_id for c in g] for g in groups] == [
        ["k0", "k1", "k2"], ["n0", "n1"], ["n2", "n3"], ["n4"]]
    assert load_groups(known, 2) == [known]
    assert load_groups([], 2) == []
