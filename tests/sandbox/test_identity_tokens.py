"""The token service: code exchange rules, PKCE, client auth, rotation with grace, idle expiry,
revocation, userinfo and the signed JWTs."""

from __future__ import annotations

import base64
import hashlib
import secrets
from datetime import UTC, datetime

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from sandbox.handle import DEFAULT_SCOPES, SandboxHandle, XeroGrant, consent_via_forms
from tests.sandbox.conftest import api_get, basic, claims, refresh

CALLBACK = "http://127.0.0.1:8765/callback"


def get_code(sandbox: SandboxHandle, app: dict, **extra: str) -> str:
    """Consent as the first admin in a fresh browser and return the code."""
    admin = sandbox.users()[0]
    params = {
        "response_type": "code",
        "client_id": app["client_id"],
        "redirect_uri": app["redirect_uris"][0],
        "scope": DEFAULT_SCOPES,
        "state": "s",
        **extra,
    }
    with httpx.Client(timeout=30) as browser:
        outcome = consent_via_forms(sandbox, browser, params, admin["email"], admin["password"])
    return outcome.params["code"]


def exchange(
    http: httpx.Client, app: dict, code: str, redirect_uri: str = CALLBACK, **extra: str
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, **extra}
    return http.post(
        "/connect/token", data=data, headers=basic(app["client_id"], app["client_secret"])
    )


def assert_error(response: httpx.Response, error: str) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {"error": error}


# --- codes ----------------------------------------------------------------------------------


def test_code_is_single_use(sandbox: SandboxHandle, xero_app: dict, http: httpx.Client) -> None:
    code = get_code(sandbox, xero_app)
    assert exchange(http, xero_app, code).status_code == 200
    assert_error(exchange(http, xero_app, code), "invalid_grant")


def test_code_expires_after_five_minutes(
    sandbox: SandboxHandle, xero_app: dict, http: httpx.Client
) -> None:
    fresh = get_code(sandbox, xero_app)
    stale = get_code(sandbox, xero_app)
    sandbox.advance(290)
    assert exchange(http, xero_app, fresh).status_code == 200
    sandbox.advance(20)  # 310 s after issue
    assert_error(exchange(http, xero_app, stale), "invalid_grant")


def test_code_is_case_sensitive(sandbox: SandboxHandle, xero_app: dict, http: httpx.Client) -> None:
    code = get_code(sandbox, xero_app)
    assert_error(exchange(http, xero_app, code.swapcase()), "invalid_grant")


def test_wrong_redirect_uri_at_exchange_is_invalid_grant(
    sandbox: SandboxHandle, xero_app: dict, http: httpx.Client
) -> None:
    code = get_code(sandbox, xero_app)
    assert_error(
        exchange(http, xero_app, code, redirect_uri="http://127.0.0.1:8765/other"), "invalid_grant"
    )


def test_code_of_another_client_is_invalid_grant(
    sandbox: SandboxHandle, xero_app: dict, http: httpx.Client
) -> None:
    other = sandbox.create_app([CALLBACK], name="other")
    code = get_code(sandbox, xero_app)
    assert_error(exchange(http, other, code), "invalid_grant")


def test_missing_parameters_and_bad_grant_type(
    sandbox: SandboxHandle, xero_app: dict, http: httpx.Client
) -> None:
    auth = basic(xero_app["client_id"], xero_app["client_secret"])
    assert_error(
        http.post(
            "/connect/token", data={"grant_type": "authorization_code", "code": "x"}, headers=auth
        ),
        "invalid_request",
    )
    assert_error(
        http.post("/connect/token", data={"grant_type": "refresh_token"}, headers=auth),
        "invalid_request",
    )
    assert_error(
        http.post("/connect/token", data={"grant_type": "password"}, headers=auth),
        "unsupported_grant_type",
    )
    assert_error(
        http.post("/connect/token", data={"code": "x"}, headers=auth), "unsupported_grant_type"
    )


