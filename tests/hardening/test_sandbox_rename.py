"""The sandbox control call the hardening suite added: renaming an organisation (so tests can give
an organisation a hostile name that comes back from Xero's `/connections` and `/Organisation`)."""

from __future__ import annotations

import httpx
import pytest

from sandbox.handle import SandboxHandle, XeroGrant

pytestmark = pytest.mark.hardening
HOSTILE = '<script>alert("org")</script> & Sons'


def test_renamed_organisation_shows_in_connections_and_organisation(
    sandbox: SandboxHandle, xero_grant: XeroGrant,
) -> None:
    tenant_id = xero_grant.tenant_ids[0]
    answer = sandbox.http.post(f"/_sandbox/tenants/{tenant_id}", json={"name": HOSTILE})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"tenantId": tenant_id, "name": HOSTILE}
    conns = httpx.get(sandbox.connections_url, headers=xero_grant.headers()).json()
    assert {c["tenantName"] for c in conns if c["tenantId"] == tenant_id} == {HOSTILE}
    org = httpx.get(f"{sandbox.api_url}/Organisation", headers=xero_grant.headers(tenant_id))
    assert org.json()["Organisations"][0]["Name"] == HOSTILE
    assert HOSTILE in [t["name"] for t in sandbox.tenants()]
    sandbox.reset()
    assert HOSTILE not in [t["name"] for t in sandbox.tenants()]


@pytest.mark.parametrize(("tenant", "body", "status"), [
    ("no-such-tenant", {"name": "X"}, 404),
    (None, {"name": ""}, 400),
    (None, {"name": 42}, 400),
    (None, {"name": "x" * 501}, 400),
    (None, ["name"], 400),
])
def test_rename_refuses_bad_bodies(sandbox: SandboxHandle, tenant: str | None, body: object,
                                   status: int) -> None:
    tenant_id = tenant or sandbox.tenant_ids()[0]
    answer = sandbox.http.post(f"/_sandbox/tenants/{tenant_id}", json=body)
    assert answer.status_code == status, answer.text
    assert "error" in answer.json()
