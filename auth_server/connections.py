"""Connections as the admin and the CLI see them: list, disconnect, adopt an existing grant.

Xero quirks absorbed here:

- ``DELETE /connections/{id}`` takes Xero's connection id, not the tenant id; 404 (and 403, the
  organisation already gone) mean there is nothing left to delete.
- Revoking a refresh token removes *all* of that Xero user's connections to the app, not just the
  grant's. So a grant is revoked only when no connection still in use rests on it or on another
  grant of the same Xero user.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from auth_server.errors import InvalidInput, XeroCallFailed
from auth_server.invites import expire_stale_invites, get_connection
from auth_server.oauth import ORGANISATION
from connector import identity
from connector.errors import (
    AuthenticationFailed,
    GrantInvalid,
    TenantDisconnected,
    XeroError,
    XeroRequestError,
)
from connector.settings import XeroSettings
from store import Connection, ConnectionStatus, Grant, Store, StoreError, lifecycle, utcnow
from store.token_provider import access_token_for

log = logging.getLogger(__name__)

# Connections that still rely on their grant.
IN_USE = frozenset({ConnectionStatus.CONNECTED, ConnectionStatus.NEEDS_RECONNECTION})

REASON_TEXT = {
    "no_permission": "no permission: not a Xero admin",
    "cancelled": "cancelled at Xero",
    "abandoned": "window closed before finishing",
    "code_exchange_failed": "code exchange failed",
    "not_confirmed": "company not confirmed",
    "no_organisation": "no organisation chosen",
    "xero_error": "Xero reported an error",
    "authorizing": "signing in at Xero",
    "confirming": "confirming the company",
    "connection_limit": "the Xero app is at its connection limit",
}

NEAR_LIMIT = 0.8  # warn from this share of ``[auth_server] max_connections``


@dataclass(frozen=True)
class ConnectionCapacity:
    """Connected organisations against the Xero app's cap (``[auth_server] max_connections``).

    Counted from our store's ``connected`` records. Xero's own count may be higher: a record
    needing reconnection may still hold its connection, and another tool's or another user's
    connections to the same app count there too. So this is a floor.
    """

    connected: int
    limit: int

    @property
    def level(self) -> str:
        """``ok``, ``near`` (from 80 %) or ``reached`` (at or over the cap)."""
        if self.connected >= self.limit:
            return "reached"
        if self.connected >= math.ceil(self.limit * NEAR_LIMIT):
            return "near"
        return "ok"

    @property
    def warning(self) -> str | None:
        """What the admin should know and do, with the figures; None when far from the cap."""
        figures = f"{self.connected} of {self.limit} organisations connected"
        if self.level == "reached":
            return (f"{figures}: the Xero app's connection limit is reached. New organisations "
                    "cannot connect until a connection is freed (disconnect one) or the app moves "
                    "to a higher Xero tier (then raise auth_server.max_connections).")
        if self.level == "near":
            return (f"{figures}: close to the Xero app's connection limit. At {self.limit} Xero "
                    "greys out new organisations on its consent page; free unused connections or "
                    "move the app to a higher Xero tier.")
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``xero-elt connections --json``)."""
        return {"connected": self.connected, "max_connections": self.limit, "level": self.level,
                "warning": self.warning}


def connection_capacity(store: Store, limit: int) -> ConnectionCapacity:
    """How close the app is to its connection cap, from our own records."""
    records = store.list_connections(statuses=[ConnectionStatus.CONNECTED.value])
    return ConnectionCapacity(len({c.tenant_id for c in records if c.tenant_id}), limit)


def delete_at_xero(store: Store, settings: XeroSettings, grant_id: str, xero_connection_id: str,
                   *, access_token: str | None = None) -> bool:
    """``DELETE /connections/{id}`` with the grant's token.

    Returns:
        True when Xero removed it, False when it was already gone (404/403) or the grant is dead
        (then Xero cannot be asked, and nothing can be read through it either).

    Raises:
        XeroCallFailed: Xero could not be reached or refused otherwise; nothing changed here.
    """
    try:
        token = access_token or access_token_for(store, settings, grant_id)
        try:
            return identity.delete_connection(settings, token, xero_connection_id)
        except AuthenticationFailed:
            # The token was turned down: refresh once. If a fresh one is refused too, Xero no
            # longer lets this grant reach anything (e.g. removed in Connected apps).
            token = access_token_for(store, settings, grant_id, rejected=token)
            return identity.delete_connection(settings, token, xero_connection_id)
    except (GrantInvalid, TenantDisconnected, AuthenticationFailed):
        return False
    except XeroRequestError as exc:
        if exc.status in (403, 404):
            return False
        raise XeroCallFailed(f"Xero refused to remove the connection: {exc}") from None
    except (XeroError, StoreError) as exc:
        raise XeroCallFailed(f"could not remove the connection at Xero: {exc}") from None


