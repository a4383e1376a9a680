"""The whole flow over real HTTP: invite email → Xero → Next → sign in → Allow → Confirm → done."""

from __future__ import annotations

import re
from typing import Any

from auth_server.invites import create_invite
from auth_server.oauth import code_challenge
from connector import identity
from tests.auth_server.conftest import PRODUCT
from tests.auth_server.helpers import RunningAuth, read_eml, wait_for


def test_invite_email_has_one_link_in_text_and_html(auth: RunningAuth) -> None:
    conn, link = create_invite(auth.store, auth.settings, "Acme Ltd", "admin@acme.test")

    [path] = auth.outbox()
    assert path.stat().st_mode & 0o777 == 0o600
    msg = read_eml(path)
    assert msg["Subject"] == f"[ACTION REQUIRED] Connect your accounting platform to {PRODUCT}"
    assert msg["To"] == "admin@acme.test"
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert text.count(link) == 1
    assert re.findall(r'<a href="([^"]+)"', html) == [link]
    assert link.startswith(auth.url + "/invite/")
    assert conn.status == "invited"
    # Only the hash of the token is stored.
    token = link.rsplit("/", 1)[1]
    assert token not in (auth.store.path.read_bytes().decode("latin-1"))
    assert conn.invite_token_hash
    assert token not in conn.invite_token_hash


def test_whole_flow_connects_the_organisation_and_starts_the_first_sync(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()

    page = customer.open(link)
    assert page.status_code == 200
    assert "Share your financial information" in page.text
    assert auth.connection(conn.connection_id).status == "link_opened"

    page = customer.choose_xero()
    assert "Review access request" in page.text
    for words in ("Suppliers", "Chart of accounts", "Tax rates", "Tracking categories",
                  "read-only", "Connected apps"):
        assert words in page.text

    authorize_url = customer.next()
    assert authorize_url.startswith(auth.sandbox.authorize_url + "?")
    params = dict(re.findall(r"([a-z_]+)=([^&]+)", authorize_url.split("?", 1)[1]))
    assert params["code_challenge_method"] == "S256"
    assert params["response_type"] == "code"
    assert "offline_access" in params["scope"].replace("+", " ").replace("%20", " ")
    assert len(params["state"]) >= 43

    outcome = customer.consent(authorize_url, org["admin"], tenant_ids=[org["tenantId"]])
    page = customer.callback(outcome)
    assert page.status_code == 303
    assert page.headers["location"] == "/connect/confirm"
    page = customer.get("/connect/confirm")
    assert "Confirm your company" in page.text
    assert org["name"] in page.text

    page = customer.confirm()
    assert page.status_code == 303
    page = customer.get("/connect/done")
    assert page.status_code == 200
    assert "Connection Successful" in page.text
    assert "Accounting – 1 connected" in page.text

    wait_for(lambda: auth.connection(conn.connection_id).sync_state == "synced")
    done = auth.connection(conn.connection_id)
    assert done.status == "connected"
    assert done.tenant_id == org["tenantId"]
    assert done.organisation_name == org["name"]
    assert done.last_sync_rows == 123
    assert [c.connection_id for c in auth.synced] == [conn.connection_id]
    # The store holds a working grant: it reads the organisation at Xero.
    grant = auth.store.get_grant(done.grant_id)
    tenants = identity.list_connections(auth.xero, grant.access_token)
    assert org["tenantId"] in [t["tenantId"] for t in tenants]
    page = customer.get("/connect/done")
    assert "copied" in page.text
    assert 'http-equiv="refresh"' not in page.text


def test_pkce_challenge_is_s256_of_the_verifier() -> None:
    # RFC 7636 appendix B example.
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
