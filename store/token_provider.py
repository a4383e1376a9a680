"""The app's store as the source's token provider: the connections the auth server made.

``StoreTokens`` implements ``connector.token_providers.TokenProvider`` over the store:
organisations are the ``connected`` connections, tokens come through
``connector.tokens.access_token_for`` (single-flight refresh, rotation saved before use), and a
grant Xero refuses is recorded here (``store.lifecycle.grant_refused``): the connector reports,
the store records. ``access_token_for`` is the same call for the app's own code (the auth
server, the pipelines), with that recording built in. ``move_adopted_grants`` (also
``python -m store.token_provider [HOME]``) moves the tokens earlier releases adopted from a plain
dlt project's secrets into the app's store over to the connector's token file, where they live
now.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from connector import tokens
from connector.identity import http_client
from connector.settings import XeroSettings
from connector.token_file import FileGrant, FileTokenStore
from connector.token_providers import Organisation
from store import default_home, lifecycle, open_store

if TYPE_CHECKING:
    import httpx

    from store.base import Store

log = logging.getLogger(__name__)

# Refreshes a provider sends at once: concurrent (a run's 1,000 grants are not refreshed one
# after another) but bounded (never 1,000 requests at Xero's token endpoint at once).
REFRESHES_IN_FLIGHT = 16


def access_token_for(
    store: Store,
    settings: XeroSettings,
    grant_id: str,
    *,
    rejected: str | None = None,
    now: datetime | None = None,
    on_refresh: Callable[[], None] | None = None,
    http: Callable[[], httpx.Client] | None = None,
) -> str:
    """``connector.tokens.access_token_for`` over the app's store: a grant Xero refuses is
    marked ``invalid`` and every connected organisation on it ``needs_reconnection``.

    Raises:
        GrantInvalid: the grant is dead; the organisations on it must be connected again.
    """

    def refused(refused_grant: str, reason: str) -> None:
        needing = lifecycle.grant_refused(store, refused_grant, reason)
        log.warning("grant %s is invalid (%s); %d organisation(s) need reconnection",
                    refused_grant, reason, len(needing))

    return tokens.access_token_for(store, settings, grant_id, rejected=rejected, now=now,
                                   on_refresh=on_refresh, http=http, on_grant_invalid=refused)


class StoreTokens:
    """The app's store as a token provider: connections the auth server made.

    Args:
        store: the app's store.
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
        """Through ``access_token_for`` (single-flight, rotation saved first)."""
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


def move_adopted_grants(home: Path) -> list[str]:
    """Move the grants an earlier release adopted from the secrets into the app's store (listed
    in ``HOME/adopted-grants.json``) into the plain use's token file, ``HOME/tokens.json``;
    the list is renamed ``adopted-grants.json.moved``. Returns the grant ids moved."""
    listed = home / "adopted-grants.json"
    try:
        adopted = json.loads(listed.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    store = open_store(home)
    token_file = FileTokenStore(home)
    moved = []
    try:
        with token_file.grant_lock("adopt"):
            for fingerprint, grant_id in sorted(adopted.items()):
                grant = store.get_grant(grant_id)
                token_file.keep(fingerprint, FileGrant(
                    grant.grant_id, grant.access_token, grant.access_expires_at,
                    grant.refresh_token, grant.status, grant.status_reason))
                moved.append(grant_id)
    finally:
        store.close()
    listed.rename(listed.with_name(listed.name + ".moved"))
    return moved


__all__ = ["REFRESHES_IN_FLIGHT", "StoreTokens", "access_token_for", "move_adopted_grants"]


if __name__ == "__main__":  # python -m store.token_provider [HOME]
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else default_home()
    print(f"moved {len(move_adopted_grants(folder))} grant(s) into {folder / 'tokens.json'}")