def release_grant(store: Store, settings: XeroSettings, grant_id: str) -> bool:
    """Revoke the grant at Xero if nothing still in use depends on it (see module docstring).

    Returns:
        True when the grant was revoked (or was already dead at Xero).
    """
    try:
        grant = store.get_grant(grant_id)
    except StoreError:
        return False
    if grant.status != "active":
        return False
    in_use_grants = {c.grant_id for c in store.list_connections(statuses=list(IN_USE))}
    if grant_id in in_use_grants:
        return False
    if grant.xero_user_id:
        for other in store.list_grants():
            if (other.grant_id in in_use_grants and other.xero_user_id == grant.xero_user_id
                    and other.client_id == grant.client_id):
                log.info("grant %s not revoked: the same Xero user has another connection in use",
                         grant_id)
                return False
    try:
        identity.revoke(settings, grant.refresh_token)
    except GrantInvalid:
        pass
    except XeroError as exc:
        log.warning("could not revoke grant %s at Xero (%s); its refresh token expires unused",
                    grant_id, type(exc).__name__)
        return False
    store.set_grant_status(grant_id, "revoked", "no connection uses it any more")
    log.info("revoked grant %s", grant_id)
    return True


def retire_replaced_grant(store: Store, settings: XeroSettings, grant_id: str, *,
                          by: Grant) -> None:
    """Retire the grant of a consent that a newer one (``by``) replaced before it was confirmed,
    so no live refresh token is left that nothing refers to.

    It is revoked at Xero when nothing uses it (``release_grant``), except when ``by`` is the
    same Xero user's: revoking would remove that user's connections, the newer consent's
    included. Then it is only retired here (refresh token unused, so it lapses at Xero).
    """
    if grant_id == by.grant_id:
        return
    try:
        grant = store.get_grant(grant_id)
    except StoreError:
        return
    if grant.status != "active":
        return
    if grant.xero_user_id and grant.xero_user_id == by.xero_user_id:
        store.set_grant_status(grant_id, "revoked", f"replaced by {by.grant_id} before confirming")
        log.info("retired grant %s: replaced by %s of the same Xero user", grant_id, by.grant_id)
        return
    release_grant(store, settings, grant_id)


def pending_key(connection_id: str) -> str:
    """Store flow id of a consent waiting on the confirm page (grant + allowed organisations)."""
    return f"pending:{connection_id}"


def tenants_in_use(store: Store, *, besides: str | None = None) -> dict[str, Connection]:
    """Organisations some connection record (other than ``besides``) relies on, by tenant id."""
    return {
        c.tenant_id: c for c in store.list_connections(statuses=list(IN_USE))
        if c.tenant_id and c.connection_id != besides
    }


def discard_pending(
    store: Store,
    settings: XeroSettings,
    connection_id: str,
    *,
    keep: Collection[str] = (),
    revoke: bool = True,
) -> None:
    """Let go of a consent's organisations that nobody confirmed.

    Each is removed at Xero unless it is in ``keep`` or another record relies on it; then the
    consent's grant is revoked if ``revoke`` and nothing uses it. (A later consent by the same
    user updates the same Xero connections, so callers pass that consent's tenants as ``keep``
    and ``revoke=False``: revoking would remove that user's new connections too.)
    """
    data = store.take_flow(pending_key(connection_id))
    if data:
        let_go_of_consent(store, settings, connection_id, data, keep=keep, revoke=revoke)


