"""The one set-up of "a grant and connected organisations" and "Xero settings pointing at the
sandbox", for the tests, the benchmarks and the reference load.

What the auth server leaves behind after customers connect: a grant in the store (from
``POST /_sandbox/grants``, no browser) and one ``connected`` connection per organisation.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from connector.settings import XeroSettings, load_settings
from sandbox.handle import SandboxHandle, XeroGrant, make_grant, xero_urls
from store import Store, lifecycle


def store_grant(store: Store, grant: XeroGrant, names: dict[str, str],
                tenant_ids: list[str] | None = None, *, email: str = "admin@example.test",
                reconnect: bool = False) -> str:
    """Store ``grant`` and a ``connected`` connection per organisation; the grant's id.

    Args:
        store: the credential and connection store.
        grant: a grant from the sandbox (``sandbox.handle.make_grant``).
        names: organisation name per tenant id (``GET /_sandbox/tenants``).
        tenant_ids: the organisations to connect (default: every one the grant reaches).
        email: the invited address the connections record.
        reconnect: reuse an organisation's earlier connection record, as a reconnection
            through the auth server would, instead of adding one.
    """
    stored = store.add_grant(grant.token_response, client_id=grant.client_id)
    now = datetime.now(UTC)
    for tenant_id in tenant_ids or grant.tenant_ids:
        earlier = store.connections_for_tenant(tenant_id) if reconnect else []
        conn = earlier[-1] if earlier else store.create_connection(
            names[tenant_id], email, invite_token_hash=f"h-{stored.grant_id}-{tenant_id}",
            invite_expires_at=now + timedelta(days=7),
        )
        lifecycle.apply(
            store, conn.connection_id, lifecycle.Event.IMPORT, status_reason=None,
            tenant_id=tenant_id,
            organisation_name=names[tenant_id], grant_id=stored.grant_id, connected_at=now,
            disconnected_at=None,
        )
    return stored.grant_id


def connect_organisations(
    store: Store, sandbox: SandboxHandle, app: dict[str, Any],
    tenant_ids: list[str] | None = None, *, email: str = "admin@example.test",
) -> tuple[XeroGrant, str]:
    """A new grant of ``app`` over ``tenant_ids`` (default all), stored with its organisations
    connected; the grant and its id in the store."""
    grant = make_grant(sandbox, app, tenant_ids=tenant_ids)
    names = {t["tenantId"]: t["name"] for t in sandbox.tenants()}
    return grant, store_grant(store, grant, names, tenant_ids, email=email)


def sandbox_settings(sandbox_url: str, app: dict[str, Any], **overrides: Any) -> XeroSettings:
    """Connector settings for ``app`` at the sandbox, with fast backoff (tests, tools)."""
    values: dict[str, Any] = {
        "client_id": app["client_id"], "client_secret": app.get("client_secret") or "",
        **xero_urls(sandbox_url), "backoff_seconds": 0.05, "max_backoff_seconds": 0.5,
    }
    values.update(overrides)
    return load_settings(**values)


__all__ = ["connect_organisations", "sandbox_settings", "store_grant"]
