"""A real browser reconnects a connection that needs it, and meets an error page's support
reference; screenshots in test-artifacts/screenshots/."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.auth_server.conftest import start_auth, stop_auth
from tests.sandbox_handle import SandboxHandle

pytestmark = pytest.mark.browser

NEXT_URL = "https://platform.test/xero/connected"


def _consent(page: Any, link: str, org: dict[str, Any]) -> None:
    page.goto(link)
    page.get_by_role("button", name="Xero").click()
    page.get_by_role("button", name="Next").click()
    allow = page.get_by_role("button", name="Allow access")
    email = page.locator("input[type=email]")
    allow.or_(email).first.wait_for()
    if email.count():  # the second time, Xero remembers the sign-in
        email.fill(org["admin"]["email"])
        page.locator("input[type=password]").fill(org["admin"]["password"])
        page.get_by_role("button", name="Log in").click()
    allow.click()
    page.get_by_role("heading", name="Confirm your company").wait_for()


def test_reconnect_brings_the_same_connection_back_and_errors_carry_a_reference(
    chromium: Any, sandbox: SandboxHandle, tmp_home: Path, org: dict[str, Any],
    screenshots: Path,
) -> None:
    auth = start_auth(sandbox, tmp_home, success_next_url=NEXT_URL)
    _, key = auth.store.create_api_key("browser test")
    api = auth.http(headers={"Authorization": f"Bearer {key}"})
    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    try:
        invite = api.post("/api/v1/invites", json={"company": org["name"],
                                                   "email": org["admin"]["email"]}).json()
        cid = invite["connection_id"]
        _consent(page, invite["link"], org)
        page.get_by_role("button", name="Confirm").click()
        page.get_by_role("heading", name="Connection Successful").wait_for()
        first_connected = auth.connection(cid).connected_at

        auth.store.update_connection(cid, status="needs_reconnection",
                                     status_reason="Xero refused access to the organisation")
        reconnect = api.post(f"/api/v1/connections/{cid}/resend").json()
        assert reconnect["connection_id"] == cid

        # The old link now shows an error page with a support reference.
        page.goto(invite["link"])
        page.get_by_role("heading", name="This link is no longer valid").wait_for()
        reference = page.locator(".support-code").inner_text()
        assert re.fullmatch(r"XE-[0-9A-F]{6} · \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", reference)
        page.screenshot(path=str(screenshots / "01-old-link-support-reference.png"),
                        full_page=True)

        _consent(page, reconnect["link"], org)
        page.screenshot(path=str(screenshots / "02-reconnect-confirm.png"), full_page=True)
        page.get_by_role("button", name="Confirm").click()
        page.get_by_role("heading", name="Connection Successful").wait_for()
        next_button = page.get_by_role("link", name="Next")
        assert next_button.get_attribute("href") == NEXT_URL
        page.screenshot(path=str(screenshots / "03-reconnected-next.png"), full_page=True)
    finally:
        context.close()
        api.close()
        stop_auth(auth)

    back = auth.connection(cid)
    assert (back.status, back.status_reason, back.tenant_id) == ("connected", None,
                                                                 org["tenantId"])
    assert back.connected_at >= first_connected  # type: ignore[operator]
    assert [c.connection_id for c in auth.store.list_connections()] == [cid]