def let_go_of_consent(
    store: Store,
    settings: XeroSettings,
    connection_id: str,
    data: dict[str, Any],
    *,
    keep: Collection[str] = (),
    revoke: bool = True,
) -> None:
    """``discard_pending`` for a consent already taken out of the store (``data``)."""
    grant_id = data.get("grant_id")
    if not grant_id:
        return
    in_use = tenants_in_use(store, besides=connection_id)
    for org in data.get("organisations", []):
        if org.get("tenant_id") in keep or org.get("tenant_id") in in_use:
            continue
        try:
            delete_at_xero(store, settings, grant_id, str(org.get("xero_connection_id")))
        except XeroCallFailed as exc:
            log.warning("could not remove unconfirmed organisation %s at Xero: %s",
                        org.get("tenant_id"), exc)
    if revoke and not keep:
        release_grant(store, settings, grant_id)


def disconnect(
    store: Store,
    xero_settings: XeroSettings,
    connection_id: str,
    *,
    reason: str = "disconnected by an admin",
    now: datetime | None = None,
) -> Connection:
    """Disconnect: remove the organisation at Xero, revoke the grant if unused, mark the record.

    For an invite that never connected this withdraws the invite: its link now opens a page
    saying so. Disconnecting twice is harmless.

    Raises:
        InvalidInput, NotFound: bad or unknown connection id.
        XeroCallFailed: Xero could not be reached; the record is left as it was.
        lifecycle.TransitionRefused: the status does not allow it (purging, purged).
    """
    conn = get_connection(store, connection_id)
    if conn.status == ConnectionStatus.DISCONNECTED:
        return conn
    if lifecycle.transition_for(conn.status, lifecycle.Event.DISCONNECT) is None:
        # Refused before Xero is asked anything (a purge under way, a purged record).
        raise lifecycle.TransitionRefused(conn, lifecycle.Event.DISCONNECT)
    now = now or utcnow()
    removed_at_xero = None
    if conn.status in IN_USE and conn.grant_id and conn.xero_connection_id:
        removed_at_xero = delete_at_xero(store, xero_settings, conn.grant_id,
                                         conn.xero_connection_id)
    # A flow waiting on the confirm page holds organisations allowed at Xero: let them go too.
    discard_pending(store, xero_settings, conn.connection_id)
    updated = lifecycle.apply(
        store, conn.connection_id, lifecycle.Event.DISCONNECT, status_reason=reason,
        disconnected_at=now, updated_at=now,
    )
    if conn.grant_id and conn.status in IN_USE:
        release_grant(store, xero_settings, conn.grant_id)
    log.info("disconnected %s (%s; removed at Xero: %s)", conn.connection_id,
             conn.organisation_name or "no organisation", removed_at_xero)
    return updated


def _check_token_json(token_json: Any) -> str:
    if not isinstance(token_json, dict):
        raise InvalidInput("the token file must hold a JSON object")
    refresh = token_json.get("refresh_token")
    if not isinstance(refresh, str) or not refresh.strip() or len(refresh) > 4096:
        raise InvalidInput("the token file has no usable refresh_token")
    return refresh.strip()


def import_grant(
    store: Store, xero_settings: XeroSettings, token_json: dict[str, Any],
    *, now: datetime | None = None,
) -> list[Connection]:
    """Adopt a grant made elsewhere: refresh it at once, store the rotated token, list its
    organisations as connected.

    Args:
        token_json: a Xero token response, or just ``{"refresh_token": …}``.

    Returns:
        One connected record per organisation the grant can read (existing records for the same
        organisation are updated to use the new grant rather than duplicated).

    Raises:
        InvalidInput: no usable refresh token in ``token_json``.
        XeroCallFailed: Xero refused the refresh token or could not be reached.
    """
    refresh = _check_token_json(token_json)
    now = now or utcnow()
    try:
        token_set = identity.refresh_tokens(xero_settings, refresh)
    except GrantInvalid:
        raise XeroCallFailed(
            "Xero refused the refresh token (invalid_grant): it is expired, revoked or was "
            "already used more than 30 minutes ago"
        ) from None
    except XeroError as exc:
        raise XeroCallFailed(f"could not refresh the imported token: {exc}") from None
    claims = _claims(token_set.access_token)
    grant = store.add_grant(
        token_set.raw, client_id=xero_settings.client_id,
        xero_user_id=claims.get("xero_userid"), auth_event_id=claims.get("authentication_event_id"),
        now=now,
    )
    try:
        tenants = identity.list_connections(xero_settings, token_set.access_token)
    except XeroError as exc:
        raise XeroCallFailed(
            f"the token was stored as grant {grant.grant_id}, but its organisations could not be "
            f"listed: {exc}"
        ) from None
    result = []
    for tenant in tenants:
        if tenant.get("tenantType", ORGANISATION) != ORGANISATION or not tenant.get("tenantId"):
            continue
        result.append(_adopt(store, grant.grant_id, tenant, now))
    if not result:
        log.warning("imported grant %s can read no organisation", grant.grant_id)
    return result