# --- client authentication ------------------------------------------------------------------


def test_client_auth_by_basic_header_or_form_body(
    sandbox: SandboxHandle, xero_app: dict, http: httpx.Client
) -> None:
    assert exchange(http, xero_app, get_code(sandbox, xero_app)).status_code == 200
    by_body = http.post(
        "/connect/token",
        data={
            "grant_type": "authorization_code",
            "code": get_code(sandbox, xero_app),
            "redirect_uri": CALLBACK,
            "client_id": xero_app["client_id"],
            "client_secret": xero_app["client_secret"],
        },
    )
    assert by_body.status_code == 200, by_body.text


def test_bad_client_credentials_are_invalid_client(
    sandbox: SandboxHandle, xero_app: dict, http: httpx.Client
) -> None:
    code = get_code(sandbox, xero_app)
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}
    assert_error(
        http.post("/connect/token", data=data, headers=basic(xero_app["client_id"], "wrong")),
        "invalid_client",
    )
    assert_error(http.post("/connect/token", data=data), "invalid_client")
    assert_error(
        http.post("/connect/token", data={**data, "client_id": "UNKNOWN", "client_secret": "x"}),
        "invalid_client",
    )
    # The code was not spent by failed client authentication.
    assert exchange(http, xero_app, code).status_code == 200


# --- PKCE -----------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )
    return verifier, challenge


def test_pkce_app_exchanges_with_verifier_and_no_secret(
    sandbox: SandboxHandle, http: httpx.Client
) -> None:
    app = sandbox.create_app([CALLBACK], name="pkce app", pkce=True)
    assert app["client_secret"] is None
    verifier, challenge = pkce_pair()
    code = get_code(sandbox, app, code_challenge=challenge, code_challenge_method="S256")
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": CALLBACK,
        "client_id": app["client_id"],
    }
    ok = http.post("/connect/token", data={**data, "code_verifier": verifier})
    assert ok.status_code == 200, ok.text
    again = http.post(
        "/connect/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": ok.json()["refresh_token"],
            "client_id": app["client_id"],
        },
    )
    assert again.status_code == 200


def test_pkce_mismatch_or_missing_verifier_is_invalid_grant(
    sandbox: SandboxHandle, xero_app: dict, http: httpx.Client
) -> None:
    verifier, challenge = pkce_pair()
    wrong = get_code(sandbox, xero_app, code_challenge=challenge, code_challenge_method="S256")
    assert_error(exchange(http, xero_app, wrong, code_verifier=verifier + "x"), "invalid_grant")
    missing = get_code(sandbox, xero_app, code_challenge=challenge, code_challenge_method="S256")
    assert_error(exchange(http, xero_app, missing), "invalid_grant")
    right = get_code(sandbox, xero_app, code_challenge=challenge, code_challenge_method="S256")
    assert exchange(http, xero_app, right, code_verifier=verifier).status_code == 200


def test_pkce_app_must_send_a_challenge(sandbox: SandboxHandle, http: httpx.Client) -> None:
    app = sandbox.create_app([CALLBACK], name="pkce app", pkce=True)
    response = http.get(
        "/identity/connect/authorize",
        params={
            "response_type": "code",
            "client_id": app["client_id"],
            "redirect_uri": CALLBACK,
            "scope": "openid",
        },
    )
    assert response.status_code == 302
    assert "error=invalid_request" in response.headers["location"]


# --- refresh rotation -----------------------------------------------------------------------


