"""Safety of the auth server: headers, escaping, CSRF, state, input limits, logs, cookies."""

from __future__ import annotations

import logging
import socket
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from auth_server.errors import InvalidInput
from auth_server.invites import create_invite
from auth_server.settings import AuthServerSettings, load_settings
from sandbox.handle import SandboxHandle
from store import open_store, utcnow
from tests.auth_server.conftest import start_auth, stop_auth
from tests.auth_server.helpers import RunningAuth

SCRIPT = "<script>alert(1)</script>"


def test_pages_carry_security_headers(auth: RunningAuth) -> None:
    _, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    customer = auth.customer()
    page = customer.open(link)
    headers = page.headers
    csp = headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "default-src 'none'" in csp
    assert "script-src" not in csp  # no scripts at all (default-src 'none' covers them)
    assert auth.sandbox.url in csp  # the form's redirect to Xero's authorize page is allowed
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["cache-control"] == "no-store"
    assert headers["server"].startswith("xero-elt-auth")
    assert "Python" not in headers["server"]
    cookie = customer.http.cookies.jar
    assert any(c.name == "xelt_b" for c in cookie)
    first = auth.http().get(link)
    assert "HttpOnly" in first.headers["set-cookie"]
    assert "SameSite=Lax" in first.headers["set-cookie"]
    assert "Secure" not in first.headers["set-cookie"]


def test_the_invite_token_leaves_the_address_bar_at_once(auth: RunningAuth) -> None:
    _, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    response = auth.http().get(link)
    assert response.status_code == 303
    assert response.headers["location"] == "/connect"


def test_company_and_organisation_names_are_escaped(auth: RunningAuth, org: dict[str, Any]) -> None:
    conn, link = create_invite(auth.store, auth.settings, SCRIPT, org["admin"]["email"])
    customer = auth.customer()
    page = customer.open(link)
    assert SCRIPT not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text

    # An organisation called <script> at Xero: what /connections returned sits in the store.
    customer.choose_xero()
    customer.callback(customer.consent(customer.next(), org["admin"],
                                       tenant_ids=[org["tenantId"]]))
    pending_key = f"pending:{conn.connection_id}"
    pending = auth.store.get_flow(pending_key)
    pending["organisations"][0]["name"] = SCRIPT
    auth.store.put_flow(pending_key, pending, expires_at=utcnow() + timedelta(hours=1))
    page = customer.get("/connect/confirm")
    assert SCRIPT not in page.text
    assert "&lt;script&gt;" in page.text
    customer.confirm()
    page = customer.get("/connect/done")
    assert SCRIPT not in page.text
    assert "&lt;script&gt;" in page.text
    assert auth.connection(conn.connection_id).organisation_name == SCRIPT
    admin_page = auth.admin().get("/admin")
    assert SCRIPT not in admin_page.text
    assert "&lt;script&gt;" in admin_page.text


def test_tampered_or_unknown_invite_tokens_change_nothing(auth: RunningAuth) -> None:
    conn, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    token = link.rsplit("/", 1)[1]
    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    for bad in (tampered, "x", "%00" * 10, token + "x", "..%2Fadmin", "A" * 300):
        page = auth.customer().open(f"{auth.url}/invite/{bad}")
        assert page.status_code == 404, bad
    assert auth.connection(conn.connection_id).status == "invited"
    assert auth.connection(conn.connection_id).link_opened_at is None