def _claims(access_token: str) -> dict[str, Any]:
    try:
        return identity.access_token_claims(access_token)
    except XeroError:
        return {}


def _adopt(store: Store, grant_id: str, tenant: dict[str, Any], now: datetime) -> Connection:
    tenant_id = str(tenant["tenantId"])
    name = str(tenant.get("tenantName") or "Unnamed organisation")
    fields: dict[str, Any] = {
        "status_reason": "imported",
        "tenant_id": tenant_id, "organisation_name": name,
        "xero_connection_id": str(tenant.get("id") or ""), "grant_id": grant_id,
        "invite_token_hash": None, "invite_expires_at": None, "disconnected_at": None,
        "updated_at": now,
    }
    for existing in store.connections_for_tenant(tenant_id):
        if existing.status in IN_USE:
            if existing.status != ConnectionStatus.CONNECTED:
                fields["connected_at"] = now
            return lifecycle.apply(store, existing.connection_id, lifecycle.Event.IMPORT,
                                   **fields)
    # create_connection wants an invite hash; an imported record has no link, so it is dropped.
    from auth_server.security import new_token, token_hash

    created = store.create_connection(name, "", invite_token_hash=token_hash(new_token()),
                                      invite_expires_at=now, now=now)
    return lifecycle.apply(store, created.connection_id, lifecycle.Event.IMPORT,
                           connected_at=now, **fields)


def status_label(conn: Connection) -> str:
    """The status as a person reads it, e.g. ``incomplete (cancelled at Xero)``."""
    label = conn.status.replace("_", " ")
    reason = conn.status_reason
    if reason and conn.status in (ConnectionStatus.INCOMPLETE, ConnectionStatus.LINK_OPENED):
        label += f" ({REASON_TEXT.get(reason, reason)})"
    elif reason and conn.status in (ConnectionStatus.NEEDS_RECONNECTION,
                                    ConnectionStatus.DISCONNECTED):
        label += f" ({reason})"
    if conn.status == ConnectionStatus.CONNECTED:
        label += f" · {sync_label(conn)}"
    return label


def sync_label(conn: Connection) -> str:
    """``syncing`` / ``synced`` / ``sync failed`` / ``waiting for first sync``."""
    if conn.sync_state == "syncing":
        return "syncing"
    if conn.sync_state == "failed":
        return "sync failed"
    if conn.last_synced_at is not None or conn.sync_state == "synced":
        return "synced"
    return "waiting for first sync"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def connection_row(conn: Connection) -> dict[str, Any]:
    """One connection as plain JSON-ready data (never a secret)."""
    return {
        "connection_id": conn.connection_id,
        "company": conn.company,
        "email": conn.email,
        "status": conn.status,
        "status_reason": conn.status_reason,
        "status_label": status_label(conn),
        "organisation_name": conn.organisation_name,
        "tenant_id": conn.tenant_id,
        "invited_at": _iso(conn.invited_at),
        "invite_expires_at": _iso(conn.invite_expires_at),
        "link_opened_at": _iso(conn.link_opened_at),
        "connected_at": _iso(conn.connected_at),
        "disconnected_at": _iso(conn.disconnected_at),
        "sync_state": conn.sync_state,
        "last_synced_at": _iso(conn.last_synced_at),
        "last_sync_rows": conn.last_sync_rows,
        "last_sync_outcome": conn.last_sync_outcome,
    }


def list_connection_rows(store: Store, *, now: datetime | None = None) -> list[dict[str, Any]]:
    """Every connection record as a dict (what ``xero-elt connections [--json]`` shows).

    Invites whose link ran out are marked ``expired`` first, so the list never shows a dead
    invite as waiting.
    """
    expire_stale_invites(store, now=now)
    return [connection_row(c) for c in store.list_connections()]
