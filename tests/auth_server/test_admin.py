"""The admin page: 401 without the token, sign-in, invites, resend, disconnect, over HTTP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from auth_server.invites import create_invite
from auth_server.throttle import FREE_FAILURES
from sandbox.handle import SandboxHandle
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import ADMIN_TOKEN, RunningAuth, csrf_of

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def signed_in(auth: RunningAuth) -> tuple[httpx.Client, httpx.Response]:
    """A browser signed in at /admin/login; returns it and the connections page."""
    browser = auth.http()
    page = browser.get("/admin/login")
    assert page.status_code == 200
    response = browser.post("/admin/login", data={"token": ADMIN_TOKEN,
                                                  "csrf_token": csrf_of(page)})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/admin"
    cookie = response.headers["set-cookie"]
    assert "xelt_admin=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Strict" in cookie
    assert "Path=/admin" in cookie
    page = browser.get("/admin")
    assert page.status_code == 200
    return browser, page


def test_without_the_token_nothing_is_listed(auth: RunningAuth) -> None:
    conn, _ = create_invite(auth.store, auth.settings, "Secret Client Ltd", "cfo@secret.test")
    with auth.http() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic eA=="},
                        {"Cookie": "xelt_admin=" + "A" * 43}):
            for path in ("/admin", "/admin/api/connections"):
                response = http.get(path, headers=headers)
                assert response.status_code == 401, (path, headers)
                assert "Secret Client" not in response.text
                assert conn.connection_id not in response.text
                assert response.headers["www-authenticate"].startswith("Bearer")
        response = http.post("/admin/invites", data={"company": "X", "email": "x@x.test"})
        assert response.status_code == 401
    assert len(auth.store.list_connections()) == 1


def test_bearer_token_lists_connections_with_status(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    _, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    auth.customer().connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    create_invite(auth.store, auth.settings, "Pending Co", "p@pending.test")
    with auth.admin() as admin:
        page = admin.get("/admin")
        assert page.status_code == 200
        assert "Kauri Bay Trading Ltd" in page.text
        assert "Pending Co" in page.text
        assert ">connected<" in page.text
        assert ">invited<" in page.text
        assert page.headers["cache-control"] == "no-store"
        rows = admin.get("/admin/api/connections").json()
        assert {r["status"] for r in rows} == {"connected", "invited"}


def test_sign_in_create_resend_disconnect_sign_out(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    browser, page = signed_in(auth)
    assert "No connections yet" in page.text

    # Create: the form needs its CSRF token.
    response = browser.post("/admin/invites", data={"company": "Acme", "email": "a@acme.test"})
    assert response.status_code == 403
    assert auth.store.list_connections() == []
    response = browser.post("/admin/invites", data={
        "company": org["name"], "email": org["admin"]["email"], "csrf_token": csrf_of(page)})
    assert response.status_code == 303
    page = browser.get("/admin")
    link = re.search(r"<code>(http[^<]+/invite/[^<]+)</code>", page.text).group(1)
    [conn] = auth.store.list_connections()
    assert f"Invite {conn.connection_id} sent" in page.text
    assert len(auth.outbox()) == 1
    assert "<code>" not in browser.get("/admin").text  # the link is shown once

    # Bad input: a clear message, nothing created.
    page = browser.get("/admin")
    response = browser.post("/admin/invites", data={
        "company": "Evil", "email": "x@y.test\r\nBcc: z@z.test", "csrf_token": csrf_of(page)})
    assert response.status_code == 400
    assert "does not look like an email address" in response.text
    assert len(auth.store.list_connections()) == 1

    # Resend: a new link, the old one stops working.
    page = browser.get("/admin")
    response = browser.post(f"/admin/connections/{conn.connection_id}/resend",
                            data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303
    page = browser.get("/admin")
    new_link = re.search(r"<code>(http[^<]+/invite/[^<]+)</code>", page.text).group(1)
    assert new_link != link
    assert auth.customer().open(link).status_code == 404
    auth.customer().connect(new_link, org["admin"], tenant_ids=[org["tenantId"]])

    # Disconnect: a confirmation page, then at Xero and here.
    page = browser.get(f"/admin/connections/{conn.connection_id}/disconnect")
    assert page.status_code == 200
    assert "Disconnect" in page.text
    response = browser.post(f"/admin/connections/{conn.connection_id}/disconnect",
                            data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303
    assert auth.connection(conn.connection_id).status == "disconnected"
    assert "Disconnected" in browser.get("/admin").text
    assert not [c for c in auth.sandbox.connections()
                if c.get("client_id") == auth.app["client_id"]]

    # Unknown ids: a clear 404.
    page = browser.get("/admin")
    response = browser.post("/admin/connections/con_000000000000/resend",
                            data={"csrf_token": csrf_of(page)})
    assert response.status_code == 404

    # Sign out: the session is gone.
    page = browser.get("/admin")
    response = browser.post("/admin/logout", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303
    assert browser.get("/admin").status_code == 401


def test_bearer_clients_can_post_without_csrf(auth: RunningAuth) -> None:
    with auth.admin() as admin:
        response = admin.post("/admin/invites", data={"company": "Acme", "email": "a@acme.test"})
    assert response.status_code == 200
    assert "/invite/" in response.text
    assert len(auth.store.list_connections()) == 1


def test_wrong_tokens_are_refused_and_rate_limited(auth: RunningAuth) -> None:
    with auth.http() as browser:
        page = browser.get("/admin/login")
        csrf = csrf_of(page)
        for _ in range(FREE_FAILURES):
            response = browser.post("/admin/login", data={"token": "guess", "csrf_token": csrf})
            assert response.status_code == 401
            assert "xelt_admin" not in response.headers.get("set-cookie", "")
        response = browser.post("/admin/login", data={"token": "guess", "csrf_token": csrf})
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) >= 1
        # The right token still gets through (the back-off is per client, never a lock-out).
        response = browser.post("/admin/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf})
        assert response.status_code == 303
        # A sign-in form without its CSRF token is refused too.
        response = browser.post("/admin/login", data={"token": ADMIN_TOKEN})
        assert response.status_code == 403


def test_admin_page_is_off_without_a_token(sandbox: SandboxHandle, tmp_path: Path) -> None:
    running = start_auth(sandbox, tmp_path, admin_token=None)
    try:
        with running.http(headers={"Authorization": "Bearer anything"}) as http:
            response = http.get("/admin")
            assert response.status_code == 401
            assert "switched off" in response.text
            assert http.get("/admin/api/connections").status_code == 401
    finally:
        stop_auth(running)


def test_the_page_shows_each_organisations_egress_and_warns_near_the_allowance(
    auth: RunningAuth, org: dict[str, Any], monkeypatch: Any,
) -> None:
    from datetime import UTC, datetime

    _, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    auth.customer().connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    day = datetime.now(UTC).date().isoformat()
    # What runs count (connector.usage): 2.5 MB received today from this organisation.
    auth.store.count_api_calls_many({(org["tenantId"], day): 4},
                                    {(org["tenantId"], day): 2_500_000})
    with auth.admin() as admin:
        page = admin.get("/admin").text
        assert "from Xero: 2.5 MB in 30 days" in page
        assert "Xero egress" not in page  # no allowance set: nothing to warn about
        monkeypatch.setenv("PIPELINES__EGRESS_ALLOWANCE_GB", "0.001")  # 1 MB
        page = admin.get("/admin").text
        assert re.search(r'class="flash warn"[^>]*>Xero egress: [0-9.]+ MB projected this '
                         r"month, [0-9,]+% of the allowance of 1\.0 MB", page)
