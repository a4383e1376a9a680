"""Rate limits: 60/minute, 5 concurrent, 5,000/day per app+tenant, 10,000/minute per app."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from sandbox.handle import SandboxError, SandboxHandle, XeroGrant, make_grant
from tests.sandbox.conftest import refresh


def call(
    http: httpx.Client, grant: XeroGrant, tenant: str, path: str = "/TaxRates"
) -> httpx.Response:
    return http.get(f"/api.xro/2.0{path}", headers=grant.headers(tenant))


def test_the_61st_call_in_a_minute_is_429_minute(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    first, second = xero_grant.tenant_ids
    remaining = []
    for _ in range(60):
        response = call(http, xero_grant, first)
        assert response.status_code == 200
        remaining.append(int(response.headers["x-minlimit-remaining"]))
    assert remaining == list(range(59, -1, -1))

    refused = call(http, xero_grant, first)
    assert refused.status_code == 429
    assert refused.headers["x-rate-limit-problem"] == "minute"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-minlimit-remaining"] == "0"
    assert refused.headers["x-daylimit-remaining"] == "4940"
    # The other organisation has its own budget; refused calls use none.
    assert call(http, xero_grant, second).status_code == 200
    assert call(http, xero_grant, first).status_code == 429
    assert sandbox.stats()["by_tenant"][first]["by_status"] == {"200": 60, "429": 2}

    sandbox.advance(61)  # the rolling window has moved past every call
    again = call(http, xero_grant, first)
    assert again.status_code == 200
    assert again.headers["x-minlimit-remaining"] == "59"


def test_retry_after_counts_down_to_when_the_oldest_call_leaves(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    call(http, xero_grant, tenant)
    sandbox.advance(40)
    for _ in range(59):
        assert call(http, xero_grant, tenant).status_code == 200
    refused = call(http, xero_grant, tenant)
    assert refused.status_code == 429
    assert 19 <= int(refused.headers["retry-after"]) <= 21
    sandbox.advance(21)
    assert call(http, xero_grant, tenant).status_code == 200  # the first call has left the window


def wait_for_in_flight(sandbox: SandboxHandle, tenant: str, n: int, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(
            e["tenant_id"] == tenant and e["in_flight"] == n for e in sandbox.limits()["tenants"]
        ):
            return
        time.sleep(0.02)
    raise AssertionError(f"never {n} calls in flight for {tenant}")


def test_sixth_concurrent_call_is_429_concurrent(
    sandbox: SandboxHandle, xero_grant: XeroGrant
) -> None:
    tenant = xero_grant.tenant_ids[0]
    sandbox.fault(kind="slow", seconds=1.5, path="/api.xro/2.0/TaxRates", count=5)
    limits = httpx.Limits(max_connections=10)
    with httpx.Client(base_url=sandbox.url, timeout=30, limits=limits) as client:

        def one(_: int) -> httpx.Response:
            return call(client, xero_grant, tenant)

        with ThreadPoolExecutor(max_workers=5) as pool:
            slow = [pool.submit(one, i) for i in range(5)]
            wait_for_in_flight(sandbox, tenant, 5)
            sixth = call(client, xero_grant, tenant)
            statuses = [f.result().status_code for f in slow]
    assert statuses == [200] * 5
    assert sixth.status_code == 429
    assert sixth.headers["x-rate-limit-problem"] == "concurrent"
    assert "retry-after" not in sixth.headers
    with httpx.Client(base_url=sandbox.url) as client:
        assert call(client, xero_grant, tenant).status_code == 200


def test_day_limit_429_day_with_hours_to_wait(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    sandbox.limits(day=5)
    for expected in range(4, -1, -1):
        response = call(http, xero_grant, tenant)
        assert response.headers["x-daylimit-remaining"] == str(expected)
    refused = call(http, xero_grant, tenant)
    assert refused.status_code == 429
    assert refused.headers["x-rate-limit-problem"] == "day"
    assert int(refused.headers["retry-after"]) > 86000
    sandbox.advance(1500)  # 25 minutes later: still refused, and the wait is shorter
    later = call(http, xero_grant, tenant)
    assert later.status_code == 429
    assert int(later.headers["retry-after"]) < int(refused.headers["retry-after"]) - 1400
    sandbox.advance(86400)
    fresh = refresh(
        http,
        {"client_id": xero_grant.client_id, "client_secret": xero_grant.client_secret},
        xero_grant.refresh_token,
    )
    xero_grant.access_token = fresh.json()["access_token"]
    assert call(http, xero_grant, tenant).status_code == 200


@pytest.mark.slow
def test_the_real_day_limit_is_5000(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    sandbox.limits(minute=10_000)
    for _ in range(5000):
        last = call(http, xero_grant, tenant, "/Currencies")
        assert last.status_code == 200
    assert last.headers["x-daylimit-remaining"] == "0"
    refused = call(http, xero_grant, tenant, "/Currencies")
    assert refused.status_code == 429
    assert refused.headers["x-rate-limit-problem"] == "day"


def test_app_minute_limit_spans_tenants_and_connections(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    first, second = xero_grant.tenant_ids
    sandbox.limits(app_minute=3)
    connections = http.get("/connections", headers=xero_grant.headers())
    assert connections.headers["x-appminlimit-remaining"] == "2"
    assert call(http, xero_grant, first).headers["x-appminlimit-remaining"] == "1"
    assert call(http, xero_grant, second).headers["x-appminlimit-remaining"] == "0"
    refused = call(http, xero_grant, first)
    assert refused.status_code == 429
    assert refused.headers["x-rate-limit-problem"] == "appminute"
    assert int(refused.headers["retry-after"]) >= 1
    assert http.get("/connections", headers=xero_grant.headers()).status_code == 429
    # Another app is not affected.
    other = make_grant(sandbox, sandbox.create_app(name="other"))
    assert call(http, other, first).status_code == 200


def test_the_app_window_can_be_shortened_for_tests_and_is_a_minute_by_default(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    first, second = xero_grant.tenant_ids
    assert sandbox.limits()["limits"]["app_window_seconds"] == 60
    sandbox.limits(app_minute=2, app_window_seconds=2)
    assert call(http, xero_grant, first).status_code == 200
    assert call(http, xero_grant, second).status_code == 200
    refused = call(http, xero_grant, first)
    assert refused.headers["x-rate-limit-problem"] == "appminute"
    assert 1 <= int(refused.headers["retry-after"]) <= 2
    sandbox.advance(2.1)  # the window is on the sandbox clock
    assert call(http, xero_grant, first).headers["x-appminlimit-remaining"] == "1"
    with pytest.raises(SandboxError, match="400"):
        sandbox.limits(app_window_seconds=0)


def test_refused_auth_does_not_use_quota(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    http.get(
        "/api.xro/2.0/TaxRates", headers={"Authorization": "Bearer nope", "xero-tenant-id": tenant}
    )
    http.get(
        "/api.xro/2.0/TaxRates", headers=xero_grant.headers("00000000-0000-0000-0000-000000000000")
    )
    assert call(http, xero_grant, tenant).headers["x-minlimit-remaining"] == "59"


def test_no_rate_limits_counts_but_never_refuses(sandbox_factory) -> None:
    sb = sandbox_factory(rate_limits=False)
    sb.reset()
    grant = make_grant(sb, sb.create_app())
    tenant = grant.tenant_ids[0]
    with httpx.Client(base_url=sb.url) as client:
        statuses = [call(client, grant, tenant).status_code for _ in range(65)]
        last = call(client, grant, tenant)
    assert set(statuses) == {200}
    assert last.status_code == 200
    assert last.headers["x-minlimit-remaining"] == "0"
    assert sb.limits()["limits"]["enforced"] is False
