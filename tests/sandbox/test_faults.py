"""Injected faults: every kind, matching by path/tenant, counts, clearing, and the lost token
response that the refresh grace exists for."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from sandbox.handle import SandboxError, SandboxHandle, XeroGrant
from tests.sandbox.conftest import refresh

CONTACTS = "/api.xro/2.0/Contacts"


def contacts(http: httpx.Client, grant: XeroGrant, tenant: str | None = None) -> httpx.Response:
    return http.get(
        CONTACTS, params={"page": 1}, headers=grant.headers(tenant or grant.tenant_ids[0])
    )


def test_status_503_twice_then_normal(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="status", status=503, path=CONTACTS, count=2)
    first, second, third = (contacts(http, xero_grant) for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert "offline for maintenance" in first.text
    assert first.headers["x-minlimit-remaining"] == "59"  # the call was counted, like Xero's
    assert sandbox.faults() == []
    log = sandbox.requests(path=CONTACTS)
    assert [(e["status"], e["fault"]) for e in log] == [
        (503, "status"),
        (503, "status"),
        (200, None),
    ]


def test_status_500_is_xero_problem_json(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="status", status=500, path="/api.xro")
    response = contacts(http, xero_grant)
    assert response.status_code == 500
    body = response.json()
    assert body["Status"] == 500
    assert "An error occurred" in body["Title"]


def test_fault_matches_only_its_tenant(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    first, second = xero_grant.tenant_ids
    sandbox.fault(kind="status", status=500, path=CONTACTS, tenant_id=second, count=-1)
    assert contacts(http, xero_grant, first).status_code == 200
    assert contacts(http, xero_grant, second).status_code == 500
    assert contacts(http, xero_grant, second).status_code == 500
    assert sandbox.faults()[0]["fired"] == 2
    sandbox.clear_faults()
    assert contacts(http, xero_grant, second).status_code == 200


def test_slow_delays_then_answers(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="slow", seconds=0.6, path=CONTACTS)
    started = time.monotonic()
    response = contacts(http, xero_grant)
    assert response.status_code == 200
    assert time.monotonic() - started >= 0.6
    sandbox.fault(kind="slow", seconds=1.0, path=CONTACTS)
    with pytest.raises(httpx.ReadTimeout):
        http.get(CONTACTS, headers=xero_grant.headers(xero_grant.tenant_ids[0]), timeout=0.3)


def test_drop_closes_without_an_answer(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="drop", path=CONTACTS)
    with pytest.raises(httpx.RemoteProtocolError):
        contacts(http, xero_grant)
    assert contacts(http, xero_grant).status_code == 200
    dropped = sandbox.requests(path=CONTACTS)[0]
    assert dropped["status"] is None
    assert dropped["fault"] == "drop"


def test_malformed_is_200_with_broken_json(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="malformed", path=CONTACTS)
    response = contacts(http, xero_grant)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.text.startswith('{"Id"')
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)


def test_truncated_body_breaks_mid_way(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="truncated", path=CONTACTS)
    with pytest.raises(httpx.RemoteProtocolError):
        contacts(http, xero_grant)
    assert contacts(http, xero_grant).status_code == 200


def test_rate_limit_minute_and_day(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="rate_limit", problem="minute", path=CONTACTS)
    minute = contacts(http, xero_grant)
    assert minute.status_code == 429
    assert minute.headers["x-rate-limit-problem"] == "minute"
    assert 1 <= int(minute.headers["retry-after"]) <= 60
    assert minute.headers["x-minlimit-remaining"] == "0"
    sandbox.fault(kind="rate_limit", problem="day", path=CONTACTS)
    day = contacts(http, xero_grant)
    assert day.status_code == 429
    assert day.headers["x-rate-limit-problem"] == "day"
    assert int(day.headers["retry-after"]) >= 3600
    assert day.headers["x-daylimit-remaining"] == "0"
    sandbox.fault(kind="rate_limit", problem="minute", path=CONTACTS, retry_after=7)
    assert contacts(http, xero_grant).headers["retry-after"] == "7"
    assert sandbox.stats()["rate_limited"] == 3


def test_a_429_storm_until_cleared(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="rate_limit", problem="minute", path="/api.xro/2.0/", count=-1)
    assert {contacts(http, xero_grant).status_code for _ in range(5)} == {429}
    assert sandbox.faults()[0]["fired"] == 5
    sandbox.clear_faults()
    assert contacts(http, xero_grant).status_code == 200


def test_faults_on_connections(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="status", status=503, path="/connections")
    assert http.get("/connections", headers=xero_grant.headers()).status_code == 503
    assert http.get("/connections", headers=xero_grant.headers()).status_code == 200


def test_offline_is_one_organisations_plain_text_503(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    first, second = xero_grant.tenant_ids
    armed = sandbox.fault(kind="offline", tenant_id=second, count=2)
    assert armed["path"] == "/api.xro/2.0/"  # the Accounting API, not identity or connections
    offline = contacts(http, xero_grant, second)
    assert offline.status_code == 503
    assert offline.headers["content-type"].startswith("text/plain")
    assert offline.text == "Organisation offline"
    assert contacts(http, xero_grant, first).status_code == 200  # others answer
    assert http.get("/connections", headers=xero_grant.headers(second)).status_code == 200
    accounts = http.get("/api.xro/2.0/Accounts", headers=xero_grant.headers(second))
    assert accounts.status_code == 503
    assert contacts(http, xero_grant, second).status_code == 200  # count used up
    assert [e["fault"] for e in sandbox.requests(tenant_id=second) if e["status"] == 503] == [
        "offline",
        "offline",
    ]


def test_offline_and_maintenance_503s_are_told_apart(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    first = xero_grant.tenant_ids[0]
    sandbox.fault(kind="status", status=503, path=CONTACTS)
    sandbox.fault(kind="offline", tenant_id=first)
    maintenance, offline = contacts(http, xero_grant, first), contacts(http, xero_grant, first)
    assert (maintenance.status_code, offline.status_code) == (503, 503)
    assert maintenance.text == "The Xero API is currently offline for maintenance"
    assert offline.text == "Organisation offline"


def test_lost_token_response_is_recovered_within_the_grace(
    sandbox: SandboxHandle, xero_app: dict, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="drop", path="/connect/token")
    with pytest.raises(httpx.RemoteProtocolError):
        refresh(http, xero_app, xero_grant.refresh_token)
    # The rotation happened behind the lost response; the old token still works for 30 minutes.
    retry = refresh(http, xero_app, xero_grant.refresh_token)
    assert retry.status_code == 200
    assert retry.json()["refresh_token"] != xero_grant.refresh_token


def test_status_fault_on_token_endpoint_happens_before_rotation(
    sandbox: SandboxHandle, xero_app: dict, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.fault(kind="status", status=503, path="/connect/token")
    assert refresh(http, xero_app, xero_grant.refresh_token).status_code == 503
    assert [g["revoked"] for g in sandbox.grants()] == [False]
    # Nothing rotated: well past the grace window, the original refresh token is still current.
    sandbox.advance(3600)
    assert refresh(http, xero_app, xero_grant.refresh_token).status_code == 200


def test_control_plane_is_never_faulted(sandbox: SandboxHandle) -> None:
    sandbox.fault(kind="status", status=500, path="/", count=-1)
    assert sandbox.tenants()
    assert len(sandbox.faults()) == 1


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "explode"}, "kind"),
        ({"kind": "status"}, "status"),
        ({"kind": "status", "status": 200}, "status"),
        ({"kind": "slow"}, "seconds"),
        ({"kind": "rate_limit", "problem": "hour"}, "problem"),
        ({"kind": "drop", "count": 0}, "count"),
        ({"kind": "drop", "path": "api"}, "path"),
        ({"kind": "drop", "colour": "red"}, "unknown"),
        ({"kind": "offline"}, "needs 'tenant_id'"),
    ],
)
def test_bad_fault_bodies_are_400_with_a_reason(
    sandbox: SandboxHandle, body: dict, message: str
) -> None:
    with pytest.raises(SandboxError, match=f"400.*{message}"):
        sandbox.fault(**body)
