"""A real browser walks the whole connection flow against the sandbox, with screenshots.

invite email → "Xero" → "Next" → sign in at Xero → "Allow access" → "Confirm" →
"Connection Successful", then the first background sync loads the four entities into DuckDB.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from auth_server.invites import create_invite
from tests.auth_server.conftest import duckdb_counts
from tests.auth_server.helpers import RunningAuth, read_eml, wait_for

pytestmark = pytest.mark.browser


def _shot(page: Any, folder: Path, name: str) -> None:
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_a_person_connects_their_organisation_in_a_browser(
    chromium: Any, auth_duckdb: tuple[RunningAuth, Path], org: dict[str, Any], screenshots: Path
) -> None:
    auth, database = auth_duckdb
    conn, _ = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    [eml] = auth.outbox()
    html = read_eml(eml).get_body(("html",)).get_content()
    link = re.search(r'<a href="([^"]+)"', html).group(1)

    context = chromium.new_context(viewport={"width": 1280, "height": 860})
    page = context.new_page()
    try:
        # The email itself, as a mail client would show it.
        page.set_content(html)
        _shot(page, screenshots, "00-invite-email")

        page.goto(link)
        page.get_by_role("heading", name="Share your financial information").wait_for()
        assert "/invite/" not in page.url  # the token left the address bar
        _shot(page, screenshots, "01-share-your-financial-information")

        page.get_by_role("button", name="Xero").click()
        page.get_by_role("heading", name="Review access request").wait_for()
        _shot(page, screenshots, "02-review-access-request")

        page.get_by_role("button", name="Next").click()
        page.wait_for_url(re.compile(re.escape(auth.sandbox.url)))
        _shot(page, screenshots, "03-xero-sign-in")
        page.locator("input[type=email]").fill(org["admin"]["email"])
        page.locator("input[type=password]").fill(org["admin"]["password"])
        page.get_by_role("button", name="Log in").click()

        page.get_by_role("button", name="Allow access").wait_for()
        _shot(page, screenshots, "04-xero-allow-access")
        page.get_by_role("button", name="Allow access").click()

        page.get_by_role("heading", name="Confirm your company").wait_for()
        assert page.url == auth.url + "/connect/confirm"  # no code or state in the address bar
        _shot(page, screenshots, "05-confirm-your-company")
        page.get_by_role("button", name="Confirm").click()

        page.get_by_role("heading", name="Connection Successful").wait_for()
        assert page.get_by_text("Accounting – 1 connected").is_visible()
        _shot(page, screenshots, "06-connection-successful")

        wait_for(lambda: auth.connection(conn.connection_id).sync_state != "syncing",
                 timeout=180)
        page.reload()
        page.get_by_text("copied").wait_for()
        _shot(page, screenshots, "07-first-sync-done")

        # The customer-success person's view, with invites in other states beside it.
        create_invite(auth.store, auth.settings, "Bolt Supplies Pty", "ap@bolt.test")
        stuck, _ = create_invite(auth.store, auth.settings, "Harbour Freight Co", "it@hf.test")
        auth.store.update_connection(stuck.connection_id, status="incomplete",
                                     status_reason="no_permission")
        page.goto(auth.url + "/admin/login")
        _shot(page, screenshots, "08-admin-sign-in")
        page.locator("input[type=password]").fill(auth.settings.admin_token)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Connections").wait_for()
        _shot(page, screenshots, "09-admin-connections")
    finally:
        context.close()

    record = auth.connection(conn.connection_id)
    assert record.status == "connected"
    assert record.tenant_id == org["tenantId"]
    assert sorted(p.name for p in screenshots.glob("*.png"))[0] == "00-invite-email.png"
    # The store holds a working grant, and the first sync loaded the four entities.
    assert auth.store.get_grant(record.grant_id).status == "active"
    auth.server.app.first_sync.join(120)  # the run still writes its bookkeeping tables
    counts = duckdb_counts(database, org["tenantId"])
    assert counts["suppliers"] == org["counts"]["suppliers"]
    assert all(counts[t] > 0 for t in ("accounts", "tax_rates", "tracking_categories"))


def test_problem_pages_look_right_in_a_browser(
    chromium: Any, auth: RunningAuth, sandbox: Any, screenshots: Path
) -> None:
    """Not an admin at Xero, and an expired link: the pages a person sees."""
    user = sandbox.standard_user()
    conn, link = create_invite(auth.store, auth.settings, "Acme Ltd", user["email"])
    context = chromium.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    try:
        page.goto(link)
        page.get_by_role("button", name="Xero").click()
        page.get_by_role("button", name="Next").click()
        page.locator("input[type=email]").fill(user["email"])
        page.locator("input[type=password]").fill(user["password"])
        page.get_by_role("button", name="Log in").click()
        page.get_by_text("You don't have permission").first.wait_for()
        page.get_by_role("link", name=re.compile("Back to")).click()
        page.get_by_role("heading", name="You need to be a Xero admin to connect").wait_for()
        _shot(page, screenshots, "10-not-an-admin")
        assert auth.connection(conn.connection_id).status_reason == "no_permission"

        page.goto(auth.url + "/invite/" + "A" * 43)
        page.get_by_role("heading", name="This link is no longer valid").wait_for()
        _shot(page, screenshots, "11-link-not-valid")
    finally:
        context.close()