def test_forms_need_their_csrf_token(auth: RunningAuth) -> None:
    _, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    customer = auth.customer()
    customer.open(link)
    for token in ("", "0" * 64, "abc"):
        page = customer.post("/connect/software", {"software": "xero", "csrf_token": token})
        assert page.status_code == 403
    page = customer.http.post("/connect/authorize", content=b"",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert page.status_code == 403
    # A token from another browser does not work either.
    other = auth.customer()
    other.open(link)
    foreign = other.page
    customer.get("/connect")
    from tests.auth_server.helpers import csrf_of

    page = customer.post("/connect/authorize", {"csrf_token": csrf_of(foreign)})
    assert page.status_code == 403


def test_garbage_form_input_gets_a_clear_page(auth: RunningAuth) -> None:
    _, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    customer = auth.customer()
    page = customer.open(link)
    from tests.auth_server.helpers import csrf_of

    csrf = csrf_of(page)
    http = customer.http
    bad_bodies = [
        (b"software=xero&software=xero&csrf_token=" + csrf.encode(), "more than once"),
        (b"software=\xff&csrf_token=" + csrf.encode(), "UTF-8"),
        (b"evil=1&software=xero&csrf_token=" + csrf.encode(), "does not accept"),
    ]
    for body, words in bad_bodies:
        page = http.post("/connect/software", content=body,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert page.status_code == 400, body
        assert words in page.text
    page = http.post("/connect/software", content=b'{"software": "xero"}',
                     headers={"Content-Type": "application/json"})
    assert page.status_code == 400
    page = customer.post("/connect/software", {"software": "quickbooks"}, csrf=csrf)
    assert page.status_code == 400
    assert "Only Xero" in page.text


def test_oversized_requests_are_refused(auth: RunningAuth) -> None:
    with auth.http() as http:
        page = http.post("/connect/software", content=b"a=" + b"x" * 20000,
                         headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert page.status_code == 413
        page = http.get("/connect?" + "a" * 5000)
        assert page.status_code == 414
    # A body announced as huge is refused before it is read.
    host, port = auth.server.server_address[:2]
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"POST /admin/login HTTP/1.1\r\nHost: x\r\nContent-Length: 999999999\r\n"
                     b"Content-Type: application/x-www-form-urlencoded\r\n\r\n")
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
    with auth.http() as http:
        chunked = http.post("/admin/login", content=iter([b"token=x"]),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert chunked.status_code == 411


def test_unknown_paths_and_methods(auth: RunningAuth) -> None:
    with auth.http() as http:
        assert http.get("/nope").status_code == 404
        response = http.delete("/connect")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET"
        assert http.request("PUT", "/admin").status_code == 405
        assert "default-src 'none'" in http.get("/nope").headers["content-security-policy"]
        assert http.head("/").status_code == 200


def test_callback_with_replayed_forged_or_foreign_state_changes_nothing(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()
    customer.open(link)
    customer.choose_xero()
    outcome = customer.consent(customer.next(), org["admin"], tenant_ids=[org["tenantId"]])
    auth.sandbox.clear_requests()

    # Another browser cannot use this state (and does not spend it).
    page = auth.customer().callback(outcome)
    assert page.status_code == 400
    assert "same browser" in page.text
    # A forged state, or none, is refused before anything is exchanged.
    forged = outcome.location.replace(outcome.params["state"], "A" * 43)
    assert customer.callback(forged).status_code == 400
    assert customer.callback(auth.url + "/callback?code=abc").status_code == 400
    assert customer.callback(auth.url + "/callback?state=%FF%00&code=x").status_code == 400
    assert customer.callback(auth.url + "/callback").status_code == 400
    assert auth.sandbox.requests(path="/connect/token") == []
    assert auth.connection(conn.connection_id).status == "link_opened"

    assert customer.callback(outcome).status_code == 303  # the real one, once
    replay = customer.callback(outcome)
    assert replay.status_code == 400
    assert "already used" in replay.text
    assert len(auth.sandbox.requests(path="/connect/token")) == 1
    assert len(auth.store.list_grants()) == 1


def test_a_code_for_another_client_is_not_accepted(
    auth: RunningAuth, org: dict[str, Any], sandbox: SandboxHandle
) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()
    customer.open(link)
    customer.choose_xero()
    ours = customer.consent(customer.next(), org["admin"], tenant_ids=[org["tenantId"]])

    # An attacker's app gets a code for the same redirect URI and swaps it in.
    other_app = sandbox.create_app([auth.settings.redirect_uri], name="Evil")
    from urllib.parse import urlencode

    evil_authorize = sandbox.authorize_url + "?" + urlencode({
        "response_type": "code", "client_id": other_app["client_id"],
        "redirect_uri": auth.settings.redirect_uri, "scope": "openid offline_access",
        "state": "s",
    })
    evil = auth.customer().consent(evil_authorize, org["admin"], tenant_ids=[org["tenantId"]])
    swapped = ours.location.replace(ours.params["code"], evil.params["code"])
    page = customer.callback(swapped)
    assert page.status_code == 502
    assert auth.store.list_grants() == []
    record = auth.connection(conn.connection_id)
    assert record.tenant_id is None
    assert record.status != "connected"


def test_nothing_secret_in_logs(
    auth: RunningAuth, org: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    _, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()
    customer.to_confirm(link, org["admin"], tenant_ids=[org["tenantId"]])
    customer.confirm()
    # Our own loggers (the test's httpx client logs its own URLs, which is not the server's doing).
    text = "\n".join(r.getMessage() for r in caplog.records
                     if r.name.startswith(("auth_server", "connector")))
    assert "GET /invite/… 303" in text
    assert "GET /callback 303" in text
    grant = auth.store.list_grants()[0]
    secrets = [link.rsplit("/", 1)[1], grant.access_token, grant.refresh_token,
               customer.http.cookies["xelt_b"], auth.app["client_secret"]]
    for secret in secrets:
        assert secret not in text
    assert "code=" not in text
    assert "state=" not in text


def test_https_public_url_makes_cookies_secure_and_honours_forwarded_proto(
    sandbox: SandboxHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XERO_ELT_HOME", str(tmp_path))
    running = start_auth(sandbox, tmp_path, public_url="https://connect.example.test")
    try:
        assert running.settings.redirect_uri == "https://connect.example.test/callback"
        _, link = create_invite(running.store, running.settings, "Acme", "a@acme.test")
        assert link.startswith("https://connect.example.test/invite/")
        path = link.removeprefix("https://connect.example.test")
        with running.http(headers={"X-Forwarded-Proto": "https"}) as http:
            first = http.get(path)
            assert first.status_code == 303
            assert "; Secure" in first.headers["set-cookie"]
            assert first.headers["strict-transport-security"].startswith("max-age=")
        with running.http(headers={"X-Forwarded-Proto": "http"}) as http:
            plain = http.get("/connect")
            assert plain.status_code == 308
            assert plain.headers["location"] == "https://connect.example.test/connect"
    finally:
        stop_auth(running)


def test_forwarded_proto_https_alone_makes_cookies_secure(auth: RunningAuth) -> None:
    _, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    with auth.http(headers={"X-Forwarded-Proto": "https"}) as http:
        assert "; Secure" in http.get(link).headers["set-cookie"]


def test_binds_loopback_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AUTH_SERVER__HOST", raising=False)
    assert AuthServerSettings().host == "127.0.0.1"
    assert load_settings().host == "127.0.0.1"
    monkeypatch.setenv("AUTH_SERVER__INVITE_TTL_DAYS", "3")
    monkeypatch.setenv("AUTH_SERVER__ADMIN_TOKEN", "s3cret-token-long-enough-for-the-minimum")
    settings = load_settings(port=0)
    assert settings.invite_ttl_days == 3
    assert settings.port == 0
    assert "s3cret-token-long-enough-for-the-minimum" not in repr(settings)


@pytest.mark.parametrize("email", [
    "a@b.test\r\nBcc: victim@example.test", "no-at-sign", "a@b", "a b@c.test", "<a@b.test>",
    "a@b.test\nx@c.test", "x" * 300 + "@b.test",
])
def test_email_addresses_that_could_inject_headers_are_refused(
    auth: RunningAuth, email: str
) -> None:
    with pytest.raises(InvalidInput):
        create_invite(auth.store, auth.settings, "Acme", email)
    assert auth.store.list_connections() == []
    assert auth.outbox() == []


@pytest.mark.parametrize("company", ["", "   ", "x" * 201, "Acme\r\nLtd", "Acme\x00"])
def test_bad_company_names_are_refused(auth: RunningAuth, company: str) -> None:
    with pytest.raises(InvalidInput):
        create_invite(auth.store, auth.settings, company, "a@acme.test")
    assert auth.store.list_connections() == []


def test_csrf_key_survives_a_restart_but_differs_per_store(tmp_path: Path) -> None:
    from auth_server.web import csrf_signer

    first = csrf_signer(open_store(tmp_path / "a")).token("browser", "connect")
    assert csrf_signer(open_store(tmp_path / "a")).token("browser", "connect") == first
    assert csrf_signer(open_store(tmp_path / "b")).token("browser", "connect") != first
