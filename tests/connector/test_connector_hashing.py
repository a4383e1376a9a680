"""Suppliers are hashed only where a later run can meet them again: a full read of many
suppliers must not JSON-dump every record (it was 9% of a 100k load's CPU)."""

from __future__ import annotations

from typing import Any

import pytest

from connector import source
from sandbox.handle import SandboxHandle
from tests.connector.conftest import Loader

# Sandbox loads one after another (~5 s a test): `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow


def test_a_full_read_hashes_only_the_records_near_the_newest(
    loader: Loader, sandbox: SandboxHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    canonical = source._canonical

    def counting(record: dict[str, Any]) -> str:
        nonlocal calls
        if "ContactID" in record:
            calls += 1
        return canonical(record)

    monkeypatch.setattr(source, "_canonical", counting)
    stats = loader.run(entities=["suppliers"])
    suppliers = sum(e.rows for e in stats.entries() if e.entity == "suppliers")
    assert suppliers == sum(t["counts"]["suppliers"] for t in sandbox.tenants())
    # The seeded suppliers' UpdatedDateUTC spread over a year: only a handful fall within the
    # overlap window of each organisation's newest.
    assert calls < suppliers / 10, (calls, suppliers)

    # And the records that were hashed still protect the next run from rewriting them.
    again = loader.run(entities=["suppliers"])
    assert sum(e.rows for e in again.entries()) == 0
