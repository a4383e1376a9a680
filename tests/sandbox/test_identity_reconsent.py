"""Re-consent to an organisation that is already connected, in both `reconsent_auth_event` modes.

REFERENCE 0: reports say the connection keeps its `authEventId` ("keep", the default); the
sandbox can also model the opposite ("new"). The token always names the new consent.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from sandbox.handle import SandboxHandle, consent_via_forms
from tests.sandbox.conftest import basic, claims
from tests.sandbox.test_identity_flow import CALLBACK, authorize_params


def _consent(
    sandbox: SandboxHandle,
    browser: httpx.Client,
    http: httpx.Client,
    app: dict,
    user: dict,
    tenant_ids: list[str],
) -> dict[str, Any]:
    """Allow access to `tenant_ids` in the browser and exchange the code: the token response."""
    outcome = consent_via_forms(
        sandbox,
        browser,
        authorize_params(app),
        user["email"],
        user["password"],
        tenant_ids=tenant_ids,
    )
    response = http.post(
        "/connect/token",
        data={
            "grant_type": "authorization_code",
            "code": outcome.params["code"],
            "redirect_uri": CALLBACK,
        },
        headers=basic(app["client_id"], app["client_secret"]),
    )
    assert response.status_code == 200, response.text
    return response.json()


def _connections(http: httpx.Client, tokens: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows = http.get(
        "/connections", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    ).json()
    return {r["tenantId"]: r for r in rows}


def test_keep_is_the_default_and_the_old_auth_event_and_time_stay(
    sandbox: SandboxHandle,
    xero_app: dict,
    browser: httpx.Client,
    http: httpx.Client,
    tenant_ids: list[str],
) -> None:
    assert sandbox.settings()["reconsent_auth_event"] == "keep"
    adviser = sandbox.admin()
    first = _consent(sandbox, browser, http, xero_app, adviser, tenant_ids[:1])
    before = _connections(http, first)[tenant_ids[0]]
    sandbox.advance(60)

    # Again, with the connected organisation and a new one in the same consent.
    second = _consent(sandbox, browser, http, xero_app, adviser, tenant_ids)
    event2 = claims(second["access_token"])["authentication_event_id"]
    assert event2 != before["authEventId"]
    after = _connections(http, second)
    again = after[tenant_ids[0]]
    assert again["id"] == before["id"]
    assert again["authEventId"] == before["authEventId"]
    assert again["updatedDateUtc"] == before["updatedDateUtc"]  # nothing marks the re-consent
    assert after[tenant_ids[1]]["authEventId"] == event2  # a new connection takes the new event
    filtered = http.get(
        "/connections",
        params={"authEventId": event2},
        headers={"Authorization": f"Bearer {second['access_token']}"},
    ).json()
    assert [r["tenantId"] for r in filtered] == [tenant_ids[1]]
    # The re-consented organisation is still readable with the new token.
    api = http.get(
        "/api.xro/2.0/Accounts",
        headers={
            "Authorization": f"Bearer {second['access_token']}",
            "xero-tenant-id": tenant_ids[0],
            "Accept": "application/json",
        },
    )
    assert api.status_code == 200


@pytest.mark.parametrize("mode", ["keep", "new"])
def test_reconsent_reuses_the_connection_and_the_token_names_the_new_event(
    sandbox: SandboxHandle,
    xero_app: dict,
    browser: httpx.Client,
    http: httpx.Client,
    tenant_ids: list[str],
    mode: str,
) -> None:
    sandbox.settings(reconsent_auth_event=mode)
    admin = sandbox.admin(tenant_ids[:1])
    first = _consent(sandbox, browser, http, xero_app, admin, tenant_ids[:1])
    before = _connections(http, first)[tenant_ids[0]]
    sandbox.advance(60)
    second = _consent(sandbox, browser, http, xero_app, admin, tenant_ids[:1])
    event2 = claims(second["access_token"])["authentication_event_id"]
    [after] = _connections(http, second).values()
    assert after["id"] == before["id"]
    assert event2 != before["authEventId"]
    if mode == "new":
        assert after["authEventId"] == event2
        assert after["updatedDateUtc"] > before["updatedDateUtc"]
    else:
        assert after["authEventId"] == before["authEventId"]
        assert after["updatedDateUtc"] == before["updatedDateUtc"]


def test_the_consent_page_marks_organisations_already_connected(
    sandbox: SandboxHandle,
    xero_app: dict,
    browser: httpx.Client,
    http: httpx.Client,
    tenant_ids: list[str],
) -> None:
    adviser = sandbox.admin()
    _consent(sandbox, browser, http, xero_app, adviser, tenant_ids[:1])
    page = browser.get(
        "/identity/connect/authorize", params=authorize_params(xero_app), follow_redirects=True
    )
    labels = page.text.split("<label>")[1:]
    assert "Already connected" in next(label for label in labels if tenant_ids[0] in label)
    assert "Already connected" not in next(label for label in labels if tenant_ids[1] in label)


def test_bad_reconsent_mode_is_refused(sandbox: SandboxHandle, http: httpx.Client) -> None:
    response = http.post("/_sandbox/settings", json={"reconsent_auth_event": "sometimes"})
    assert response.status_code == 400
    assert "reconsent_auth_event" in response.json()["error"]
