"""At Xero's connection cap, in a real browser: the greyed-out consent page, our page after
Cancel, and the admin page's warning (screenshots in test-artifacts/screenshots/)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from auth_server.invites import create_invite
from tests.auth_server.helpers import ADMIN_TOKEN, RunningAuth

pytestmark = pytest.mark.browser


def _shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_the_connection_limit_in_a_browser(
    chromium: Any, auth: RunningAuth, sandbox: Any, screenshots: Path
) -> None:
    first, second = sandbox.tenants()[:2]
    one_admin = sandbox.admin([first["tenantId"]])
    other_admin = sandbox.admin([second["tenantId"]])
    _, link1 = create_invite(auth.store, auth.settings, first["name"], one_admin["email"])
    auth.customer().connect(link1, one_admin, tenant_ids=[first["tenantId"]])
    sandbox.settings(max_connections=1)
    auth.server.app.settings = dataclasses.replace(auth.settings, max_connections=1)
    conn, link2 = create_invite(auth.store, auth.settings, second["name"], other_admin["email"])

    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    try:
        page.goto(link2)
        page.get_by_role("button", name="Xero").click()
        page.get_by_role("button", name="Next").click()
        page.locator("input[type=email]").fill(other_admin["email"])
        page.locator("input[type=password]").fill(other_admin["password"])
        page.get_by_role("button", name="Log in").click()
        allow = page.get_by_role("button", name="Allow access")
        allow.wait_for()
        assert allow.is_disabled()
        assert page.get_by_role("radio").first.is_disabled()
        _shot(page, screenshots, "20-xero-at-the-connection-limit")

        page.get_by_role("button", name="Cancel").click()
        page.get_by_role("heading", name="Xero could not connect another organisation").wait_for()
        _shot(page, screenshots, "21-connection-limit")

        page.goto(auth.url + "/admin/login")
        page.locator("input[type=password]").fill(ADMIN_TOKEN)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Connections").wait_for()
        assert page.get_by_text("1 of 1 organisations connected").is_visible()
        _shot(page, screenshots, "22-admin-connection-limit-warning")
    finally:
        context.close()
    assert auth.connection(conn.connection_id).status_reason == "connection_limit"
