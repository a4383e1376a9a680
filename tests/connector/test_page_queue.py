"""The pages waiting for dlt are bounded across organisations, not per organisation: with the
bound at one page and many small pages from both organisations, every supplier still loads."""

from __future__ import annotations

import pytest

from connector import source
from sandbox.handle import SandboxHandle
from tests.connector.conftest import Loader


def test_every_page_loads_through_a_one_page_queue(
    loader: Loader, sandbox: SandboxHandle, settings, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(source, "MAX_QUEUED_PAGES", 1)
    stats = loader.run(settings=settings.replace(page_size=20))  # 13 pages per organisation
    assert {e.outcome for e in stats.entries()} == {"ok"}
    assert loader.count("suppliers") == sum(t["counts"]["suppliers"] for t in sandbox.tenants())

