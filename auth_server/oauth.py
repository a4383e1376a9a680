"""The browser leg of Xero's OAuth: PKCE, ``state``, the authorize URL, and this consent's tenants.

The HTTP calls (code exchange, ``/connections``) live in ``connector.identity``; this module
only builds what goes into the browser and reads what came back.

Xero quirks absorbed here: ``GET /connections`` lists *every* organisation the user ever connected
to the app. The ones chosen in this very consent are those whose ``authEventId`` equals the
access token's ``authentication_event_id`` claim — never "the first connection". But an
organisation that was already connected is reported to keep its old ``authEventId`` when it is
consented again (REFERENCE 0, UNCONFIRMED), so those are looked for by ``updatedDateUtc`` too,
and a reconnection looks for its own organisation; when nothing tells them apart, every
organisation the grant reaches is offered and the person chooses.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

DEFAULT_SCOPES = (
    "openid profile email offline_access accounting.contacts.read accounting.settings.read"
)
ORGANISATION = "ORGANISATION"


def new_code_verifier() -> str:
    """A PKCE verifier: 86 characters from the unreserved set (RFC 7636 allows 43–128)."""
    return secrets.token_urlsafe(64)


def code_challenge(verifier: str) -> str:
    """``BASE64URL(SHA-256(verifier))`` without padding (method ``S256``)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorize_url(
    base_url: str, *, client_id: str, redirect_uri: str, scopes: str, state: str, challenge: str
) -> str:
    """Xero's authorize URL for an authorization-code + PKCE (S256) request."""
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scopes or DEFAULT_SCOPES,
        "state": state,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    separator = "&" if urlsplit(base_url).query else "?"
    return base_url + separator + urlencode(params)


@dataclass(frozen=True)
class Organisation:
    """One organisation a consent authorised: what the confirm page shows and what we store."""

    xero_connection_id: str
    tenant_id: str
    name: str

    def to_dict(self) -> dict[str, str]:
        """JSON form (kept in the store's flow record while the person confirms)."""
        return {"xero_connection_id": self.xero_connection_id, "tenant_id": self.tenant_id,
                "name": self.name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Organisation:
        """Inverse of :meth:`to_dict`."""
        return cls(str(data["xero_connection_id"]), str(data["tenant_id"]), str(data["name"]))


def _sort_key(connection: dict[str, Any]) -> str:
    return str(connection.get("updatedDateUtc") or "")


_XERO_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,7}))?")


def connection_time(value: Any) -> datetime | None:
    """``2019-12-07T18:46:19.5165400`` (UTC, no zone, 7 fractional digits) as a datetime."""
    match = _XERO_TIME.match(str(value or ""))
    if not match:
        return None
    whole = datetime.fromisoformat(match.group(1)).replace(tzinfo=UTC)
    return whole.replace(microsecond=int((match.group(2) or "0").ljust(6, "0")[:6]))


def _organisation(connection: dict[str, Any]) -> Organisation:
    return Organisation(
        xero_connection_id=str(connection["id"]),
        tenant_id=str(connection["tenantId"]),
        name=str(connection.get("tenantName") or "Unnamed organisation"),
    )


def _updated_since(connection: dict[str, Any], since: datetime | None) -> bool:
    updated = connection_time(connection.get("updatedDateUtc"))
    return since is not None and updated is not None and updated >= since


def _usable(connections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Only ``ORGANISATION`` tenants count (the Accounting API needs one)."""
    return [
        c for c in connections
        if c.get("tenantType", ORGANISATION) == ORGANISATION and c.get("id") and c.get("tenantId")
    ]


def consent_organisations(
    connections: list[dict[str, Any]],
    auth_event_id: str | None,
    *,
    since: datetime | None = None,
    reconnecting: str | None = None,
) -> list[Organisation]:
    """The organisations authorised in the consent identified by ``auth_event_id``.

    A connection belongs to the consent when its ``authEventId`` is the consent's, or (for an
    organisation consented again, which may keep its old ``authEventId``) when it was updated at
    or after ``since``, the moment the flow left for Xero, or when it is the organisation
    ``reconnecting`` is for. Without an event id (a token without the claim) Xero's own SDK
    falls back to the most recently updated connections; we do the same, keeping every
    connection that shares the newest timestamp. May be empty: see ``grant_organisations``.
    """
    usable = _usable(connections)
    if auth_event_id:
        chosen = [
            c for c in usable
            if c.get("authEventId") == auth_event_id
            or _updated_since(c, since)
            or (reconnecting is not None and c.get("tenantId") == reconnecting)
        ]
    elif usable:
        newest = max(_sort_key(c) for c in usable)
        chosen = [c for c in usable if _sort_key(c) == newest]
    else:
        chosen = []
    return [_organisation(c) for c in chosen]


def grant_organisations(connections: list[dict[str, Any]]) -> list[Organisation]:
    """Every organisation the grant reaches: the last resort when nothing marks this consent's
    (a re-consent whose connection kept its ``authEventId`` and ``updatedDateUtc``)."""
    return [_organisation(c) for c in _usable(connections)]
