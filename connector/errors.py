"""One exception family for everything that can go wrong talking to Xero.

Every error carries where it happened (organisation name, tenant id, entity, endpoint) and,
optionally, the underlying cause as text. None of them ever carries a token, a client secret or an
authorization code: messages are built from those fields only, and ``cause`` is stored as a short
string, not as the original exception (whose args might hold a request body).
"""

from __future__ import annotations


class XeroError(Exception):
    """Base class: a call to Xero (or its identity service) did not give what we needed.

    Args:
        message: what went wrong, in a sentence; never a secret.
        organisation: organisation name, when known.
        tenant_id: Xero tenant id, when the call was tenant-scoped.
        entity: the entity being read (``suppliers``, ``accounts``, ...).
        endpoint: the path or URL called (no query string with secrets: we never put any there).
        cause: short text of the underlying cause (status code, Xero's ``Detail``, exception type).
    """

    def __init__(
        self,
        message: str,
        *,
        organisation: str | None = None,
        tenant_id: str | None = None,
        entity: str | None = None,
        endpoint: str | None = None,
        cause: str | None = None,
    ) -> None:
        self.message = message
        self.organisation = organisation
        self.tenant_id = tenant_id
        self.entity = entity
        self.endpoint = endpoint
        self.cause = cause
        super().__init__(self.__str__())

    def where(self) -> str:
        """The context part of the message: organisation, tenant, entity, endpoint."""
        parts = []
        if self.organisation:
            parts.append(f"organisation {self.organisation!r}")
        if self.tenant_id:
            parts.append(f"tenant {self.tenant_id}")
        if self.entity:
            parts.append(f"entity {self.entity}")
        if self.endpoint:
            parts.append(f"endpoint {self.endpoint}")
        return ", ".join(parts)

    def with_context(self, **context: str | None) -> XeroError:
        """Fill in context fields that are still empty; returns self."""
        for name, value in context.items():
            if value is not None and getattr(self, name, None) is None:
                setattr(self, name, value)
        self.args = (self.__str__(),)
        return self

    def __str__(self) -> str:
        text = self.message
        where = self.where()
        if where:
            text += f" ({where})"
        if self.cause:
            text += f": {self.cause}"
        return text

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__str__()!r})"


class ConfigurationError(XeroError):
    """A setting is missing or invalid (the command line maps this to exit code 2)."""


class OAuthError(XeroError):
    """The identity service refused a request (``invalid_client``, ``invalid_request``, ...)."""

    def __init__(self, message: str, *, error: str | None = None, **context: str | None) -> None:
        self.error = error
        super().__init__(message, **context)


CLIENT_REJECTED = ("Xero rejected the app's client credentials (invalid_client): check "
                   "sources.xero.client_secret and sources.xero.client_id")
"""The one line for ``invalid_client``: the app's id or secret is wrong, for every grant."""


class ClientRejected(OAuthError):
    """``invalid_client``: Xero refused the app's own credentials (a wrong client secret or
    id). No organisation can be read or connected until the setting is fixed."""


class GrantInvalid(OAuthError):
    """``invalid_grant``: the refresh token (or code) is dead; the user must connect again."""


class TokenExpired(XeroError):
    """401 ``TokenExpired``: the access token is past its expiry; refresh once and retry once."""


class AuthenticationFailed(XeroError):
    """401 ``AuthenticationUnsuccessful``: the access token is invalid or was revoked."""


class AuthorizationMissing(XeroError):
    """401 ``AuthorizationUnsuccessful``: the grant lacks a scope this endpoint needs."""


class TenantDisconnected(XeroError):
    """403: the organisation is no longer connected to this app (or the tenant id is wrong)."""


class PermissionLost(XeroError):
    """403 while ``/connections`` still lists the organisation: the user who authorised us lost
    the role or permission. An admin must connect again; retrying cannot help."""


class RateLimited(XeroError):
    """429 from Xero: ``problem`` names the limit (minute, day, concurrent, appminute)."""

    def __init__(
        self,
        message: str,
        *,
        problem: str | None = None,
        retry_after: float | None = None,
        **context: str | None,
    ) -> None:
        self.problem = problem
        self.retry_after = retry_after
        super().__init__(message, **context)


class DailyLimitReached(RateLimited):
    """Xero's day limit, or our own ``daily_call_budget``: stop this organisation until tomorrow."""


class MalformedResponse(XeroError):
    """Xero answered with a body that is not the JSON we expect (truncated, XML, no envelope)."""


class XeroUnavailable(XeroError):
    """5xx, timeouts or dropped connections that outlasted our bounded retries."""


class OrganisationOffline(XeroUnavailable):
    """503 "Organisation offline": this one organisation is unavailable for a while; defer it."""


class XeroRequestError(XeroError):
    """Any other 4xx answer (e.g. 400 QueryParseException): a bug or bad config, not retried.

    It concerns the one request: the organisation's other calls go on.
    """

    def __init__(self, message: str, *, status: int | None = None, **context: str | None) -> None:
        self.status = status
        super().__init__(message, **context)


class HighVolumeRefused(XeroRequestError):
    """400 ``HighVolumeException``: the organisation is too large for a Contacts query filtered
    or ordered on an unoptimised field; read it another way."""


__all__ = [
    "AuthenticationFailed",
    "AuthorizationMissing",
    "ConfigurationError",
    "DailyLimitReached",
    "GrantInvalid",
    "HighVolumeRefused",
    "MalformedResponse",
    "OAuthError",
    "OrganisationOffline",
    "PermissionLost",
    "RateLimited",
    "TenantDisconnected",
    "TokenExpired",
    "XeroError",
    "XeroRequestError",
    "XeroUnavailable",
]
