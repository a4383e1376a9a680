"""Consenting again to an organisation that is already connected at Xero, in both of the
sandbox's `reconsent_auth_event` modes (REFERENCE 0: reports say Xero keeps the old
`authEventId`; the sandbox then keeps `updatedDateUtc` too, so nothing marks the re-consent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

import pytest

from auth_server.invites import create_invite, resend_invite
from auth_server.oauth import consent_organisations, grant_organisations
from connector import identity
from tests.auth_server.helpers import RunningAuth

# Sandbox loads one after another (~5 s a test): `make test` runs these, `make test-fast` does not.
pytestmark = pytest.mark.slow

MODES = ["keep", "new"]


def _xero_tenants(auth: RunningAuth) -> set[str]:
    return {c["tenantId"] for c in auth.sandbox.connections()
            if c.get("client_id") == auth.app["client_id"]}


def _reaches(auth: RunningAuth, grant_id: str, tenant_id: str) -> bool:
    """Does the stored grant's token reach the organisation at Xero?"""
    token = auth.store.get_grant(grant_id).access_token
    return tenant_id in {t["tenantId"] for t in identity.list_connections(auth.xero, token)}


@pytest.mark.parametrize("mode", MODES)
def test_a_needs_reconnection_record_reconnects_with_its_new_grant(
    auth: RunningAuth, org: dict[str, Any], mode: str
) -> None:
    auth.sandbox.settings(reconsent_auth_event=mode)
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    auth.customer().connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    old_grant = auth.connection(conn.connection_id).grant_id
    # The connector lost access (e.g. a role change: 403 while Xero still lists the
    # organisation), so the connection at Xero is still there when the admin consents again.
    auth.store.update_connection(conn.connection_id, status="needs_reconnection",
                                 status_reason="Xero refused access to the organisation")

    _, new_link = resend_invite(auth.store, auth.settings, conn.connection_id)
    customer = auth.customer()
    page = customer.to_confirm(new_link, org["admin"], tenant_ids=[org["tenantId"]])
    assert escape(org["name"]) in page.text
    page = customer.confirm()
    assert page.status_code == 303
    assert "Connection Successful" in customer.get("/connect/done").text

    fixed = auth.connection(conn.connection_id)
    assert (fixed.status, fixed.status_reason, fixed.tenant_id) == (
        "connected", None, org["tenantId"])
    assert fixed.grant_id != old_grant
    assert auth.store.get_grant(fixed.grant_id).status == "active"
    assert _reaches(auth, fixed.grant_id, org["tenantId"])
    assert _xero_tenants(auth) == {org["tenantId"]}


@pytest.mark.parametrize("mode", MODES)
def test_a_new_invite_for_an_organisation_already_connected_at_xero_connects(
    auth: RunningAuth, org: dict[str, Any], mode: str
) -> None:
    auth.sandbox.settings(reconsent_auth_event=mode)
    # Connected at Xero for this user and app, but not in our store (e.g. a flow that broke off).
    auth.sandbox.grant(auth.app["client_id"], org["admin"]["email"], [org["tenantId"]])
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])

    page = auth.customer().connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    assert "Connection Successful" in page.text
    done = auth.connection(conn.connection_id)
    assert (done.status, done.tenant_id) == ("connected", org["tenantId"])
    assert _reaches(auth, done.grant_id, org["tenantId"])


def test_when_nothing_marks_the_consent_every_organisation_is_offered(
    auth: RunningAuth, sandbox: Any
) -> None:
    assert sandbox.settings()["reconsent_auth_event"] == "keep"
    first, second = sandbox.tenants()[:2]
    both = [first["tenantId"], second["tenantId"]]
    admin = sandbox.admin(both)
    sandbox.grant(auth.app["client_id"], admin["email"], both)  # leftovers at Xero
    _, link = create_invite(auth.store, auth.settings, second["name"], admin["email"])

    customer = auth.customer()
    page = customer.to_confirm(link, admin, tenant_ids=[second["tenantId"]])
    assert "Choose the one you chose at Xero just now" in page.text
    assert page.text.count('type="radio" name="tenant"') == 2
    page = customer.confirm(second["tenantId"])
    assert page.status_code == 303
    assert _xero_tenants(auth) == {second["tenantId"]}  # the unchosen one was let go


def test_in_keep_mode_a_new_organisation_beside_a_connected_one_is_found_by_its_event(
    auth: RunningAuth, sandbox: Any
) -> None:
    first, second = sandbox.tenants()[:2]
    admin = sandbox.admin([first["tenantId"], second["tenantId"]])
    _, link1 = create_invite(auth.store, auth.settings, first["name"], admin["email"])
    auth.customer().connect(link1, admin, tenant_ids=[first["tenantId"]])

    _, link2 = create_invite(auth.store, auth.settings, second["name"], admin["email"])
    page = auth.customer().to_confirm(link2, admin, tenant_ids=[second["tenantId"]])
    assert escape(second["name"]) in page.text
    assert escape(first["name"]) not in page.text
    assert "You allowed access to this organisation" in page.text


# -- finding this consent's organisations, rule by rule ------------------------------------------

START = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)


def _row(tenant: str, event: str, updated: datetime) -> dict[str, Any]:
    stamp = f"{updated:%Y-%m-%dT%H:%M:%S}.{updated.microsecond:06d}0"
    return {"id": f"c-{tenant}", "authEventId": event, "tenantId": tenant,
            "tenantType": "ORGANISATION", "tenantName": tenant.upper(),
            "createdDateUtc": stamp, "updatedDateUtc": stamp}


ROWS = [
    _row("old", "ev-old", START - timedelta(days=3)),
    _row("touched", "ev-old", START + timedelta(seconds=40)),  # re-consented, event kept
    _row("new", "ev-now", START + timedelta(seconds=41)),
]


def _tenants(orgs: list[Any]) -> list[str]:
    return [o.tenant_id for o in orgs]


def test_by_event_alone_without_a_start_time() -> None:
    assert _tenants(consent_organisations(ROWS, "ev-now")) == ["new"]


def test_connections_updated_since_the_flow_began_belong_to_it() -> None:
    assert _tenants(consent_organisations(ROWS, "ev-now", since=START)) == ["touched", "new"]
    later = START + timedelta(minutes=5)
    assert _tenants(consent_organisations(ROWS, "ev-now", since=later)) == ["new"]


def test_a_reconnection_finds_its_own_organisation() -> None:
    assert _tenants(consent_organisations(ROWS, "ev-none", reconnecting="old")) == ["old"]
    assert consent_organisations(ROWS, "ev-none", since=START + timedelta(hours=1)) == []
    assert _tenants(grant_organisations(ROWS)) == ["old", "touched", "new"]


def test_without_an_event_id_the_newest_connections_count() -> None:
    assert _tenants(consent_organisations(ROWS, None)) == ["new"]
