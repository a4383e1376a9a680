"""Xero's identity service and the tenant-less ``/connections`` endpoint.

OAuth 2.0 code exchange, refresh (with rotation), revocation, reading the access token's claims,
and listing/deleting connections. Every function takes ``XeroSettings`` (URLs, client id and
secret, timeouts, User-Agent) and raises errors from ``connector.errors``; no token, code or
secret ever appears in an error, a log line or a repr.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from connector.errors import (
    CLIENT_REJECTED,
    AuthenticationFailed,
    AuthorizationMissing,
    ClientRejected,
    GrantInvalid,
    MalformedResponse,
    OAuthError,
    RateLimited,
    TokenExpired,
    XeroRequestError,
    XeroUnavailable,
)
from connector.retry import TRANSIENT, Retriable, RetryPolicy, retry_after
from connector.settings import XeroSettings
from connector.wire import oauth_error_code, problem_detail

log = logging.getLogger(__name__)

# Refresh is safe to retry: if Xero rotated but the answer was lost, the previous refresh token
# still works for 30 minutes. A code exchange is not (codes are single-use), so it is not retried.
_REFRESH_ATTEMPTS = 3


@dataclass(frozen=True)
class TokenSet:
    """A parsed token response. ``raw`` is the JSON as received (what ``Store.add_grant`` takes)."""

    access_token: str = field(repr=False)
    refresh_token: str | None = field(repr=False)
    expires_in: int
    scope: str
    id_token: str | None = field(repr=False, default=None)
    raw: dict = field(repr=False, default_factory=dict)

    @classmethod
    def from_response(cls, data: Any, *, endpoint: str) -> TokenSet:
        """Build from Xero's token JSON; a body without an access token is malformed."""
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise MalformedResponse("the token response has no access_token", endpoint=endpoint)
        try:
            expires_in = int(data.get("expires_in", 1800))
        except (TypeError, ValueError):
            raise MalformedResponse(
                "the token response has a non-numeric expires_in", endpoint=endpoint
            ) from None
        return cls(
            access_token=data["access_token"],
            refresh_token=data.get("refresh_token"),
            expires_in=expires_in,
            scope=str(data.get("scope") or ""),
            id_token=data.get("id_token"),
            raw=dict(data),
        )


class _BoundedClient(httpx.Client):
    """An httpx client that hands at most ``in_flight`` requests to its pool at once (for
    whole-body sends, not streams). httpx rescans its queue of waiting requests on every
    request and answer: a thousand refreshes queued at once made that quadratic."""

    def __init__(self, *, in_flight: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._slots = threading.BoundedSemaphore(in_flight)

    def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        with self._slots:
            return super().send(request, **kwargs)


def http_client(settings: XeroSettings, *, in_flight: int | None = None,
                **kwargs: Any) -> httpx.Client:
    """An httpx client with our timeouts, User-Agent and ``Accept: application/json``;
    with ``in_flight``, at most that many requests at once (and as many connections)."""
    timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout)
    headers = {"User-Agent": settings.user_agent, "Accept": "application/json"}
    if in_flight is not None:
        kwargs.setdefault("limits", httpx.Limits(max_connections=in_flight,
                                                 max_keepalive_connections=in_flight))
        return _BoundedClient(in_flight=in_flight, timeout=timeout, headers=headers, **kwargs)
    return httpx.Client(timeout=timeout, headers=headers, **kwargs)


def _client_auth(settings: XeroSettings, form: dict[str, str]) -> httpx.BasicAuth | None:
    """Confidential apps authenticate with Basic; PKCE apps (no secret) send ``client_id``."""
    settings.require_client()
    if settings.client_secret:
        return httpx.BasicAuth(settings.client_id, settings.client_secret)
    form["client_id"] = settings.client_id
    return None


def _token_request(
    settings: XeroSettings, form: dict[str, str], *, attempts: int, what: str,
    http: httpx.Client | None = None,
) -> TokenSet:
    """POST to the token endpoint and parse the answer; retries only transient failures.

    ``http``: a client to send with (a run refreshing many grants shares one: making an httpx
    client costs ~60 ms of CPU, its TLS context); default one of its own for every attempt.
    """
    endpoint = settings.token_url
    auth = _client_auth(settings, form)
    with contextlib.nullcontext(http) if http is not None else http_client(settings) as client:
        response = _with_retries(
            settings, attempts, what, endpoint,
            lambda: client.post(endpoint, data=form, auth=auth),
            retry_status=lambda status: status >= 500 or status == 429,
        )
    if response.status_code != 200:
        raise _token_error(response, what=what, endpoint=endpoint)
    try:
        data = response.json()
    except ValueError:
        raise MalformedResponse(
            f"{what}: the token endpoint sent invalid JSON", endpoint=endpoint
        ) from None
    return TokenSet.from_response(data, endpoint=endpoint)


