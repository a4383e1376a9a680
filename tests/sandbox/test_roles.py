"""Users and roles: a grant whose user is no longer an admin gets Xero's 403 on accounting calls
while `/connections` still lists the organisation; a Standard user allowed to connect apps keeps
reading, with contacts' TaxNumber masked in US organisations (REFERENCE 0, "403 while the
organisation is still connected" and "Roles")."""

from __future__ import annotations

import uuid
from xml.etree import ElementTree

import httpx
import pytest

from sandbox.handle import SandboxError, SandboxHandle, XeroGrant, make_grant
from tests.conftest import SandboxFactory
from tests.sandbox.conftest import refresh

CONTACTS = "/api.xro/2.0/Contacts"


def contacts(http: httpx.Client, grant: XeroGrant, tenant: str) -> httpx.Response:
    return http.get(CONTACTS, params={"page": 1}, headers=grant.headers(tenant))


def test_losing_admin_gives_403_while_connections_still_list_it(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    user = sandbox.set_role(xero_grant.user, "standard")
    assert (user["role"], user["connect_apps"]) == ("standard", False)
    for tenant in xero_grant.tenant_ids:
        response = contacts(http, xero_grant, tenant)
        assert response.status_code == 403
        body = response.json()
        assert uuid.UUID(body.pop("Instance"))
        assert body == {
            "Type": None, "Title": "Forbidden", "Status": 403,
            "Detail": "AuthenticationUnsuccessful", "Extensions": {},
        }  # fmt: skip
    bearer = {"Authorization": f"Bearer {xero_grant.access_token}"}
    listed = http.get("/connections", headers=bearer)
    assert listed.status_code == 200
    assert sorted(c["tenantId"] for c in listed.json()) == sorted(xero_grant.tenant_ids)

    token = refresh(http, {"client_id": xero_grant.client_id,
                           "client_secret": xero_grant.client_secret}, xero_grant.refresh_token)
    assert token.status_code == 200  # the grant itself lives on; only the reads are refused
    xero_grant.access_token = token.json()["access_token"]
    assert contacts(http, xero_grant, xero_grant.tenant_ids[0]).status_code == 403

    assert sandbox.set_role(xero_grant.user, "admin")["connect_apps"] is True
    assert contacts(http, xero_grant, xero_grant.tenant_ids[0]).status_code == 200


def test_a_standard_user_allowed_to_connect_apps_keeps_reading(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.set_role(xero_grant.user, "standard", connect_apps=True)
    listed = next(u for u in sandbox.users() if u["email"] == xero_grant.user)
    assert (listed["role"], listed["connect_apps"]) == ("standard", True)
    full = contacts(http, xero_grant, xero_grant.tenant_ids[0])
    assert full.status_code == 200
    assert "*" not in "".join(c.get("TaxNumber", "") for c in full.json()["Contacts"])  # NZ


def test_a_standard_user_allowed_to_connect_apps_may_be_granted(
    sandbox: SandboxHandle, xero_app: dict, tenant_ids: list[str]
) -> None:
    staff = sandbox.standard_user()
    with pytest.raises(SandboxError, match="not an admin"):
        sandbox.grant(xero_app["client_id"], staff["email"])
    sandbox.set_role(staff["email"], "standard", connect_apps=True)
    assert "access_token" in sandbox.grant(xero_app["client_id"], staff["email"])


def test_us_tax_numbers_are_masked_for_standard_users_only(
    sandbox_factory: SandboxFactory,
) -> None:
    handle = sandbox_factory(tenants=4, suppliers=40, rate_limits=False)
    handle.reset()
    us = next(t["tenantId"] for t in handle.tenants() if t["country_code"] == "US")
    admin = next(u for u in handle.users() if u["role"] == "admin" and u["tenant_ids"] == [us])
    grant = make_grant(handle, handle.create_app(), user=admin["email"], tenant_ids=[us])
    with httpx.Client(base_url=handle.url, timeout=30) as http:
        plain = contacts(http, grant, us).json()["Contacts"]
        handle.set_role(admin["email"], "standard", connect_apps=True)
        masked = contacts(http, grant, us).json()["Contacts"]
        one = next(c for c in plain if c.get("TaxNumber"))
        single = http.get(f"{CONTACTS}/{one['ContactID']}", headers=grant.headers(us))
        xml = http.get(CONTACTS, params={"page": 1}, headers=grant.headers(us, json=False))
        handle.set_role(admin["email"], "admin")
        again = contacts(http, grant, us).json()["Contacts"]
    numbers = [(p.get("TaxNumber"), m.get("TaxNumber")) for p, m in zip(plain, masked, strict=True)]
    with_numbers = [(p, m) for p, m in numbers if p]
    assert len(with_numbers) >= 5
    for full, shown in with_numbers:
        assert shown == "*" * (len(full) - 4) + full[-4:]
    assert single.json()["Contacts"][0]["TaxNumber"].endswith(one["TaxNumber"][-4:])
    assert single.json()["Contacts"][0]["TaxNumber"].startswith("*")
    root = ElementTree.fromstring(xml.content)  # noqa: S314 - our own sandbox's output
    xml_numbers = [element.text or "" for element in root.iter("TaxNumber")]
    assert xml_numbers == [m for p, m in numbers if p is not None]
    assert again == plain  # admins see full values again


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"role": "owner"}, 400, "'role' is 'admin' or 'standard'"),
        ({}, 400, "give 'role'"),
        ({"role": "standard", "connect_apps": "yes"}, 400, "'connect_apps' must be true or false"),
        ({"role": "admin", "connect_apps": False}, 400, "an admin can always connect apps"),
        ({"role": "standard", "tenant_ids": []}, 400, "applies to all the user's organisations"),
    ],
)
def test_bad_role_changes_are_400_with_a_reason(
    sandbox: SandboxHandle, body: dict, status: int, message: str
) -> None:
    email = sandbox.admin()["email"]
    response = sandbox.http.post(f"/_sandbox/users/{email}", json=body)
    assert response.status_code == status
    assert message in response.json()["error"]
    assert next(u for u in sandbox.users() if u["email"] == email)["role"] == "admin"


def test_unknown_user_is_404(sandbox: SandboxHandle) -> None:
    response = sandbox.http.post("/_sandbox/users/nobody@example.test", json={"role": "admin"})
    assert response.status_code == 404


def test_reset_restores_roles(sandbox: SandboxHandle, xero_grant: XeroGrant) -> None:
    sandbox.set_role(xero_grant.user, "standard")
    sandbox.reset()
    assert next(u for u in sandbox.users() if u["email"] == xero_grant.user)["role"] == "admin"
