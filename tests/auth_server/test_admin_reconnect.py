"""The admin page offers a reconnect link for a connection that needs reconnection; sending it
keeps the record."""

from __future__ import annotations

from typing import Any

from auth_server.invites import create_invite
from tests.auth_server.helpers import RunningAuth


def test_the_admin_sends_a_reconnect_link_for_the_same_record(
        auth: RunningAuth, org: dict[str, Any]) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    auth.customer().connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    auth.store.update_connection(conn.connection_id, status="needs_reconnection",
                                 status_reason="Xero refused access to the organisation")
    with auth.admin() as admin:
        assert "Send reconnect link" in admin.get("/admin").text
        sent = admin.post(f"/admin/connections/{conn.connection_id}/resend")
    assert sent.status_code == 200
    assert "previous link no longer works" in sent.text
    record = auth.connection(conn.connection_id)
    assert (record.status, record.tenant_id) == ("needs_reconnection", org["tenantId"])
    assert [c.connection_id for c in auth.store.list_connections()] == [conn.connection_id]
