"""The browser leg over plain HTTP: authorize, sign in, consent (allow, cancel, non-admin)."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx

from sandbox.handle import DEFAULT_SCOPES, SandboxHandle, consent_via_forms
from tests.sandbox.conftest import basic, claims

CALLBACK = "http://127.0.0.1:8765/callback"


def authorize_params(app: dict, **extra: str) -> dict[str, str]:
    return {
        "response_type": "code",
        "client_id": app["client_id"],
        "redirect_uri": CALLBACK,
        "scope": DEFAULT_SCOPES,
        "state": "st-123",
        **extra,
    }


def test_allow_redirects_with_code_state_scope_and_session_state(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client, http: httpx.Client
) -> None:
    admin = sandbox.users()[0]
    assert admin["role"] == "admin"
    outcome = consent_via_forms(
        sandbox, browser, authorize_params(xero_app), admin["email"], admin["password"]
    )

    assert outcome.location.startswith(CALLBACK + "?")
    params = outcome.params
    assert params["state"] == "st-123"
    assert params["scope"] == DEFAULT_SCOPES
    assert params["session_state"]
    assert "%20" in outcome.location  # scope encoded as Xero does, not with '+'

    token = http.post(
        "/connect/token",
        data={"grant_type": "authorization_code", "code": params["code"], "redirect_uri": CALLBACK},
        headers=basic(xero_app["client_id"], xero_app["client_secret"]),
    )
    assert token.status_code == 200, token.text
    assert token.headers["cache-control"].startswith("no-store")
    body = token.json()
    assert set(body) == {
        "id_token",
        "access_token",
        "expires_in",
        "token_type",
        "refresh_token",
        "scope",
    }
    assert body["expires_in"] == 1800
    assert body["token_type"] == "Bearer"
    assert body["scope"] == DEFAULT_SCOPES

    access = claims(body["access_token"])
    assert access["scope"] == DEFAULT_SCOPES.split()
    assert access["exp"] - access["nbf"] == 1800
    assert access["client_id"] == xero_app["client_id"]
    assert access["xero_userid"] == admin["xero_userid"]
    assert re.fullmatch(r"[0-9a-f]{32}", access["sub"])
    id_claims = claims(body["id_token"])
    assert id_claims["aud"] == xero_app["client_id"]
    assert id_claims["email"] == admin["email"]
    assert "authentication_event_id" not in id_claims

    connections = http.get(
        "/connections", headers={"Authorization": f"Bearer {body['access_token']}"}
    )
    assert connections.status_code == 200
    rows = connections.json()
    assert [r["tenantId"] for r in rows] == [admin["tenant_ids"][0]]
    assert rows[0]["authEventId"] == access["authentication_event_id"]
    assert rows[0]["tenantType"] == "ORGANISATION"
    assert rows[0]["tenantName"] == sandbox.tenants()[0]["name"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}", rows[0]["createdDateUtc"])
    assert "x-appminlimit-remaining" in connections.headers
    assert "x-minlimit-remaining" not in connections.headers


def test_sign_in_page_has_email_password_and_log_in(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client
) -> None:
    page = browser.get("/identity/connect/authorize", params=authorize_params(xero_app))
    assert page.status_code == 200
    assert 'type="email"' in page.text
    assert 'type="password"' in page.text
    assert ">Log in</button>" in page.text


def test_wrong_password_shows_the_form_again(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client
) -> None:
    page = browser.get("/identity/connect/authorize", params=authorize_params(xero_app))
    rid = re.search(r'name="rid" value="([^"]+)"', page.text).group(1)
    admin = sandbox.users()[0]
    again = browser.post(
        "/identity/login", data={"rid": rid, "email": admin["email"], "password": "nope"}
    )
    assert again.status_code == 200
    assert "incorrect" in again.text
    assert "set-cookie" not in again.headers


def test_consent_page_lists_scopes_in_words_and_organisations_first_selected(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client
) -> None:
    adviser = sandbox.admin()  # can reach both organisations
    page = browser.get("/identity/connect/authorize", params=authorize_params(xero_app))
    rid = re.search(r'name="rid" value="([^"]+)"', page.text).group(1)
    to_consent = browser.post(
        "/identity/login",
        data={"rid": rid, "email": adviser["email"], "password": adviser["password"]},
    )
    consent = browser.get(to_consent.headers["location"])
    assert "xero-elt tests" in consent.text
    assert "View your contacts" in consent.text
    names = [t["name"] for t in sandbox.tenants()]
    radios = re.findall(
        r'<input type="radio" name="tenant_id" value="([^"]+)"( checked)?>', consent.text
    )
    assert [checked for _, checked in radios] == [" checked", ""]
    assert all(name.replace("&", "&amp;") in consent.text for name in names)
    assert ">Allow access</button>" in consent.text
    assert ">Cancel</button>" in consent.text


def test_session_cookie_skips_sign_in_the_second_time(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client
) -> None:
    admin = sandbox.users()[0]
    consent_via_forms(
        sandbox, browser, authorize_params(xero_app), admin["email"], admin["password"]
    )
    again = browser.get("/identity/connect/authorize", params=authorize_params(xero_app))
    assert again.status_code == 302
    assert again.headers["location"].startswith("/identity/consent?rid=")


def test_cancel_redirects_with_access_denied_only(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client
) -> None:
    admin = sandbox.users()[0]
    outcome = consent_via_forms(
        sandbox,
        browser,
        authorize_params(xero_app),
        admin["email"],
        admin["password"],
        action="cancel",
    )
    assert outcome.params == {"error": "access_denied", "state": "st-123"}
    assert sandbox.connections() == []


def test_standard_user_sees_no_permission_and_app_gets_not_admin(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client
) -> None:
    staff = sandbox.standard_user()
    outcome = consent_via_forms(
        sandbox, browser, authorize_params(xero_app), staff["email"], staff["password"]
    )
    assert "You don't have permission" in outcome.pages[-2].text
    assert outcome.params == {
        "error": "access_denied",
        "error_description": "not_admin",
        "state": "st-123",
    }
    assert sandbox.connections() == []


def test_standard_user_cannot_force_a_consent_post(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client
) -> None:
    staff = sandbox.standard_user()
    page = browser.get("/identity/connect/authorize", params=authorize_params(xero_app))
    rid = re.search(r'name="rid" value="([^"]+)"', page.text).group(1)
    browser.post(
        "/identity/login", data={"rid": rid, "email": staff["email"], "password": staff["password"]}
    )
    forced = browser.post(
        "/identity/consent",
        data={"rid": rid, "action": "allow", "tenant_id": staff["tenant_ids"][0]},
    )
    assert forced.status_code == 302
    assert "error_description=not_admin" in forced.headers["location"]
    assert sandbox.connections() == []


def test_several_organisations_in_one_consent_share_an_auth_event(
    sandbox: SandboxHandle,
    xero_app: dict,
    browser: httpx.Client,
    http: httpx.Client,
    tenant_ids: list[str],
) -> None:
    sandbox.settings(reconsent_auth_event="new")  # keep mode: test_identity_reconsent.py
    adviser = sandbox.admin()
    outcome = consent_via_forms(
        sandbox,
        browser,
        authorize_params(xero_app),
        adviser["email"],
        adviser["password"],
        tenant_ids=tenant_ids,
    )
    token = http.post(
        "/connect/token",
        data={
            "grant_type": "authorization_code",
            "code": outcome.params["code"],
            "redirect_uri": CALLBACK,
            "client_id": xero_app["client_id"],
            "client_secret": xero_app["client_secret"],
        },
    ).json()
    event = claims(token["access_token"])["authentication_event_id"]
    auth = {"Authorization": f"Bearer {token['access_token']}"}
    rows = http.get("/connections", headers=auth).json()
    assert sorted(r["tenantId"] for r in rows) == sorted(tenant_ids)
    assert {r["authEventId"] for r in rows} == {event}

    # Re-consent to the second organisation only: its connection is updated, not duplicated.
    second = consent_via_forms(
        sandbox,
        browser,
        authorize_params(xero_app),
        adviser["email"],
        adviser["password"],
        tenant_ids=tenant_ids[1:],
    )
    token2 = http.post(
        "/connect/token",
        data={
            "grant_type": "authorization_code",
            "code": second.params["code"],
            "redirect_uri": CALLBACK,
        },
        headers=basic(xero_app["client_id"], xero_app["client_secret"]),
    ).json()
    event2 = claims(token2["access_token"])["authentication_event_id"]
    assert event2 != event
    after = {
        r["tenantId"]: r
        for r in http.get(
            "/connections", headers={"Authorization": f"Bearer {token2['access_token']}"}
        ).json()
    }
    before = {r["tenantId"]: r for r in rows}
    assert len(after) == 2
    assert after[tenant_ids[1]]["id"] == before[tenant_ids[1]]["id"]
    assert after[tenant_ids[1]]["authEventId"] == event2
    assert after[tenant_ids[1]]["createdDateUtc"] == before[tenant_ids[1]]["createdDateUtc"]
    assert after[tenant_ids[1]]["updatedDateUtc"] > before[tenant_ids[1]]["updatedDateUtc"]
    assert after[tenant_ids[0]]["authEventId"] == event

    filtered = http.get(
        "/connections",
        params={"authEventId": event2},
        headers={"Authorization": f"Bearer {token2['access_token']}"},
    ).json()
    assert [r["tenantId"] for r in filtered] == [tenant_ids[1]]


def test_scopes_add_up_across_browser_consents(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client
) -> None:
    admin = sandbox.users()[0]
    first = authorize_params(xero_app, scope="openid accounting.contacts.read")
    consent_via_forms(sandbox, browser, first, admin["email"], admin["password"])
    second = authorize_params(xero_app, scope="offline_access accounting.settings.read")
    outcome = consent_via_forms(sandbox, browser, second, admin["email"], admin["password"])
    assert outcome.params["scope"].split() == [
        "openid",
        "accounting.contacts.read",
        "offline_access",
        "accounting.settings.read",
    ]


def _error_page(response: httpx.Response, text: str) -> None:
    assert response.status_code == 400
    assert "location" not in response.headers
    assert text in response.text


def test_unknown_client_unregistered_redirect_and_unknown_scope_never_redirect(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client
) -> None:
    _error_page(
        browser.get(
            "/identity/connect/authorize", params=authorize_params(xero_app, client_id="NOPE")
        ),
        "unauthorized_client",
    )
    _error_page(
        browser.get(
            "/identity/connect/authorize",
            params=authorize_params(xero_app, redirect_uri="http://127.0.0.1:8765/callback/"),
        ),
        "Invalid redirect_uri",
    )
    _error_page(
        browser.get(
            "/identity/connect/authorize",
            params=authorize_params(xero_app, scope="openid accounting.everything"),
        ),
        "unauthorized_client : Invalid scope for client",
    )


def test_bad_response_type_and_challenge_method_redirect_with_errors(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client
) -> None:
    bad_type = browser.get(
        "/identity/connect/authorize", params=authorize_params(xero_app, response_type="token")
    )
    assert bad_type.status_code == 302
    assert parse_qs(urlsplit(bad_type.headers["location"]).query)["error"] == [
        "unsupported_response_type"
    ]
    plain = browser.get(
        "/identity/connect/authorize",
        params=authorize_params(xero_app, code_challenge="a" * 43, code_challenge_method="plain"),
    )
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]


def test_http_redirect_uris_only_for_loopback(sandbox: SandboxHandle) -> None:
    for uri in (
        "http://localhost:5000/cb",
        "http://127.0.0.1/callback",
        "https://app.example.com/cb",
    ):
        assert sandbox.create_app([uri])["redirect_uris"] == [uri]
    rejected = sandbox.http.post(
        "/_sandbox/apps", json={"name": "x", "redirect_uris": ["http://app.example.com/cb"]}
    )
    assert rejected.status_code == 400
    assert "https" in rejected.json()["error"]


def test_an_authorize_request_left_for_over_an_hour_has_expired(
    sandbox: SandboxHandle, xero_app: dict, browser: httpx.Client
) -> None:
    page = browser.get("/identity/connect/authorize", params=authorize_params(xero_app))
    rid = re.search(r'name="rid" value="([^"]+)"', page.text).group(1)
    sandbox.advance(3601)
    admin = sandbox.users()[0]
    late = browser.post(
        "/identity/login", data={"rid": rid, "email": admin["email"], "password": admin["password"]}
    )
    assert late.status_code == 400
    assert "expired" in late.text
