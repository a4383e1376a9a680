"""Xero misbehaving (through the sandbox's faults and limits): 429 storms, day limits and our own
budget, 5xx, dropped connections, truncated and malformed bodies, a disconnected organisation and
bad records. Each ends with correct tables, and the other organisation always loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.handle import SandboxHandle, XeroGrant
from store import Store, open_store
from tests.connector.conftest import Loader, connect_tenants, sandbox_settings

# Sandbox loads one after another (~5 s a test): `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow

API = "/api.xro/2.0"


def statuses(sandbox: SandboxHandle, path: str, tenant_id: str | None = None) -> list[int]:
    return [r["status"] for r in sandbox.requests(path=f"{API}/{path}", tenant_id=tenant_id)]


def outcomes(stats, tenant_id: str) -> dict[str, str]:
    return {e.entity: e.outcome for e in stats.entries() if e.tenant_id == tenant_id}


def suppliers_at_xero(sandbox: SandboxHandle, tenant_id: str) -> int:
    return next(t["counts"]["suppliers"] for t in sandbox.tenants() if t["tenantId"] == tenant_id)


@pytest.mark.slow
def test_a_429_storm_is_waited_out_and_nothing_is_lost(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    sandbox.fault(kind="rate_limit", problem="minute", path=f"{API}/Contacts", count=4,
                  retry_after=1)
    sandbox.fault(kind="rate_limit", problem="minute", path=f"{API}/Accounts", count=2,
                  retry_after=1)

    stats = loader.run()

    assert {e.outcome for e in stats.entries()} == {"ok"}
    assert statuses(sandbox, "Contacts").count(429) == 4
    for tenant in sandbox.tenants():
        assert loader.count("suppliers", f"tenant_id = '{tenant['tenantId']}'") == \
            tenant["counts"]["suppliers"]
    assert loader.count("accounts") == sum(t["counts"]["accounts"] for t in sandbox.tenants())
    # the refused calls count against the organisation's calls too
    assert sum(e.api_calls for e in stats.entries()) == 8 + 4 + 2


def test_a_minute_limit_longer_than_we_wait_defers_the_organisation(
    loader: Loader, sandbox: SandboxHandle, settings
) -> None:
    tenant_a, tenant_b = sandbox.tenant_ids()
    sandbox.fault(kind="rate_limit", problem="minute", path=f"{API}/Accounts",
                  tenant_id=tenant_a, count=-1, retry_after=600)

    stats = loader.run(settings=settings.replace(max_retry_after_seconds=5))

    assert stats.get(tenant_a, "accounts").outcome == "deferred"
    assert set(outcomes(stats, tenant_b).values()) == {"ok"}


def test_the_day_limit_stops_the_organisation_and_keeps_its_progress(
    loader: Loader, sandbox: SandboxHandle, settings
) -> None:
    tenant_a, tenant_b = sandbox.tenant_ids()
    small_pages = settings.replace(page_size=100)  # 250 suppliers: 3 pages
    sandbox.fault(kind="rate_limit", problem="day", path=f"{API}/Contacts", tenant_id=tenant_a,
                  count=-1)

    stats = loader.run(settings=small_pages)

    assert stats.get(tenant_a, "suppliers").outcome == "deferred"
    assert "day limit" in stats.get(tenant_a, "suppliers").error
    assert set(outcomes(stats, tenant_b).values()) == {"ok"}
    assert loader.count("suppliers", f"tenant_id = '{tenant_b}'") == \
        suppliers_at_xero(sandbox, tenant_b)
    # one refused call, then the organisation stopped instead of hammering Xero
    assert statuses(sandbox, "Contacts", tenant_a) == [429]

    sandbox.clear_faults()
    stats = loader.run(settings=small_pages)
    assert set(outcomes(stats, tenant_a).values()) == {"ok"}
    assert loader.count("suppliers", f"tenant_id = '{tenant_a}'") == \
        suppliers_at_xero(sandbox, tenant_a)


def test_the_day_limit_mid_way_keeps_the_pages_already_loaded(
    loader: Loader, sandbox: SandboxHandle, settings
) -> None:
    tenant_a = sandbox.tenant_ids()[0]
    # Each organisation may make 3 calls today: Accounts, TaxRates and TrackingCategories (or
    # a supplier page) go through; the rest is refused with a day 429.
    sandbox.limits(day=3)
    small_pages = settings.replace(page_size=100, max_in_flight=1)

    stats = loader.run(settings=small_pages)

    assert "deferred" in outcomes(stats, tenant_a).values()
    assert stats.api_calls(tenant_a) <= 4  # 3 admitted, at most 1 refused
    # what was read before the stop is loaded: whole pages, and the stats say so
    loaded = loader.count("suppliers", f"tenant_id = '{tenant_a}'")
    assert loaded == stats.get(tenant_a, "suppliers").rows
    assert loaded % 100 == 0
    sandbox.limits(day=5000)
    sandbox.advance(86_401)  # a new day at Xero
    stats = loader.run(settings=small_pages)
    assert set(outcomes(stats, tenant_a).values()) == {"ok"}
    assert loader.count("suppliers", f"tenant_id = '{tenant_a}'") == \
        suppliers_at_xero(sandbox, tenant_a)


def test_our_daily_budget_stops_before_xero_refuses(
    loader: Loader, sandbox: SandboxHandle, settings
) -> None:
    stats = loader.run(settings=settings.replace(daily_call_budget=2))

    assert all(429 not in statuses(sandbox, p) for p in ("Contacts", "Accounts", "TaxRates"))
    for tenant_id in sandbox.tenant_ids():
        assert stats.api_calls(tenant_id) == 2
        assert "deferred" in outcomes(stats, tenant_id).values()
        deferred = [e for e in stats.entries() if e.tenant_id == tenant_id
                    and e.outcome == "deferred"]
        assert all("budget" in (e.error or "") for e in deferred)
    # the budget is per day and shared by runs: the next run today is deferred at once
    stats = loader.run(settings=settings.replace(daily_call_budget=2))
    assert stats.api_calls() == 0


def test_5xx_and_dropped_connections_are_retried(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    sandbox.fault(kind="status", status=500, path=f"{API}/Accounts", count=2)
    sandbox.fault(kind="status", status=503, path=f"{API}/TaxRates", count=1)
    sandbox.fault(kind="drop", path=f"{API}/TrackingCategories", count=2)

    stats = loader.run()

    assert {e.outcome for e in stats.entries()} == {"ok"}
    assert sorted(statuses(sandbox, "Accounts")).count(500) == 2
    assert loader.count("accounts") == sum(t["counts"]["accounts"] for t in sandbox.tenants())
    assert loader.count("tracking_options") == \
        sum(t["counts"]["tracking_options"] for t in sandbox.tenants())


def test_persistent_5xx_fails_that_organisation_only(
    loader: Loader, sandbox: SandboxHandle, settings
) -> None:
    tenant_a, tenant_b = sandbox.tenant_ids()
    sandbox.fault(kind="status", status=503, path=f"{API}/Accounts", tenant_id=tenant_a,
                  count=-1)

    stats = loader.run(settings=settings.replace(max_retries=2))

    error = stats.get(tenant_a, "accounts").error
    assert stats.get(tenant_a, "accounts").outcome == "failed"
    assert "/Accounts" in error
    assert tenant_a in error
    assert len(statuses(sandbox, "Accounts", tenant_a)) == 3  # bounded: 1 + 2 retries
    assert set(outcomes(stats, tenant_b).values()) == {"ok"}
    assert loader.count("accounts", f"tenant_id = '{tenant_a}'") == 0


def test_a_truncated_body_is_retried_then_reported_never_an_empty_page(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    tenant_a, tenant_b = sandbox.tenant_ids()
    sandbox.fault(kind="truncated", path=f"{API}/TaxRates", tenant_id=tenant_b, count=1)
    sandbox.fault(kind="truncated", path=f"{API}/Contacts", tenant_id=tenant_a, count=-1)

    stats = loader.run()

    failed = stats.get(tenant_a, "suppliers")
    assert failed.outcome == "failed"
    assert "cut off" in failed.error
    assert "/Contacts" in failed.error
    assert "Kauri" in failed.error or tenant_a in failed.error
    assert loader.count("suppliers", f"tenant_id = '{tenant_a}'") == 0
    assert set(outcomes(stats, tenant_b).values()) == {"ok"}
    assert loader.count("tax_rates", f"tenant_id = '{tenant_b}'") > 0

    sandbox.clear_faults()
    loader.run()
    assert loader.count("suppliers", f"tenant_id = '{tenant_a}'") == \
        suppliers_at_xero(sandbox, tenant_a)


def test_a_malformed_body_names_the_endpoint_and_organisation(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    tenant_a, tenant_b = sandbox.tenant_ids()
    sandbox.fault(kind="malformed", path=f"{API}/TaxRates", tenant_id=tenant_a, count=-1)

    stats = loader.run()

    failed = stats.get(tenant_a, "tax_rates")
    assert failed.outcome == "failed"
    assert "not valid JSON" in failed.error
    assert "/TaxRates" in failed.error
    assert failed.organisation
    assert failed.organisation in failed.error
    assert set(outcomes(stats, tenant_b).values()) == {"ok"}


def test_a_disconnected_organisation_is_marked_and_the_other_loads(
    loader: Loader, store: Store, sandbox: SandboxHandle, xero_grant: XeroGrant
) -> None:
    tenant_a, tenant_b = sandbox.tenant_ids()
    sandbox.disconnect(tenant_a, client_id=xero_grant.client_id)

    stats = loader.run()

    assert set(outcomes(stats, tenant_a).values()) == {"failed"}
    assert "no longer connected" in stats.get(tenant_a, "accounts").error
    assert set(outcomes(stats, tenant_b).values()) == {"ok"}
    by_tenant = {c.tenant_id: c for c in store.list_connections()}
    assert by_tenant[tenant_a].status == "disconnected"
    assert by_tenant[tenant_a].disconnected_at is not None
    assert by_tenant[tenant_b].status == "connected"
    # the next run leaves it alone: only connected organisations are read
    sandbox.clear_requests()
    loader.run()
    assert sandbox.requests(path=API, tenant_id=tenant_a) == []


def test_a_bad_record_is_reported_and_the_others_load(
    loader: Loader, sandbox: SandboxHandle
) -> None:
    tenant_a = sandbox.tenant_ids()[0]
    # Every tracking option of this organisation loses its GUID shape: all are bad records.
    sandbox.mutate(tenant_id=tenant_a, entity="tracking_options", op="change_type",
                   field="TrackingOptionID", to="object")

    stats = loader.run()

    entry = stats.get(tenant_a, "tracking_options")
    assert entry.outcome == "ok"
    assert entry.skipped_records > 0
    assert entry.rows == 0
    assert any("TrackingOptionID" in w and "skipped" in w for w in entry.warnings)
    assert loader.count("tracking_categories", f"tenant_id = '{tenant_a}'") > 0
    assert loader.count("tracking_options", f"tenant_id = '{tenant_a}'") == 0


def test_two_organisations_on_separate_grants_load_in_parallel(
    tmp_path: Path, tmp_home: Path, sandbox: SandboxHandle, xero_app: dict
) -> None:
    from sandbox.handle import make_grant

    store = open_store(tmp_home)
    grants = [make_grant(sandbox, xero_app, tenant_ids=[t]) for t in sandbox.tenant_ids()]
    for grant in grants:
        connect_tenants(store, grant, sandbox)
    loader = Loader(tmp_path, store, sandbox_settings(sandbox, grants[0]))

    stats = loader.run()

    assert {e.outcome for e in stats.entries()} == {"ok"}
    assert loader.count("suppliers") == sum(t["counts"]["suppliers"] for t in sandbox.tenants())


@pytest.mark.slow
def test_pacing_by_the_remaining_headers_never_sees_a_429(
    loader: Loader, sandbox: SandboxHandle, settings
) -> None:
    sandbox.limits(minute=8)  # 250 suppliers at 25 a page: 13 calls per organisation
    sandbox.clear_requests()

    stats = loader.run(settings=settings.replace(page_size=25))

    assert {e.outcome for e in stats.entries()} == {"ok"}
    assert [r for r in sandbox.requests(path=API) if r["status"] == 429] == []
    assert loader.count("suppliers") == sum(t["counts"]["suppliers"] for t in sandbox.tenants())