def _with_retries(
    settings: XeroSettings,
    attempts: int,
    what: str,
    endpoint: str,
    send: Callable[[], httpx.Response],
    retry_status: Callable[[int], bool],
) -> httpx.Response:
    """Send up to ``attempts`` times under the one retry policy (``connector.retry``): transport
    errors and the statuses ``retry_status`` names are transient, everything else is returned."""

    def attempt() -> httpx.Response:
        try:
            response = send()
        except httpx.TransportError as exc:
            reason = " ".join(str(exc).split())[:200]
            error = XeroUnavailable(
                f"{what} failed: Xero's identity service could not be reached at {endpoint}",
                cause=f"{type(exc).__name__}: {reason}" if reason else type(exc).__name__)
            raise Retriable(TRANSIENT, lambda _n: error, note=f"{what}: {error.cause}") from None
        if retry_status(response.status_code):
            error = XeroUnavailable(f"{what} failed", endpoint=endpoint,
                                    cause=f"HTTP {response.status_code}")
            raise Retriable(TRANSIENT, lambda _n: error, note=f"{what}: {error.cause}")
        return response

    return RetryPolicy.transient_only(settings, attempts).call(attempt)


def _token_error(response: httpx.Response, *, what: str, endpoint: str) -> OAuthError:
    code = oauth_error_code(response.content)
    cause = f"HTTP {response.status_code} {code or problem_detail(response.content)}".strip()
    if code == "invalid_grant":
        return GrantInvalid(f"{what}: Xero says invalid_grant", error=code, endpoint=endpoint,
                            cause=cause)
    if code in ("invalid_client", "unauthorized_client"):
        return ClientRejected(f"{what}: {CLIENT_REJECTED}", error=code, endpoint=endpoint,
                              cause=cause)
    return OAuthError(f"{what} was refused", error=code, endpoint=endpoint, cause=cause)


def exchange_code(
    settings: XeroSettings, *, code: str, redirect_uri: str, code_verifier: str
) -> TokenSet:
    """Exchange an authorization code (with its PKCE verifier) for tokens.

    Raises:
        GrantInvalid: the code is wrong, expired or already used.
        OAuthError: any other refusal (``invalid_client``, ...).
        XeroUnavailable: the token endpoint could not be reached.
    """
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": code_verifier,
    }
    return _token_request(settings, form, attempts=1, what="code exchange")


def refresh_tokens(
    settings: XeroSettings, refresh_token: str, *, attempts: int = _REFRESH_ATTEMPTS,
    http: httpx.Client | None = None,
) -> TokenSet:
    """Trade a refresh token for a new token set (Xero rotates the refresh token every time).

    Callers must persist ``raw`` (the new refresh token) before using the new access token.
    ``attempts=1`` makes one call and leaves retrying (and backing off) to the caller, who can
    then do it outside the grant lock.

    Raises:
        GrantInvalid: ``invalid_grant`` (revoked, expired, or superseded beyond the grace period).
        OAuthError, XeroUnavailable, MalformedResponse: as for ``exchange_code``.
    """
    form = {"grant_type": "refresh_token", "refresh_token": refresh_token}
    return _token_request(settings, form, attempts=attempts, what="token refresh", http=http)


def revoke(settings: XeroSettings, refresh_token: str) -> None:
    """Revoke a grant at Xero: its refresh token dies and all its connections are removed.

    Raises:
        OAuthError: Xero answered anything but 200.
        XeroUnavailable: the revocation endpoint could not be reached.
    """
    form = {"token": refresh_token}
    auth = _client_auth(settings, form)
    endpoint = settings.revocation_url
    try:
        with http_client(settings) as http:
            response = http.post(endpoint, data=form, auth=auth)
    except httpx.TransportError as exc:
        raise XeroUnavailable("revocation failed", endpoint=endpoint,
                              cause=type(exc).__name__) from None
    if response.status_code != 200:
        raise _token_error(response, what="revocation", endpoint=endpoint)


