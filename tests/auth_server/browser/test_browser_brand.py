"""The branded connect pages in English and Arabic, at a desktop's and a phone's width, in a real
browser: every page fits, runs the right way, and is saved as a screenshot to look at
(``test-artifacts/screenshots/<test>/``, or ``XERO_ELT_SCREENSHOTS`` when set)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest

from auth_server.invites import create_invite
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import ADMIN_TOKEN, read_eml

pytestmark = pytest.mark.browser

LOGO = """<svg xmlns="http://www.w3.org/2000/svg" width="150" height="40" viewBox="0 0 150 40">
<rect width="40" height="40" rx="9" fill="#0a7c6f"/><path d="M10 28 L20 10 L30 28 Z" fill="#fff"/>
<text x="48" y="27" font-family="Arial, sans-serif" font-size="17" font-weight="700"
 fill="#0a7c6f">Gulf Ledger</text></svg>"""
WIDTHS = (1280, 390)


def _folder(screenshots: Path) -> Path:
    chosen = os.environ.get("XERO_ELT_SCREENSHOTS")
    if not chosen:
        return screenshots
    folder = Path(chosen)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _look(page: Any, folder: Path, name: str, language: str) -> None:
    """Save the page and check what a person would notice first: it runs the right way and
    nothing sticks out sideways."""
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    direction = page.evaluate("document.documentElement.dir")
    assert direction == ("rtl" if language == "ar" else "ltr"), name
    assert page.evaluate("document.documentElement.lang") == language
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{name} is {overflow}px wider than the window"


@pytest.fixture
def branded(sandbox: Any, tmp_home: Path, tmp_path: Path) -> Any:
    logo = tmp_path / "gulf-ledger.svg"
    logo.write_text(LOGO)
    auth = start_auth(sandbox, tmp_home, product_name="Gulf Ledger", logo_url=str(logo),
                      brand_colour="#0a7c6f", support_email="help@gulfledger.test",
                      support_url="https://gulfledger.test/help")
    yield auth
    stop_auth(auth)


@pytest.mark.parametrize("language", ["en", "ar"])
def test_every_customer_page_branded_in_each_language_and_width(
        chromium: Any, branded: Any, sandbox: Any, screenshots: Path, language: str) -> None:
    folder = _folder(screenshots)
    tenants = sandbox.tenants()
    for width in WIDTHS:
        tenant = tenants[WIDTHS.index(width)]
        admin = sandbox.admin([tenant["tenantId"]])
        create_invite(branded.store, branded.settings, tenant["name"], admin["email"],
                      language=language)
        html = read_eml(branded.outbox()[-1]).get_body(("html",)).get_content()
        link = re.search(r'<a href="([^"]+)"', html).group(1)
        # The browser's own language matters only where no invite is known (a bad link).
        context = chromium.new_context(viewport={"width": width, "height": 860},
                                       locale="ar-AE" if language == "ar" else "en-GB")
        page = context.new_page()
        prefix = f"{language}-{width}"
        try:
            page.set_content(html)
            page.screenshot(path=str(folder / f"{prefix}-00-invite-email.png"), full_page=True)
            page.goto(link)
            page.locator("button.software-tile").wait_for()
            _look(page, folder, f"{prefix}-01-choose-software", language)
            page.locator("button.software-tile").click()
            page.locator("form[action='/connect/authorize']").wait_for()
            _look(page, folder, f"{prefix}-02-review", language)
            page.locator("form[action='/connect/authorize'] button[type=submit]").click()
            page.locator("input[type=email]").fill(admin["email"])
            page.locator("input[type=password]").fill(admin["password"])
            page.get_by_role("button", name="Log in").click()
            page.get_by_role("button", name="Allow access").click()
            page.locator("form[action='/connect/confirm'] .actions button").wait_for()
            _look(page, folder, f"{prefix}-03-confirm", language)
            page.locator("form[action='/connect/confirm'] .actions button").click()
            page.locator(".success-mark").wait_for()
            _look(page, folder, f"{prefix}-04-connection-successful", language)
            page.goto(branded.url + "/invite/" + "A" * 43)
            page.locator(".support-ref").wait_for()
            _look(page, folder, f"{prefix}-05-link-not-valid", language)
        finally:
            context.close()


def test_the_admin_table_fits_a_phone(chromium: Any, branded: Any, screenshots: Path) -> None:
    folder = _folder(screenshots)
    for company, email in [("Harbour Freight & Logistics Co", "accounts.payable@harbour.test"),
                           ("Bolt Supplies Pty", "ap@bolt.test")]:
        create_invite(branded.store, branded.settings, company, email)
    context = chromium.new_context(viewport={"width": 390, "height": 860},
                                   extra_http_headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    page = context.new_page()
    try:
        page.goto(branded.url + "/admin")
        page.locator("table.connections").wait_for()
        _look(page, folder, "admin-390-connections", "en")
    finally:
        context.close()


@pytest.mark.parametrize("language", ["en", "ar"])
def test_a_change_in_the_meantime_is_a_page_that_says_nothing_changed(
        chromium: Any, branded: Any, sandbox: Any, screenshots: Path, language: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Another window (or the platform) moved the connection on between our read and our write:
    the table refuses the transition, and the customer reads what happened, in their language."""
    from auth_server import flow
    from store import lifecycle

    def refused(store: Any, token: str, browser_id: str, **_: Any) -> Any:
        conn = store.get_connection(branded.store.list_connections()[-1].connection_id)
        raise lifecycle.TransitionRefused(conn, lifecycle.Event.OPEN_LINK)

    folder = _folder(screenshots)
    tenant = sandbox.tenants()[0]
    create_invite(branded.store, branded.settings, tenant["name"], "admin@example.test",
                  language=language)
    html = read_eml(branded.outbox()[-1]).get_body(("html",)).get_content()
    link = re.search(r'<a href="([^"]+)"', html).group(1)
    monkeypatch.setattr(flow, "open_link", refused)
    for width in WIDTHS:
        context = chromium.new_context(viewport={"width": width, "height": 860})
        page = context.new_page()
        try:
            response = page.goto(link)
            assert response is not None
            assert response.status == 409
            _look(page, folder, f"{language}-{width}-changed-in-the-meantime", language)
            text = page.locator("main").inner_text()
            assert ("This changed in the meantime" if language == "en"
                    else "تغيّر هذا في الأثناء") in text
        finally:
            context.close()
