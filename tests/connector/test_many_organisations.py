"""Many small organisations in one run: a no-change pass keeps every entity's calls in flight
together (dlt's round robin moves between the resources while one waits), and the organisations'
first supplier calls are not queued behind the page slots. Over real loopback HTTP, with the
sandbox answering every call after a fixed latency."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from connector.source import PAGES_IN_HAND, SNAPSHOTS_IN_HAND
from sandbox.handle import make_grant
from store import open_store
from tests.conftest import SandboxFactory
from tests.connector.conftest import Loader, connect_tenants, sandbox_settings

pytestmark = pytest.mark.slow

LATENCY_S = 1.0
ORGS = 40  # more than PAGES_IN_HAND and than SNAPSHOTS_IN_HAND
ENTITY_PATHS = ("/api.xro/2.0/Contacts", "/api.xro/2.0/Accounts", "/api.xro/2.0/TaxRates",
                "/api.xro/2.0/TrackingCategories")


def test_a_no_change_pass_reads_every_entity_of_every_organisation_side_by_side(
    sandbox_factory: SandboxFactory, tmp_path: Path, tmp_home: Path
) -> None:
    assert SNAPSHOTS_IN_HAND < ORGS <= 2 * SNAPSHOTS_IN_HAND
    assert ORGS > PAGES_IN_HAND
    sandbox = sandbox_factory(tenants=ORGS, suppliers=3, rate_limits=False,
                              latency_ms=int(LATENCY_S * 1000))
    sandbox.reset()
    app = sandbox.create_app(["http://127.0.0.1:8765/callback"], name="many")
    grant = make_grant(sandbox, app)
    store = open_store(tmp_home)
    connect_tenants(store, grant, sandbox)
    loader = Loader(tmp_path, store, sandbox_settings(sandbox, grant))
    loader.run()
    sandbox.clear_requests()

    stats = loader.run()  # nothing changed at Xero

    assert all(e.outcome == "ok" for e in stats.entries())
    starts: dict[str, list[datetime]] = {}
    for call in sandbox.requests(path="/api.xro/2.0/"):
        starts.setdefault(call["path"], []).append(datetime.fromisoformat(call["time"]))
    assert sorted(starts) == sorted(ENTITY_PATHS)
    assert all(len(times) == ORGS for times in starts.values())
    # Side by side: one after another, the three snapshot entities alone took two rounds each
    # (40 organisations, SNAPSHOTS_IN_HAND at a time), the first call of a round waiting for an
    # answer of the last: the pass's calls went out over at least five latencies.
    everything = sorted(t for times in starts.values() for t in times)
    assert (everything[-1] - everything[0]).total_seconds() < 4 * LATENCY_S
    # The first supplier calls are not queued behind the PAGES_IN_HAND page slots: the one past
    # them went out before the first answer could have come back.
    contacts = sorted(starts["/api.xro/2.0/Contacts"])
    assert (contacts[PAGES_IN_HAND] - contacts[0]).total_seconds() < LATENCY_S
    # Every organisation's cursors were kept (gathered into one memory table for dlt).
    assert len(loader.cursors("suppliers")) == ORGS
