"""Where the source gets its access tokens and its organisations: a small interface.

The source asks a ``TokenProvider`` for the organisations to read and for an access token for a
grant (again, after Xero rejected one); it never reads the app's records. Two providers:

- ``SecretsTokens`` (here): the plain dlt use. A ``refresh_token`` from ``[sources.xero]`` is
  adopted into a small token file (``connector.token_file``) on first use; from then on the
  file's rotated token wins, so the second run works after Xero rotated the token in the secrets
  file. Organisations: those ``/connections`` lists for the grant.
- ``store.token_provider.StoreTokens``: the app's store (what the auth server connected). The
  app passes it to the source; this package never imports the app.

A provider reports, it never records run outcomes: what Xero refused is in the run's
``SyncStats`` (``access_lost``), and the caller decides what to write.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx

from connector.errors import AuthenticationFailed, ConfigurationError, TokenExpired
from connector.identity import http_client, list_connections
from connector.settings import XeroSettings
from connector.token_file import FileTokenStore
from connector.tokens import access_token_for


@dataclass(frozen=True)
class Organisation:
    """An organisation to read: its tenant id, the grant that reaches it, its name."""

    tenant_id: str
    grant_id: str
    name: str | None = None


class TokenProvider(Protocol):
    """What the source needs to reach Xero: organisations and access tokens."""

    home: Path
    """Folder for the connector's local state (the daily call counter)."""

    def organisations(self) -> list[Organisation]:
        """Every organisation this provider can read, with the grant that reaches it."""
        ...

    def missing_reason(self, tenant_id: str) -> str:
        """Why a named organisation is not among ``organisations()`` (for the run's report)."""
        ...

    def access_token(
        self, grant_id: str, *, rejected: str | None = None,
        on_refresh: Callable[[], None] | None = None,
    ) -> str:
        """A valid access token for the grant, never ``rejected`` (one Xero just refused).

        ``on_refresh`` is called when a token request goes to Xero (call counting).

        Raises:
            GrantInvalid: the grant is dead; the organisations on it must be connected again.
        """
        ...

    def close(self) -> None:
        """Release what the provider opened (store handles)."""
        ...


class SecretsTokens:
    """A refresh token from the secrets, adopted into a token file on first use.

    Args:
        settings: Xero settings; ``refresh_token`` is the one to adopt.
        token_file: where the tokens live (default ``XERO_ELT_HOME/tokens.json``).
    """

    def __init__(self, settings: XeroSettings, token_file: FileTokenStore | None = None) -> None:
        if not settings.refresh_token:
            raise ConfigurationError(
                "sources.xero.refresh_token is not set: put it in .dlt/secrets.toml under "
                "[sources.xero] (or SOURCES__XERO__REFRESH_TOKEN), or pass a token provider"
            )
        settings.require_client()
        self.settings = settings
        self.token_file = token_file if token_file is not None else FileTokenStore()
        self._grant_id: str | None = None
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()

    @property
    def home(self) -> Path:  # type: ignore[override]
        """The token file's folder (the daily call counter lives there too)."""
        return self.token_file.home

    def grant_id(self) -> str:
        """The grant adopted from the secrets' refresh token (adopting it the first time)."""
        if self._grant_id is not None:
            return self._grant_id
        # A SHA-256 of the token (a random, high-entropy value: the digest reveals nothing).
        fingerprint = hashlib.sha256(self.settings.refresh_token.encode()).hexdigest()
        with self.token_file.grant_lock("adopt"):
            grant_id = self.token_file.adopted(fingerprint)
            if grant_id is None and fingerprint in _read_json(self.home / _OLD_ADOPTED_FILE):
                # Adopting the secrets' token again would use one Xero rotated away long ago.
                raise ConfigurationError(
                    f"an earlier release adopted this refresh token into the app's store in "
                    f"{self.home}; move it into {self.token_file.path} once with "
                    f"`python -m store.token_provider {self.home}`, or put a current refresh "
                    "token in the secrets")
            if grant_id is None:
                # An access token that is already expired: the first access_token() call
                # refreshes it inside the grant lock and saves the rotated token before use.
                grant_id = self.token_file.adopt(fingerprint, self.settings.refresh_token)
        self._grant_id = grant_id
        return grant_id

    def organisations(self) -> list[Organisation]:
        """The organisations ``/connections`` lists for the grant."""
        grant_id = self.grant_id()
        token = self.access_token(grant_id)
        try:
            connections = list_connections(self.settings, token)
        except (TokenExpired, AuthenticationFailed):
            # Xero's clock, not ours, says when a token expired: refresh once and ask again.
            connections = list_connections(self.settings,
                                           self.access_token(grant_id, rejected=token))
        return [
            Organisation(str(c["tenantId"]), grant_id, c.get("tenantName"))
            for c in connections
            if c.get("tenantId") and c.get("tenantType", "ORGANISATION") == "ORGANISATION"
        ]

    def missing_reason(self, tenant_id: str) -> str:
        """The grant does not reach it."""
        return f"organisation {tenant_id} is not among the grant's connections at Xero"

    def access_token(
        self, grant_id: str, *, rejected: str | None = None,
        on_refresh: Callable[[], None] | None = None,
    ) -> str:
        """Through the token file (single-flight refresh, rotation saved before use)."""
        return access_token_for(self.token_file, self.settings, grant_id, rejected=rejected,
                                on_refresh=on_refresh, http=self._token_http,
                                on_grant_invalid=self.token_file.mark_invalid)

    def _token_http(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                self._http = http_client(self.settings)
            return self._http

    def close(self) -> None:
        """Close the token client."""
        with self._http_lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()


# Where releases before the token file recorded which secrets token became which grant of the
# app's store (a SHA-256 of the token -> grant id); ``store.token_provider`` moves them.
_OLD_ADOPTED_FILE = "adopted-grants.json"


def _read_json(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def default_provider(settings: XeroSettings) -> TokenProvider:
    """The provider a source gets when none is given: the secrets' refresh token (the app
    passes its own, ``store.token_provider.StoreTokens``)."""
    return SecretsTokens(settings)


__all__ = ["Organisation", "SecretsTokens", "TokenProvider", "default_provider"]
