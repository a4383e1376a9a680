"""The `/_sandbox/` control plane: shapes from CONVENTIONS, the request log, clock, reset."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from sandbox.handle import SandboxError, SandboxHandle, XeroGrant, consent_via_forms
from tests.sandbox.conftest import claims


def test_apps_are_registered_with_xero_like_ids(sandbox: SandboxHandle) -> None:
    app = sandbox.create_app(["http://127.0.0.1:8765/callback"], name="demo")
    assert set(app) == {"client_id", "client_secret", "name", "redirect_uris"}
    assert re.fullmatch(r"[0-9A-F]{32}", app["client_id"])
    assert len(app["client_secret"]) >= 32
    assert app["name"] == "demo"
    assert app["redirect_uris"] == ["http://127.0.0.1:8765/callback"]
    response = sandbox.http.post(
        "/_sandbox/apps", json={"name": "demo", "redirect_uris": ["http://127.0.0.1:1/cb"]}
    )
    assert response.status_code == 201
    fixed = sandbox.create_app(name="fixed", client_id="ABC", client_secret="s3cret")
    assert (fixed["client_id"], fixed["client_secret"]) == ("ABC", "s3cret")
    assert [a["name"] for a in sandbox.http.get("/_sandbox/apps").json()] == [
        "demo",
        "demo",
        "fixed",
    ]
    with pytest.raises(SandboxError, match="409"):
        sandbox.create_app(name="again", client_id="ABC")
    with pytest.raises(SandboxError, match="400"):
        sandbox.create_app([])


def test_tenants_and_users(sandbox: SandboxHandle) -> None:
    tenants = sandbox.tenants()
    assert len(tenants) == 2
    for tenant in tenants:
        assert uuid.UUID(tenant["tenantId"])
        assert tenant["name"]
        assert set(tenant["counts"]) == {
            "contacts",
            "suppliers",
            "accounts",
            "tax_rates",
            "tracking_categories",
            "tracking_options",
        }
        assert tenant["counts"]["suppliers"] == 250
    users = sandbox.users()
    assert {u["role"] for u in users} == {"admin", "standard"}
    for user in users:
        assert {"email", "password", "role", "tenant_ids"} <= set(user)
        assert set(user["tenant_ids"]) <= {t["tenantId"] for t in tenants}


def test_grant_without_a_browser_is_a_token_response_with_connections(
    sandbox: SandboxHandle, xero_app: dict, http: httpx.Client
) -> None:
    tenant_ids = sandbox.tenant_ids()
    tokens = sandbox.grant(xero_app["client_id"], sandbox.admin()["email"], tenant_ids)
    assert set(tokens) == {
        "id_token",
        "access_token",
        "expires_in",
        "token_type",
        "refresh_token",
        "scope",
    }
    event = claims(tokens["access_token"])["authentication_event_id"]
    rows = http.get(
        "/connections", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).json()
    assert sorted(r["tenantId"] for r in rows) == sorted(tenant_ids)
    assert {r["authEventId"] for r in rows} == {event}
    listed = sandbox.connections()
    assert {c["client_id"] for c in listed} == {xero_app["client_id"]}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"client_id": "NOPE"}, "client_id"),
        ({"user": "nobody@example.com"}, "user"),
        ({"scopes": "openid accounting.everything"}, "scopes"),
        ({"tenant_ids": [str(uuid.uuid4())]}, "tenant_ids"),
    ],
)
def test_bad_grant_requests_say_why(
    sandbox: SandboxHandle, xero_app: dict, change: dict, message: str
) -> None:
    body = {"client_id": xero_app["client_id"], "user": sandbox.admin()["email"], **change}
    response = sandbox.http.post("/_sandbox/grants", json=body)
    assert response.status_code == 400
    assert message in response.json()["error"]


def test_standard_users_cannot_be_granted(sandbox: SandboxHandle, xero_app: dict) -> None:
    with pytest.raises(SandboxError, match="not an admin"):
        sandbox.grant(xero_app["client_id"], sandbox.standard_user()["email"])


def test_request_log_shape_and_redaction(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    http.get(
        "/api.xro/2.0/Contacts",
        params={"page": "1", "pageSize": "10"},
        headers={
            **xero_grant.headers(tenant),
            "If-Modified-Since": "2024-01-01T00:00:00",
            "Cookie": "a=b",
        },
    )
    http.post(
        "/connect/token",
        data={"grant_type": "refresh_token", "refresh_token": xero_grant.refresh_token},
        auth=(xero_grant.client_id, xero_grant.client_secret),
    )
    log = sandbox.requests()
    assert [(e["method"], e["path"]) for e in log] == [
        ("GET", "/api.xro/2.0/Contacts"),
        ("POST", "/connect/token"),
    ]  # the control calls are not in it
    entry = log[0]
    assert set(entry) >= {"time", "method", "path", "query", "status", "tenant_id", "headers"}
    assert entry["query"] == {"page": "1", "pageSize": "10"}
    assert entry["status"] == 200
    assert entry["tenant_id"] == tenant
    assert entry["headers"]["if-modified-since"] == "2024-01-01T00:00:00"
    assert entry["headers"]["authorization"] == "REDACTED"
    assert entry["headers"]["cookie"] == "REDACTED"
    assert all(k == k.lower() for k in entry["headers"])
    assert abs(datetime.fromisoformat(entry["time"]) - sandbox.now()) < timedelta(seconds=30)
    dumped = json.dumps(log)
    for secret in (xero_grant.access_token, xero_grant.refresh_token, xero_grant.client_secret):
        assert secret not in dumped
    assert sandbox.requests(path="/connect") == log[1:]
    assert sandbox.requests(tenant_id=tenant) == log[:1]
    sandbox.clear_requests()
    assert sandbox.requests() == []


def test_stats_count_per_status_path_and_tenant(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    first, second = xero_grant.tenant_ids
    for tenant in (first, first, second):
        http.get("/api.xro/2.0/Accounts", headers=xero_grant.headers(tenant))
    http.get("/api.xro/2.0/Accounts", headers=xero_grant.headers(str(uuid.uuid4())))
    stats = sandbox.stats()
    assert stats["total"] == 4
    assert stats["by_status"] == {"200": 3, "403": 1}
    assert stats["by_path"]["/api.xro/2.0/Accounts"]["total"] == 4
    assert stats["by_tenant"][first]["total"] == 2
    assert stats["by_tenant"][first]["by_status"] == {"200": 2}
    assert stats["rate_limited"] == 0


def test_mutations_pass_through_and_errors_are_400(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    page = http.get(
        "/api.xro/2.0/Contacts", params={"page": 1}, headers=xero_grant.headers(tenant)
    ).json()
    contact_id = page["Contacts"][0]["ContactID"]
    result = sandbox.mutate(
        tenant_id=tenant,
        entity="contacts",
        op="update",
        id=contact_id,
        fields={"Name": "Renamed Ltd"},
    )
    assert result == {"ok": True, "id": contact_id}
    one = http.get(f"/api.xro/2.0/Contacts/{contact_id}", headers=xero_grant.headers(tenant)).json()
    assert one["Contacts"][0]["Name"] == "Renamed Ltd"
    with pytest.raises(SandboxError, match="400"):
        sandbox.mutate(tenant_id=tenant, entity="contacts", op="explode")
    with pytest.raises(SandboxError, match="404"):
        sandbox.mutate(tenant_id=str(uuid.uuid4()), entity="contacts", op="update", id=contact_id)


def test_clock_advances_and_jumps(sandbox: SandboxHandle) -> None:
    before = sandbox.now()
    after = sandbox.advance(3600)
    assert timedelta(seconds=3599) < after - before < timedelta(seconds=3700)
    target = datetime(2031, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert abs(sandbox.set_time("2031-05-06T07:08:09Z") - target) < timedelta(seconds=5)
    assert sandbox.now() >= target  # it keeps ticking from there
    for body in ({}, {"advance_seconds": "soon"}, {"set": "yesterday"}):
        assert sandbox.http.post("/_sandbox/clock", json=body).status_code == 400


def test_reset_returns_to_the_seeded_state(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    contact_id = http.get(
        "/api.xro/2.0/Contacts", params={"page": 1}, headers=xero_grant.headers(tenant)
    ).json()["Contacts"][0]["ContactID"]
    sandbox.mutate(
        tenant_id=tenant, entity="contacts", op="update", id=contact_id, fields={"Name": "Changed"}
    )
    sandbox.fault(kind="status", status=500, count=-1)
    sandbox.limits(day=1)
    sandbox.advance(86400 * 3)
    sandbox.reset()
    assert sandbox.http.get("/_sandbox/apps").json() == []
    assert sandbox.grants() == []
    assert sandbox.connections() == []
    assert sandbox.faults() == []
    assert sandbox.requests() == []
    assert sandbox.limits()["limits"]["day"] == 5000
    assert abs(sandbox.now() - datetime.now(UTC)) < timedelta(seconds=60)
    grant = XeroGrant(**{**xero_grant.__dict__})
    app = sandbox.create_app()
    tokens = sandbox.grant(app["client_id"], xero_grant.user)
    grant.access_token = tokens["access_token"]
    one = http.get(f"/api.xro/2.0/Contacts/{contact_id}", headers=grant.headers(tenant)).json()
    assert one["Contacts"][0]["Name"] != "Changed"
    assert (
        http.get(
            "/connections", headers={"Authorization": f"Bearer {xero_grant.access_token}"}
        ).status_code
        == 401
    )


def test_added_user_can_sign_in(sandbox: SandboxHandle, xero_app: dict) -> None:
    tenant = sandbox.tenant_ids()[1]
    sandbox.add_user("new.staff@example.com", "pw-123456", "standard", [tenant])
    params = {
        "response_type": "code",
        "client_id": xero_app["client_id"],
        "redirect_uri": xero_app["redirect_uris"][0],
        "scope": "openid accounting.contacts.read",
        "state": "x",
    }
    with httpx.Client(timeout=30) as browser:
        outcome = consent_via_forms(sandbox, browser, params, "new.staff@example.com", "pw-123456")
    assert outcome.params["error_description"] == "not_admin"
    with pytest.raises(SandboxError, match="409"):
        sandbox.add_user("new.staff@example.com", "x", "admin", [tenant])


def test_revoke_grants_by_user_and_client(
    sandbox: SandboxHandle, xero_app: dict, xero_grant: XeroGrant
) -> None:
    result = sandbox.revoke(client_id=xero_app["client_id"], user=xero_grant.user)
    assert result == {"revoked": 1, "connections_removed": 2}
    assert sandbox.connections() == []
    assert sandbox.grants()[0]["revoked"] is True
    assert sandbox.http.post("/_sandbox/grants/revoke", json={}).status_code == 400


def test_info_and_bad_json(sandbox: SandboxHandle) -> None:
    info = sandbox.info()
    assert (info["tenants"], info["suppliers"], info["seed"], info["rate_limits"]) == (
        2,
        250,
        42,
        True,
    )
    assert info["url"] == sandbox.url
    bad = sandbox.http.post(
        "/_sandbox/faults", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert bad.status_code == 400
    assert "JSON" in bad.json()["error"]
    assert sandbox.http.put("/_sandbox/reset").status_code == 405
