"""Regression tests for auth-server bugs the hardening suite found."""

from __future__ import annotations

import re

import pytest

from auth_server.invites import create_invite
from tests.auth_server.helpers import RunningAuth

pytestmark = pytest.mark.hardening


def test_bearer_admin_can_resend_with_a_bare_post(auth: RunningAuth) -> None:
    """A script's `curl -X POST -H 'Authorization: Bearer …' …/resend` has no body at all; it
    used to get 400 "Forms must be sent as application/x-www-form-urlencoded"."""
    conn, old_link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    with auth.admin() as admin:
        response = admin.post(f"/admin/connections/{conn.connection_id}/resend")
    assert response.status_code == 200, response.text
    assert "the previous link no longer works" in response.text
    assert auth.store.get_connection(conn.connection_id).invite_token_hash != \
        conn.invite_token_hash
    with auth.http() as browser:
        assert browser.get(old_link).status_code == 404


def test_a_bare_post_from_a_signed_in_browser_still_needs_its_csrf_token(
    auth: RunningAuth,
) -> None:
    conn, _ = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    with auth.http() as browser:
        page = browser.get("/admin/login")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        signed_in = browser.post("/admin/login", data={"token": auth.settings.admin_token,
                                                       "csrf_token": csrf})
        assert signed_in.status_code == 303
        response = browser.post(f"/admin/connections/{conn.connection_id}/resend")
    assert response.status_code == 403
    assert auth.store.get_connection(conn.connection_id).invite_token_hash == \
        conn.invite_token_hash