def access_token_claims(access_token: str) -> dict:
    """The claims of a JWT access token, decoded without verifying the signature.

    We only read facts Xero put there for the client (``authentication_event_id``, ``exp``,
    ``xero_userid``, ``scope``); trust comes from having received it over TLS from Xero.

    Raises:
        MalformedResponse: the token is not a JWT with a JSON payload.
    """
    parts = access_token.split(".")
    if len(parts) != 3:
        raise MalformedResponse("the access token is not a JWT", cause=f"{len(parts)} parts")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload))
    except (ValueError, binascii.Error):
        raise MalformedResponse("the access token's payload is not JSON") from None
    if not isinstance(claims, dict):
        raise MalformedResponse("the access token's payload is not a JSON object")
    return claims


def raise_for_auth_status(
    response: httpx.Response, *, endpoint: str, **context: str | None
) -> None:
    """Map Xero's 401/403/429 answers to our errors (shared by the API client)."""
    status = response.status_code
    if status == 401:
        detail = problem_detail(response.content)
        if detail.startswith("TokenExpired"):
            raise TokenExpired("the access token has expired", endpoint=endpoint,
                               cause=detail.split(":")[0], **context)
        if "AuthorizationUnsuccessful" in detail:
            raise AuthorizationMissing(
                "the grant lacks a scope this endpoint needs (connect again with the right "
                "scopes)", endpoint=endpoint, cause=detail, **context,
            )
        raise AuthenticationFailed("Xero rejected the access token", endpoint=endpoint,
                                   cause=detail or "HTTP 401", **context)
    if status == 429:
        problem = (response.headers.get("X-Rate-Limit-Problem") or "").lower() or None
        raise RateLimited("Xero rate limit hit", problem=problem,
                          retry_after=retry_after(response), endpoint=endpoint,
                          cause=f"limit {problem or 'unknown'}", **context)


def list_connections(
    settings: XeroSettings, access_token: str, auth_event_id: str | None = None
) -> list[dict]:
    """The organisations this grant may read (``GET /connections``), optionally for one consent.

    Raises:
        TokenExpired, AuthenticationFailed: the access token is not (or no longer) valid.
        RateLimited, XeroUnavailable, MalformedResponse, XeroRequestError.
    """
    endpoint = settings.connections_url
    params = {"authEventId": auth_event_id} if auth_event_id else None
    response = _bearer_call(settings, "GET", endpoint, access_token, params=params)
    try:
        data = response.json()
    except ValueError:
        raise MalformedResponse("/connections sent invalid JSON", endpoint=endpoint) from None
    if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
        raise MalformedResponse("/connections did not send a JSON array", endpoint=endpoint)
    return data


def delete_connection(settings: XeroSettings, access_token: str, xero_connection_id: str) -> bool:
    """Disconnect one organisation (``DELETE /connections/{id}``); False when Xero says 404."""
    endpoint = f"{settings.connections_url}/{xero_connection_id}"
    try:
        _bearer_call(settings, "DELETE", endpoint, access_token)
    except XeroRequestError as exc:
        if exc.status == 404:
            return False
        raise
    return True


def _bearer_call(
    settings: XeroSettings,
    method: str,
    url: str,
    access_token: str,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """One tenant-less call with a bearer token; transient failures retried a bounded number of
    times, everything else mapped to our errors."""
    headers = {"Authorization": f"Bearer {access_token}"}
    with http_client(settings) as http:  # one client (one connection) for every attempt
        response = _with_retries(
            settings, settings.max_retries + 1, method, url,
            lambda: http.request(method, url, headers=headers, params=params),
            retry_status=lambda status: status >= 500,
        )
    raise_for_auth_status(response, endpoint=url)
    if response.status_code >= 400:
        raise XeroRequestError(f"{method} was refused", status=response.status_code,
                               endpoint=url, cause=f"HTTP {response.status_code} "
                               f"{problem_detail(response.content)}".strip())
    return response


__all__ = [
    "TokenSet",
    "access_token_claims",
    "delete_connection",
    "exchange_code",
    "http_client",
    "list_connections",
    "raise_for_auth_status",
    "refresh_tokens",
    "revoke",
]
