"""Xero's cap on an app's connected organisations: what the person connecting sees, what the
record says, and the warnings on the admin page as the cap nears (REFERENCE 0)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from auth_server.connections import ConnectionCapacity
from auth_server.invites import create_invite
from store import Store
from tests.auth_server.helpers import RunningAuth


def _limit(auth: RunningAuth, max_connections: int) -> None:
    """Set ``[auth_server] max_connections`` on the running server."""
    auth.server.app.settings = dataclasses.replace(auth.settings, max_connections=max_connections)


def _cancel_at_xero(auth: RunningAuth, link: str, user: dict[str, Any]) -> Any:
    customer = auth.customer()
    customer.open(link)
    customer.choose_xero()
    outcome = customer.consent(customer.next(), user, action="cancel")
    assert outcome.params["error"] == "access_denied"
    assert "error_description" not in outcome.params
    return customer.callback(outcome)


def add_connected(store: Store, count: int) -> None:
    """``count`` connected records for made-up organisations (only the count matters here)."""
    for n in range(count):
        conn = store.create_connection(f"Company {n}", "ap@example.test",
                                       invite_token_hash=f"h-{n}",
                                       invite_expires_at=datetime.now(UTC) + timedelta(days=7))
        store.update_connection(conn.connection_id, status="connected", tenant_id=f"tenant-{n}",
                                organisation_name=f"Org {n}")


def test_at_the_cap_the_person_is_told_what_happened_and_the_record_says_why(
    auth: RunningAuth, sandbox: Any
) -> None:
    first, second = sandbox.tenants()[:2]
    one_admin = sandbox.admin([first["tenantId"]])
    other_admin = sandbox.admin([second["tenantId"]])
    _, link1 = create_invite(auth.store, auth.settings, first["name"], one_admin["email"])
    auth.customer().connect(link1, one_admin, tenant_ids=[first["tenantId"]])
    sandbox.settings(max_connections=1)
    _limit(auth, 1)

    conn, link2 = create_invite(auth.store, auth.settings, second["name"], other_admin["email"])
    page = _cancel_at_xero(auth, link2, other_admin)
    assert page.status_code == 200
    assert "Xero could not connect another organisation" in page.text
    assert "free a connection or move their Xero app to a higher plan" in page.text
    assert "Start again" in page.text
    record = auth.connection(conn.connection_id)
    assert (record.status, record.status_reason) == ("incomplete", "connection_limit")
    rows = auth.admin().get("/admin/api/connections").json()
    label = next(r["status_label"] for r in rows if r["connection_id"] == conn.connection_id)
    assert label == "incomplete (the Xero app is at its connection limit)"


def test_below_the_cap_a_cancel_is_a_cancel(auth: RunningAuth, org: dict[str, Any]) -> None:
    add_connected(auth.store, 3)
    _limit(auth, 4)
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    page = _cancel_at_xero(auth, link, org["admin"])
    assert "You cancelled at Xero" in page.text
    assert auth.connection(conn.connection_id).status_reason == "cancelled"


@pytest.mark.parametrize(
    ("connected", "limit", "level"),
    [(19, 25, "ok"), (20, 25, "near"), (24, 25, "near"), (25, 25, "reached"),
     (26, 25, "reached"), (3, 5, "ok"), (4, 5, "near"), (0, 1, "ok"), (1, 1, "reached")],
)
def test_capacity_levels(connected: int, limit: int, level: str) -> None:
    capacity = ConnectionCapacity(connected, limit)
    assert capacity.level == level
    if level == "ok":
        assert capacity.warning is None
    else:
        assert f"{connected} of {limit} organisations connected" in (capacity.warning or "")


def test_admin_page_warns_near_and_at_the_cap_with_the_figures(auth: RunningAuth) -> None:
    add_connected(auth.store, 4)
    _limit(auth, 6)
    admin = auth.admin()
    assert "organisations connected" not in admin.get("/admin").text

    _limit(auth, 5)
    page = admin.get("/admin").text
    assert '<div class="flash warn" role="status">4 of 5 organisations connected: close to' in page

    _limit(auth, 4)
    page = admin.get("/admin").text
    assert '<div class="flash bad" role="status">4 of 4 organisations connected: the Xero ' \
           "app&#x27;s connection limit is reached" in page
