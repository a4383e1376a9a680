"""Where the source gets its access tokens and its organisations: a small interface, two kinds.

The source asks a ``TokenProvider`` for the organisations to read and for an access token for a
grant (again, after Xero rejected one); it never reads the app's store itself. Two providers:

- ``StoreTokens``: the app's credential and connection store (what the auth server connected);
  tokens through ``connector.tokens.access_token_for`` (single-flight refresh, rotation saved
  before use). Organisations: the store's ``connected`` connections.
- ``SecretsTokens``: the plain dlt use. A ``refresh_token`` from ``[sources.xero]`` is adopted
  into a local token store on first use; from then on the store's rotated token wins, so the
  second run works after Xero rotated the token in the secrets file. Organisations: those
  ``/connections`` lists for the grant.

A provider reports, it never records: what Xero refused is in the run's ``SyncStats``
(``access_lost``), and the caller decides what to write.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from connector.errors import AuthenticationFailed, ConfigurationError, TokenExpired
from connector.identity import http_client, list_connections
from connector.settings import XeroSettings
from connector.tokens import access_token_for

if TYPE_CHECKING:
    from connector.store import Store


# Refreshes a provider sends at once: concurrent (a run's 1,000 grants are not refreshed one
# after another) but bounded (never 1,000 requests at Xero's token endpoint at once).
REFRESHES_IN_FLIGHT = 16


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


class StoreTokens:
    """The app's store as a token provider: connections the auth server made.

    Args:
        store: the credential and connection store.
        settings: Xero settings (token URL, client credentials, refresh margin).
        close_store: close the store with the provider (when the provider made it).
    """

    def __init__(self, store: Store, settings: XeroSettings, *, close_store: bool = False) -> None:
        self.store = store
        self.settings = settings
        self.home = store.home
        self._close_store = close_store
        # One client for every refresh the provider makes: a run over 1,000 grants refreshes
        # 1,000 times, and a client of its own each time cost ~60 ms of CPU (its TLS context).
        self._http: httpx.Client | None = None
        self._http_lock = threading.Lock()

    def _token_http(self) -> httpx.Client:
        with self._http_lock:
            if self._http is None:
                self._http = http_client(self.settings, in_flight=REFRESHES_IN_FLIGHT)
            return self._http

    def organisations(self) -> list[Organisation]:
        """The store's ``connected`` connections (one per tenant)."""
        found: dict[str, Organisation] = {}
        for connection in self.store.list_connections(statuses=["connected"]):
            if connection.tenant_id and connection.grant_id:
                found[connection.tenant_id] = Organisation(
                    connection.tenant_id, connection.grant_id, connection.organisation_name)
        return list(found.values())

    def missing_reason(self, tenant_id: str) -> str:
        """Names the connection's status in the store."""
        known = self.store.connections_for_tenant(tenant_id)
        status = known[-1].status if known else "unknown"
        return f"organisation {tenant_id} is not connected (status {status})"

    def access_token(
        self, grant_id: str, *, rejected: str | None = None,
        on_refresh: Callable[[], None] | None = None,
    ) -> str:
        """Through ``connector.tokens.access_token_for`` (single-flight, rotation saved first)."""
        return access_token_for(self.store, self.settings, grant_id, rejected=rejected,
                                on_refresh=on_refresh, http=self._token_http)

    def close(self) -> None:
        """Close the token client, and the store if it is the provider's own (otherwise it is
        the caller's)."""
        with self._http_lock:
            http, self._http = self._http, None
        if http is not None:
            http.close()
        if self._close_store:
            self.store.close()


# Which refresh token from the secrets was adopted as which grant: a SHA-256 of the token
# (a random, high-entropy value, so the digest reveals nothing) -> grant id. No token is kept here.
_ADOPTED_FILE = "adopted-grants.json"


def _local_store() -> Store:
    """The local token store of the plain-source use (XERO_ELT_HOME)."""
    from connector.store import Store

    return Store()  # swap for connector.store.open_store() (the store factory) when it lands


class SecretsTokens:
    """A refresh token from the secrets, adopted into a local token store on first use.

    Args:
        settings: Xero settings; ``refresh_token`` is the one to adopt.
        store: the local token store (default: the store in ``XERO_ELT_HOME``).
    """

    def __init__(self, settings: XeroSettings, store: Store | None = None) -> None:
        if not settings.refresh_token:
            raise ConfigurationError(
                "sources.xero.refresh_token is not set: put it in .dlt/secrets.toml under "
                "[sources.xero] (or SOURCES__XERO__REFRESH_TOKEN), or pass a token provider"
            )
        settings.require_client()
        self.settings = settings
        self._store = store
        self._owns_store = store is None
        self._grant_id: str | None = None
        self._tokens: StoreTokens | None = None

    @property
    def store(self) -> Store:
        """The local token store, opened on first use."""
        if self._store is None:
            self._store = _local_store()
        return self._store

    @property
    def home(self) -> Path:  # type: ignore[override]
        """The local store's folder."""
        return self.store.home

    def _adopted(self) -> StoreTokens:
        if self._tokens is None:
            self._tokens = StoreTokens(self.store, self.settings)
        return self._tokens

    def grant_id(self) -> str:
        """The grant adopted from the secrets' refresh token (adopting it the first time)."""
        if self._grant_id is not None:
            return self._grant_id
        fingerprint = hashlib.sha256(self.settings.refresh_token.encode()).hexdigest()
        path = self.store.home / _ADOPTED_FILE
        with self.store.grant_lock(f"adopt-{fingerprint[:16]}"):
            adopted = _read_json(path)
            grant_id = adopted.get(fingerprint)
            if grant_id is None:
                # An access token that is already expired: the first access_token() call refreshes
                # it inside the grant lock and saves the rotated token before using it.
                grant = self.store.add_grant(
                    {"access_token": "", "refresh_token": self.settings.refresh_token,
                     "expires_in": 0, "scope": self.settings.scopes},
                    client_id=self.settings.client_id,
                )
                grant_id = grant.grant_id
                _write_json(path, {**adopted, fingerprint: grant_id})
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
        """Through the local store (single-flight refresh, rotation saved before use)."""
        return self._adopted().access_token(grant_id, rejected=rejected, on_refresh=on_refresh)

    def close(self) -> None:
        """Close the token client, and the local store if this provider opened it."""
        if self._tokens is not None:
            self._tokens.close()  # a StoreTokens over our store: it leaves the store open
        if self._owns_store and self._store is not None:
            self._store.close()


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError:
        raise ConfigurationError(f"{path} is not valid JSON; remove it to adopt the refresh "
                                 "token from the secrets again") from None
    return data if isinstance(data, dict) else {}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically: a crash leaves the old file or the new one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1), encoding="utf-8")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def default_provider(settings: XeroSettings) -> TokenProvider:
    """The provider a source gets when none is given: the secrets' refresh token if there is
    one, else the app's store (connections made by the auth server)."""
    if settings.refresh_token:
        return SecretsTokens(settings)
    return StoreTokens(_local_store(), settings, close_store=True)


__all__ = ["Organisation", "SecretsTokens", "StoreTokens", "TokenProvider", "default_provider"]
