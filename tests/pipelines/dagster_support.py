"""What the Dagster tests share: importing dagster (a failure under CI=true, else a skip), and
reading a warehouse's tables for comparison."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Any

import pytest

from connector.settings import ENTITIES as TABLES


def import_dagster_defs() -> ModuleType:
    """`pipelines.dagster_defs`; CI installs the dagster extra, so there a missing one fails."""
    try:
        return importlib.import_module("pipelines.dagster_defs")
    except ImportError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the dagster extra is missing ({exc}); CI=true: these tests must run",
                        pytrace=False)
        pytest.skip(f"the dagster extra is not installed ({exc}): pip install '.[dagster]'")


def apply_partition_requests(instance: Any, result: Any) -> None:
    """What the daemon does with a sensor's dynamic partition requests."""
    import dagster as dg

    for request in result.dynamic_partitions_requests:
        if isinstance(request, dg.AddDynamicPartitionsRequest):
            instance.add_dynamic_partitions(request.partitions_def_name, request.partition_keys)
        else:
            for key in request.partition_keys:
                instance.delete_dynamic_partition(request.partitions_def_name, key)


def table_rows(query: Any, dataset: str = "xero") -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows without dlt's load columns, sorted: what two loads must agree on.

    ``query(sql)`` runs SQL against the warehouse and returns rows.
    """
    found: dict[str, list[tuple[Any, ...]]] = {}
    for table in TABLES:
        sql = ("SELECT column_name FROM information_schema.columns "  # noqa: S608
               f"WHERE table_schema = '{dataset}' AND table_name = '{table}'")
        columns = sorted(str(name) for (name,) in query(sql) if not str(name).startswith("_dlt"))
        rows = query(f"SELECT {', '.join(columns)} FROM {dataset}.{table}")  # noqa: S608
        found[table] = sorted((tuple(r) for r in rows), key=repr)
    return found