def test_refresh_rotates_and_kills_the_old_access_token(
    sandbox: SandboxHandle, xero_app: dict, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    tenant = xero_grant.tenant_ids[0]
    assert api_get(http, xero_grant.access_token, tenant).status_code == 200
    rotated = refresh(http, xero_app, xero_grant.refresh_token)
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["refresh_token"] != xero_grant.refresh_token
    assert body["access_token"] != xero_grant.access_token
    assert "id_token" in body
    assert body["scope"] == xero_grant.scope
    # Same consent event: the new token still names the connections' authEventId.
    assert (
        claims(body["access_token"])["authentication_event_id"]
        == claims(xero_grant.access_token)["authentication_event_id"]
    )
    old = api_get(http, xero_grant.access_token, tenant)
    assert old.status_code == 401
    assert old.json()["Detail"] == "AuthenticationUnsuccessful"
    assert api_get(http, body["access_token"], tenant).status_code == 200


def test_previous_refresh_token_works_29_minutes_after_rotation_not_31(
    sandbox: SandboxHandle, xero_app: dict, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    first = xero_grant.refresh_token
    second = refresh(http, xero_app, first).json()["refresh_token"]
    sandbox.advance(29 * 60)
    replay = refresh(http, xero_app, first)
    assert replay.status_code == 200, replay.text
    third = replay.json()["refresh_token"]
    assert third not in (first, second)
    sandbox.advance(2 * 60)  # 31 minutes after `first` was superseded
    assert_error(refresh(http, xero_app, first), "invalid_grant")
    # `second` was superseded by the replay only 2 minutes ago: still in its grace.
    assert refresh(http, xero_app, second).status_code == 200


def test_refresh_token_dies_after_60_days_unused(
    sandbox: SandboxHandle, xero_app: dict, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.advance(59 * 86400)
    kept_alive = refresh(http, xero_app, xero_grant.refresh_token)
    assert kept_alive.status_code == 200
    sandbox.advance(60 * 86400 + 1)
    assert_error(refresh(http, xero_app, kept_alive.json()["refresh_token"]), "invalid_grant")


def test_refresh_token_of_another_client_is_invalid_grant(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    other = sandbox.create_app([CALLBACK], name="other")
    assert_error(refresh(http, other, xero_grant.refresh_token), "invalid_grant")


def test_no_offline_access_no_refresh_token_no_openid_no_id_token(
    sandbox: SandboxHandle, xero_app: dict
) -> None:
    tokens = sandbox.grant(
        xero_app["client_id"], sandbox.admin()["email"], scopes="accounting.contacts.read"
    )
    assert set(tokens) == {"access_token", "expires_in", "token_type", "scope"}
    assert tokens["scope"] == "accounting.contacts.read"


# --- expiry, revocation ---------------------------------------------------------------------


def test_expired_access_token_says_when(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    sandbox.advance(1801)
    response = api_get(http, xero_grant.access_token, xero_grant.tenant_ids[0])
    assert response.status_code == 401
    exp = datetime.fromtimestamp(claims(xero_grant.access_token)["exp"], tz=UTC)
    body = response.json()
    assert body["Detail"] == f"TokenExpired: token expired at {exp:%m/%d/%Y %H:%M:%S}"
    assert body["Title"] == "Unauthorized"
    assert body["Type"] is None
    assert body["Extensions"] == {}
    connections = http.get(
        "/connections", headers={"Authorization": f"Bearer {xero_grant.access_token}"}
    )
    assert connections.status_code == 401
    assert connections.json()["Detail"].startswith("TokenExpired: token expired at ")


def test_revocation_kills_the_grant_and_removes_the_users_connections(
    sandbox: SandboxHandle, xero_app: dict, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    # Another app's connection for the same user survives.
    other = sandbox.create_app([CALLBACK], name="other")
    sandbox.grant(other["client_id"], xero_grant.user)
    response = http.post(
        "/connect/revocation",
        data={"token": xero_grant.refresh_token},
        headers=basic(xero_app["client_id"], xero_app["client_secret"]),
    )
    assert response.status_code == 200
    assert_error(refresh(http, xero_app, xero_grant.refresh_token), "invalid_grant")
    assert (
        http.get(
            "/connections", headers={"Authorization": f"Bearer {xero_grant.access_token}"}
        ).status_code
        == 401
    )
    remaining = sandbox.connections()
    assert {c["client_id"] for c in remaining} == {other["client_id"]}
    assert [g["revoked"] for g in sandbox.grants() if g["client_id"] == xero_app["client_id"]] == [
        True
    ]


def test_revocation_needs_client_auth_and_a_token(
    sandbox: SandboxHandle, xero_app: dict, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    assert_error(
        http.post("/connect/revocation", data={"token": xero_grant.refresh_token}), "invalid_client"
    )
    assert_error(
        http.post(
            "/connect/revocation",
            data={},
            headers=basic(xero_app["client_id"], xero_app["client_secret"]),
        ),
        "invalid_request",
    )
    unknown = http.post(
        "/connect/revocation",
        data={"token": "nope"},
        headers=basic(xero_app["client_id"], xero_app["client_secret"]),
    )
    assert unknown.status_code == 200
    assert refresh(http, xero_app, xero_grant.refresh_token).status_code == 200


def test_delete_connection_then_404_and_the_token_keeps_the_other_tenant(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    auth = {"Authorization": f"Bearer {xero_grant.access_token}"}
    rows = http.get("/connections", headers=auth).json()
    assert len(rows) == 2
    gone, kept = rows
    assert http.delete(f"/connections/{gone['id']}", headers=auth).status_code == 204
    assert http.delete(f"/connections/{gone['id']}", headers=auth).status_code == 404
    # The tenant id is not a connection id.
    assert http.delete(f"/connections/{kept['tenantId']}", headers=auth).status_code == 404
    assert api_get(http, xero_grant.access_token, gone["tenantId"]).status_code == 403
    assert api_get(http, xero_grant.access_token, kept["tenantId"]).status_code == 200
    assert [r["id"] for r in http.get("/Connections", headers=auth).json()] == [kept["id"]]


# --- userinfo, discovery, signatures --------------------------------------------------------


def test_userinfo_returns_the_users_claims(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    info = http.get(
        "/connect/userinfo", headers={"Authorization": f"Bearer {xero_grant.access_token}"}
    )
    assert info.status_code == 200
    body = info.json()
    assert body["email"] == xero_grant.user
    assert body["sub"] == claims(xero_grant.access_token)["sub"]
    assert http.get("/connect/userinfo").status_code == 401


def test_discovery_points_here_and_tokens_verify_against_jwks(
    sandbox: SandboxHandle, xero_grant: XeroGrant, http: httpx.Client
) -> None:
    config = http.get("/.well-known/openid-configuration").json()
    assert config["token_endpoint"] == f"{sandbox.url}/connect/token"
    assert config["issuer"] == sandbox.url
    assert set(config["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic",
        "client_secret_post",
    }
    key = http.get(config["jwks_uri"].removeprefix(sandbox.url)).json()["keys"][0]

    def number(text: str) -> int:
        return int.from_bytes(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), "big")

    public = rsa.RSAPublicNumbers(number(key["e"]), number(key["n"])).public_key()
    for token in (xero_grant.access_token, xero_grant.id_token):
        header_b64, payload_b64, signature_b64 = token.split(".")
        header = claims(f"x.{header_b64}.x")
        assert header == {"alg": "RS256", "kid": key["kid"], "typ": "JWT", "x5t": key["x5t"]}
        signature = base64.urlsafe_b64decode(signature_b64 + "=" * (-len(signature_b64) % 4))
        public.verify(
            signature, f"{header_b64}.{payload_b64}".encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    assert claims(xero_grant.access_token)["iss"] == sandbox.url


@pytest.mark.parametrize("scheme", ["Bearer nope", "Basic abc", ""])
def test_garbage_bearer_is_authentication_unsuccessful(
    sandbox: SandboxHandle, http: httpx.Client, scheme: str, tenant_ids: list[str]
) -> None:
    headers = {"Authorization": scheme} if scheme else {}
    response = http.get(
        "/api.xro/2.0/Contacts", headers={**headers, "xero-tenant-id": tenant_ids[0]}
    )
    assert response.status_code == 401
    assert response.json()["Detail"] == "AuthenticationUnsuccessful"
