"""The app's connection cap (`max_connections`): greyed out, disabled, refused (REFERENCE 0)."""

from __future__ import annotations

import re

import httpx
import pytest

from sandbox.handle import SandboxError, SandboxHandle, consent_via_forms
from tests.sandbox.test_identity_flow import authorize_params

RID = re.compile(r'name="rid" value="([^"]+)"')


def _consent_page(browser: httpx.Client, app: dict, user: dict) -> httpx.Response:
    """Sign in (if needed) and open the consent page."""
    page = browser.get("/identity/connect/authorize", params=authorize_params(app))
    if 'type="password"' in page.text:
        page = browser.post(
            "/identity/login",
            data={
                "rid": RID.search(page.text).group(1),  # type: ignore[union-attr]
                "email": user["email"],
                "password": user["password"],
            },
        )
    assert page.status_code == 302
    return browser.get(page.headers["location"])


def _choice(page: httpx.Response, tenant_id: str) -> str:
    """The <label> of one organisation on the consent page."""
    found = re.search(rf'<label[^>]*><input[^>]*value="{tenant_id}"[^>]*>.*?</label>', page.text)
    assert found, f"{tenant_id} not offered"
    return found.group(0)


def test_at_the_cap_new_organisations_are_greyed_and_connected_ones_stay_choosable(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client, tenant_ids: list[str]
) -> None:
    adviser = sandbox.admin()
    sandbox.grant(xero_app["client_id"], adviser["email"], tenant_ids[:1])
    sandbox.settings(max_connections=1)

    page = _consent_page(browser, xero_app, adviser)
    connected, other = _choice(page, tenant_ids[0]), _choice(page, tenant_ids[1])
    assert " disabled" not in connected
    assert " checked" in connected
    assert " disabled" in other
    assert " checked" not in other
    assert "reached its connection limit" in other
    assert re.search(r'value="allow"(?! disabled)>Allow access', page.text)

    # A forced post for the greyed organisation is refused; nothing is connected.
    rid = RID.search(page.text).group(1)  # type: ignore[union-attr]
    forced = browser.post(
        "/identity/consent", data={"rid": rid, "action": "allow", "tenant_id": tenant_ids[1]}
    )
    assert forced.status_code == 403
    assert "reached its connection limit" in forced.text
    assert [c["tenantId"] for c in sandbox.connections()] == [tenant_ids[0]]

    # Re-consenting the connected one adds no connection, so it goes through.
    allowed = browser.post(
        "/identity/consent", data={"rid": rid, "action": "allow", "tenant_id": tenant_ids[0]}
    )
    assert allowed.status_code == 302
    assert "code=" in allowed.headers["location"]
    assert len(sandbox.connections()) == 1


def test_with_nothing_choosable_only_cancel_remains(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client, tenant_ids: list[str]
) -> None:
    # Another user's connection counts towards the app's cap too.
    other_admin = sandbox.admin(tenant_ids[1:])
    sandbox.grant(xero_app["client_id"], other_admin["email"], tenant_ids[1:])
    sandbox.settings(max_connections=1)
    admin = sandbox.admin(tenant_ids[:1])
    assert admin["email"] != other_admin["email"]

    page = _consent_page(browser, xero_app, admin)
    assert " disabled" in _choice(page, tenant_ids[0])
    assert 'value="allow" disabled>Allow access' in page.text
    assert "Cancel" in page.text
    rid = RID.search(page.text).group(1)  # type: ignore[union-attr]
    forced = browser.post(
        "/identity/consent", data={"rid": rid, "action": "allow", "tenant_id": tenant_ids[0]}
    )
    assert forced.status_code == 403
    cancelled = browser.post("/identity/consent", data={"rid": rid, "action": "cancel"})
    assert cancelled.status_code == 302
    location = cancelled.headers["location"]
    assert "error=access_denied" in location
    assert "error_description" not in location
    assert len(sandbox.connections()) == 1


def test_a_consent_that_would_pass_the_cap_is_refused_whole(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client, tenant_ids: list[str]
) -> None:
    sandbox.settings(max_connections=1)
    adviser = sandbox.admin()
    page = _consent_page(browser, xero_app, adviser)
    assert " disabled" not in page.text  # below the cap nothing is greyed
    rid = RID.search(page.text).group(1)  # type: ignore[union-attr]
    both = browser.post(
        "/identity/consent", data={"rid": rid, "action": "allow", "tenant_id": tenant_ids}
    )
    assert both.status_code == 403
    assert sandbox.connections() == []
    one = consent_via_forms(
        sandbox,
        browser,
        authorize_params(xero_app),
        adviser["email"],
        adviser["password"],
        tenant_ids=tenant_ids[:1],
    )
    assert "code" in one.params


def test_no_cap_by_default_and_reset_restores_it(
    sandbox: SandboxHandle, xero_app: dict, tenant_ids: list[str]
) -> None:
    assert sandbox.settings()["max_connections"] is None
    sandbox.settings(max_connections=0)
    sandbox.reset()
    assert sandbox.settings()["max_connections"] is None


def test_control_plane_grants_honour_the_cap_and_the_reconsent_mode(
    sandbox: SandboxHandle, xero_app: dict, tenant_ids: list[str]
) -> None:
    admin = sandbox.admin()["email"]
    first = sandbox.grant(xero_app["client_id"], admin, tenant_ids[:1])
    event = sandbox.connections()[0]["authEventId"]
    sandbox.settings(max_connections=1)
    with pytest.raises(SandboxError, match="409"):  # at the cap: nothing connected
        sandbox.grant(xero_app["client_id"], admin, tenant_ids[1:])
    assert [c["tenantId"] for c in sandbox.connections()] == tenant_ids[:1]
    again = sandbox.grant(xero_app["client_id"], admin, tenant_ids[:1])  # re-consent, "keep"
    assert sandbox.connections()[0]["authEventId"] == event
    assert again["access_token"] != first["access_token"]
