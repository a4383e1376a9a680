"""Who may call the Accounting API: Xero's 401/403 distinctions, in Xero's order, and routing."""

from __future__ import annotations

import uuid

import httpx

from sandbox.handle import SandboxHandle, XeroGrant
from tests.sandbox.conftest import api_get, refresh


def assert_problem(response: httpx.Response, status: int, detail: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["Status"] == status
    assert body["Detail"] == detail
    assert body["Title"] == {401: "Unauthorized", 403: "Forbidden"}[status]
    assert uuid.UUID(body["Instance"])
    assert set(body) == {"Type", "Title", "Status", "Detail", "Instance", "Extensions"}


def test_missing_and_unknown_tenant_are_403(xero_grant: XeroGrant, http: httpx.Client) -> None:
    assert_problem(api_get(http, xero_grant.access_token, None), 403, "AuthenticationUnsuccessful")
    assert_problem(
        api_get(http, xero_grant.access_token, str(uuid.uuid4())), 403, "AuthenticationUnsuccessful"
    )


def test_tenant_connected_by_someone_else_is_403(
    sandbox: SandboxHandle, xero_app: dict, http: httpx.Client, tenant_ids: list[str]
) -> None:
    first_only = sandbox.admin([tenant_ids[0]])
    assert tenant_ids[1] not in first_only["tenant_ids"]
    tokens = sandbox.grant(xero_app["client_id"], first_only["email"])
    sandbox.grant(xero_app["client_id"], sandbox.admin()["email"])  # the adviser connects both
    assert api_get(http, tokens["access_token"], tenant_ids[0]).status_code == 200
    assert_problem(
        api_get(http, tokens["access_token"], tenant_ids[1]), 403, "AuthenticationUnsuccessful"
    )


def test_disconnected_tenant_is_403_and_refresh_dies_when_nothing_is_left(
    sandbox: SandboxHandle, xero_app: dict, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    first, second = xero_grant.tenant_ids
    result = sandbox.disconnect(first, xero_app["client_id"])
    assert len(result["removed"]) == 1
    assert result["grants_revoked"] == 0
    assert_problem(api_get(http, xero_grant.access_token, first), 403, "AuthenticationUnsuccessful")
    assert api_get(http, xero_grant.access_token, second).status_code == 200
    assert sandbox.disconnect(second)["grants_revoked"] == 1
    assert refresh(http, xero_app, xero_grant.refresh_token).json() == {"error": "invalid_grant"}


def test_missing_scope_is_401_authorization_unsuccessful(
    sandbox: SandboxHandle, xero_app: dict, http: httpx.Client, tenant_ids: list[str]
) -> None:
    tokens = sandbox.grant(
        xero_app["client_id"],
        sandbox.admin()["email"],
        scopes="offline_access accounting.contacts.read",
    )
    assert api_get(http, tokens["access_token"], tenant_ids[0], "/Contacts").status_code == 200
    for path in ("/Accounts", "/TaxRates", "/TrackingCategories"):
        assert_problem(
            api_get(http, tokens["access_token"], tenant_ids[0], path),
            401,
            "AuthorizationUnsuccessful",
        )
    # The write scope covers reading too.
    write = sandbox.grant(
        xero_app["client_id"], sandbox.admin()["email"], scopes="accounting.settings"
    )
    assert api_get(http, write["access_token"], tenant_ids[0], "/Accounts").status_code == 200


def test_checks_run_in_xeros_order(
    sandbox: SandboxHandle, xero_app: dict, http: httpx.Client
) -> None:
    tokens = sandbox.grant(
        xero_app["client_id"], sandbox.admin()["email"], scopes="accounting.contacts.read"
    )
    # Wrong tenant beats missing scope.
    assert api_get(http, tokens["access_token"], str(uuid.uuid4()), "/Accounts").status_code == 403
    sandbox.advance(1801)
    # Expiry beats a wrong tenant.
    expired = api_get(http, tokens["access_token"], str(uuid.uuid4()), "/Accounts")
    assert expired.status_code == 401
    assert expired.json()["Detail"].startswith("TokenExpired")


def test_json_when_asked_xml_otherwise(xero_grant: XeroGrant, http: httpx.Client) -> None:
    tenant = xero_grant.tenant_ids[0]
    as_json = http.get("/api.xro/2.0/Accounts", headers=xero_grant.headers(tenant))
    assert as_json.headers["content-type"].startswith("application/json")
    assert "Accounts" in as_json.json()
    as_xml = http.get("/api.xro/2.0/Accounts", headers=xero_grant.headers(tenant, json=False))
    assert as_xml.status_code == 200
    assert "xml" in as_xml.headers["content-type"]
    assert as_xml.text.lstrip().startswith("<")


def test_api_responses_carry_correlation_id_and_limit_headers(
    xero_grant: XeroGrant, http: httpx.Client
) -> None:
    response = http.get(
        "/api.xro/2.0/TaxRates", headers=xero_grant.headers(xero_grant.tenant_ids[0])
    )
    assert response.status_code == 200
    assert uuid.UUID(response.headers["xero-correlation-id"])
    assert response.headers["x-daylimit-remaining"] == "4999"
    assert response.headers["x-minlimit-remaining"] == "59"
    assert int(response.headers["x-appminlimit-remaining"]) <= 9999


def test_resource_names_are_case_insensitive_and_unknown_ones_404(
    xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    assert http.get("/api.xro/2.0/contacts", headers=xero_grant.headers(tenant)).status_code == 200
    assert http.get("/api.xro/2.0/Invoicez", headers=xero_grant.headers(tenant)).status_code == 404
    assert http.post("/api.xro/2.0/Contacts", headers=xero_grant.headers(tenant)).status_code == 405
    assert http.get("/nowhere").status_code == 404
