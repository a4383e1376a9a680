"""Every status and troubleshooting path of the connection flow, over HTTP against the sandbox."""

from __future__ import annotations

from datetime import timedelta
from html import escape
from typing import Any

from auth_server import flow
from auth_server.connections import disconnect, list_connection_rows
from auth_server.invites import create_invite, resend_invite
from store import utcnow
from tests.auth_server.helpers import RunningAuth


def _xero_tenants(auth: RunningAuth) -> set[str]:
    """Organisations connected to our app at the sandbox (any user)."""
    return {c["tenantId"] for c in auth.sandbox.connections()
            if c.get("client_id") == auth.app["client_id"]}


def test_not_an_admin_is_told_to_forward_the_email(auth: RunningAuth, org: dict[str, Any]) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], "bookkeeper@acme.test")
    customer = auth.customer()
    customer.open(link)
    customer.choose_xero()
    outcome = customer.consent(customer.next(), auth.sandbox.standard_user())
    assert outcome.params["error_description"] == "not_admin"

    page = customer.callback(outcome)
    assert page.status_code == 200
    assert "forward the invitation email to your Xero admin" in page.text
    record = auth.connection(conn.connection_id)
    assert (record.status, record.status_reason) == ("incomplete", "no_permission")
    assert record.grant_id is None
    assert _xero_tenants(auth) == set()


def test_cancel_at_xero_then_the_same_link_restarts_the_flow(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()
    customer.open(link)
    customer.choose_xero()
    page = customer.callback(customer.consent(customer.next(), org["admin"], action="cancel"))
    assert "You cancelled at Xero" in page.text
    assert "Start again" in page.text
    record = auth.connection(conn.connection_id)
    assert (record.status, record.status_reason) == ("incomplete", "cancelled")

    # "Start again" (the visit is still valid) and the link itself both restart the flow.
    assert "Share your financial information" in customer.get("/connect").text
    page = customer.connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    assert "Connection Successful" in page.text
    assert auth.connection(conn.connection_id).status == "connected"


def test_window_closed_at_xero_becomes_incomplete_abandoned(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()
    customer.open(link)
    customer.choose_xero()
    customer.next()  # ... and the window is closed at Xero's sign-in page
    record = auth.connection(conn.connection_id)
    assert (record.status, record.status_reason) == ("link_opened", "authorizing")

    assert flow.sweep(auth.store, auth.settings, auth.xero) == []  # not yet
    later = utcnow() + timedelta(minutes=auth.settings.flow_ttl_minutes + 1)
    [changed] = flow.sweep(auth.store, auth.settings, auth.xero, now=later)
    assert (changed.status, changed.status_reason) == ("incomplete", "abandoned")
    # The link still works while the invite is valid.
    assert "Share your financial information" in customer.open(link).text


def test_code_exchange_failure_is_incomplete_and_restartable(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()
    customer.open(link)
    customer.choose_xero()
    outcome = customer.consent(customer.next(), org["admin"], tenant_ids=[org["tenantId"]])
    auth.sandbox.advance(6 * 60)  # codes live 5 minutes at Xero

    page = customer.callback(outcome)
    assert page.status_code == 502
    assert "We could not finish connecting" in page.text
    record = auth.connection(conn.connection_id)
    assert (record.status, record.status_reason) == ("incomplete", "code_exchange_failed")
    assert auth.store.list_grants() == []

    page = customer.connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    assert "Connection Successful" in page.text


def test_declining_the_company_disconnects_it_at_xero(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()
    customer.to_confirm(link, org["admin"], tenant_ids=[org["tenantId"]])
    assert _xero_tenants(auth) == {org["tenantId"]}
    assert auth.connection(conn.connection_id).status_reason == "confirming"

    page = customer.post("/connect/confirm", {"action": "cancel"})
    assert "Nothing was connected" in page.text
    record = auth.connection(conn.connection_id)
    assert (record.status, record.status_reason) == ("incomplete", "not_confirmed")
    assert _xero_tenants(auth) == set()
    [grant] = auth.store.list_grants()
    assert grant.status == "revoked"


def test_window_closed_on_the_confirm_page_disconnects_at_xero(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    _conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    auth.customer().to_confirm(link, org["admin"], tenant_ids=[org["tenantId"]])
    later = utcnow() + timedelta(minutes=auth.settings.flow_ttl_minutes + 1)
    [changed] = flow.sweep(auth.store, auth.settings, auth.xero, now=later)
    assert (changed.status, changed.status_reason) == ("incomplete", "not_confirmed")
    assert _xero_tenants(auth) == set()


def test_several_organisations_offer_a_choice_and_the_others_are_disconnected(
    auth: RunningAuth, sandbox: Any
) -> None:
    tenants = sandbox.tenants()
    both = [t["tenantId"] for t in tenants]
    admin = sandbox.admin(both)
    conn, link = create_invite(auth.store, auth.settings, "Group", admin["email"])
    customer = auth.customer()
    page = customer.to_confirm(link, admin, tenant_ids=both)
    assert all(escape(t["name"]) in page.text for t in tenants)
    assert page.text.count('type="radio" name="tenant"') == 2
    assert _xero_tenants(auth) == set(both)

    # Garbage instead of a tenant changes nothing.
    page = customer.post("/connect/confirm", {"action": "confirm", "tenant": "nope"})
    assert page.status_code == 400
    assert "Choose one of the organisations" in page.text
    assert auth.connection(conn.connection_id).status == "link_opened"

    page = customer.post("/connect/confirm", {"action": "confirm", "tenant": both[1]})
    assert page.status_code == 303
    record = auth.connection(conn.connection_id)
    assert (record.status, record.tenant_id) == ("connected", both[1])
    assert _xero_tenants(auth) == {both[1]}


def test_only_this_consents_organisations_are_offered(auth: RunningAuth, sandbox: Any) -> None:
    first, second = sandbox.tenants()[:2]
    admin = sandbox.admin([first["tenantId"], second["tenantId"]])
    _, link1 = create_invite(auth.store, auth.settings, first["name"], admin["email"])
    auth.customer().connect(link1, admin, tenant_ids=[first["tenantId"]])

    # The same Xero user connects the second organisation: /connections now lists both, and
    # the first one listed is the old one. Only the second belongs to this consent.
    conn2, link2 = create_invite(auth.store, auth.settings, second["name"], admin["email"])
    customer = auth.customer()
    page = customer.to_confirm(link2, admin, tenant_ids=[second["tenantId"]])
    assert escape(second["name"]) in page.text
    assert escape(first["name"]) not in page.text
    customer.confirm()
    assert auth.connection(conn2.connection_id).tenant_id == second["tenantId"]
    assert _xero_tenants(auth) == {first["tenantId"], second["tenantId"]}


def test_expired_link_shows_a_clear_page_and_the_status_is_expired(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    auth.store.update_connection(conn.connection_id,
                                 invite_expires_at=utcnow() - timedelta(seconds=1))
    page = auth.customer().open(link)
    assert page.status_code == 410
    assert "This invitation has expired" in page.text
    assert "new invitation" in page.text
    assert auth.connection(conn.connection_id).status == "expired"

    # A resend brings it back with a fresh link.
    _, new_link = resend_invite(auth.store, auth.settings, conn.connection_id)
    assert auth.connection(conn.connection_id).status == "invited"
    assert "Share your financial information" in auth.customer().open(new_link).text


def test_invite_ttl_is_a_setting_and_listing_marks_expiry(auth: RunningAuth) -> None:
    start = utcnow()
    conn, _ = create_invite(auth.store, auth.settings, "Acme", "a@acme.test", now=start)
    assert conn.invite_expires_at == start + timedelta(days=7)
    rows = list_connection_rows(auth.store, now=start + timedelta(days=7, seconds=1))
    assert [r["status"] for r in rows] == ["expired"]


def test_resend_makes_the_old_link_stop_working(auth: RunningAuth, org: dict[str, Any]) -> None:
    conn, old_link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    started = auth.customer()
    started.open(old_link)
    started.choose_xero()

    again, new_link = resend_invite(auth.store, auth.settings, conn.connection_id)
    assert again.connection_id == conn.connection_id
    assert new_link != old_link
    assert len(auth.outbox()) == 2

    page = auth.customer().open(old_link)
    assert page.status_code == 404
    assert "This link is no longer valid" in page.text
    # A visit begun with the old link is stopped too.
    page = started.post("/connect/authorize", {})
    assert page.status_code == 404
    assert "no longer valid" in page.text

    page = auth.customer().connect(new_link, org["admin"], tenant_ids=[org["tenantId"]])
    assert "Connection Successful" in page.text


def test_reopening_the_link_after_connecting_says_already_connected(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    _, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    auth.customer().connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    page = auth.customer().open(link)
    assert page.status_code == 200
    assert "Already connected" in page.text


def test_wrong_organisation_disconnect_then_resent_invite_connects_the_right_one(
    auth: RunningAuth, sandbox: Any
) -> None:
    wrong, right = sandbox.tenants()[:2]
    admin = sandbox.admin([wrong["tenantId"], right["tenantId"]])
    conn, link = create_invite(auth.store, auth.settings, right["name"], admin["email"])
    auth.customer().connect(link, admin, tenant_ids=[wrong["tenantId"]])
    first = auth.connection(conn.connection_id)
    assert first.tenant_id == wrong["tenantId"]

    gone = disconnect(auth.store, auth.xero, conn.connection_id)
    assert gone.status == "disconnected"
    assert gone.disconnected_at is not None
    assert _xero_tenants(auth) == set()
    assert auth.store.get_grant(first.grant_id).status == "revoked"
    assert auth.customer().open(link).status_code == 410  # withdrawn

    new, new_link = resend_invite(auth.store, auth.settings, conn.connection_id)
    assert new.connection_id != conn.connection_id
    auth.customer().connect(new_link, admin, tenant_ids=[right["tenantId"]])

    old = auth.connection(conn.connection_id)
    assert (old.status, old.tenant_id) == ("disconnected", wrong["tenantId"])
    fixed = auth.connection(new.connection_id)
    assert (fixed.status, fixed.tenant_id) == ("connected", right["tenantId"])
    assert _xero_tenants(auth) == {right["tenantId"]}


def test_disconnect_keeps_a_grant_another_connection_uses(
    auth: RunningAuth, sandbox: Any, xero_grant: Any
) -> None:
    from auth_server.connections import import_grant

    # xero_grant's app is not ours: make a grant for our app over both organisations.
    tokens = sandbox.grant(auth.app["client_id"], xero_grant.user, xero_grant.tenant_ids)
    one, two = import_grant(auth.store, auth.xero, tokens)
    assert one.grant_id == two.grant_id

    disconnect(auth.store, auth.xero, one.connection_id)
    assert auth.store.get_grant(two.grant_id).status == "active"
    assert _xero_tenants(auth) == {two.tenant_id}
    disconnect(auth.store, auth.xero, two.connection_id)
    assert auth.store.get_grant(two.grant_id).status == "revoked"
    assert _xero_tenants(auth) == set()
    assert disconnect(auth.store, auth.xero, two.connection_id).status == "disconnected"


def test_disconnect_after_removal_inside_xero_still_works(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    auth.customer().connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    auth.sandbox.disconnect(org["tenantId"], auth.app["client_id"])  # Connected apps → remove
    assert disconnect(auth.store, auth.xero, conn.connection_id).status == "disconnected"


def test_withdrawn_invite_link_says_so(auth: RunningAuth) -> None:
    conn, link = create_invite(auth.store, auth.settings, "Acme", "a@acme.test")
    disconnect(auth.store, auth.xero, conn.connection_id)
    page = auth.customer().open(link)
    assert page.status_code == 410
    assert "This invitation was withdrawn" in page.text
    assert auth.connection(conn.connection_id).status == "disconnected"


def test_needs_reconnection_is_fixed_by_a_resent_invite(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    auth.customer().connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    old_grant = auth.connection(conn.connection_id).grant_id
    # The connector found the grant dead (invalid_grant) and marked the record.
    auth.store.set_grant_status(old_grant, "invalid", "invalid_grant")
    auth.store.update_connection(conn.connection_id, status="needs_reconnection",
                                 status_reason="Xero refused the grant")

    same, new_link = resend_invite(auth.store, auth.settings, conn.connection_id)
    assert same.connection_id == conn.connection_id
    assert same.status == "needs_reconnection"
    page = auth.customer().connect(new_link, org["admin"], tenant_ids=[org["tenantId"]])
    assert "Connection Successful" in page.text
    fixed = auth.connection(conn.connection_id)
    assert fixed.status == "connected"
    assert fixed.grant_id != old_grant


def test_statuses_are_listed_without_secrets(auth: RunningAuth, org: dict[str, Any]) -> None:
    _, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    auth.customer().connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    create_invite(auth.store, auth.settings, "Other", "o@other.test")
    rows = list_connection_rows(auth.store)
    assert {r["status"] for r in rows} == {"connected", "invited"}
    connected = next(r for r in rows if r["status"] == "connected")
    assert connected["organisation_name"] == org["name"]
    assert connected["status_label"].startswith("connected · ")
    text = repr(rows)
    grant = auth.store.list_grants()[0]
    for secret in (grant.access_token, grant.refresh_token, link.rsplit("/", 1)[1]):
        assert secret not in text
    assert "invite_token_hash" not in text


def test_the_server_sweeps_abandoned_flows_by_itself(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    from tests.auth_server.helpers import wait_for

    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()
    customer.open(link)
    customer.choose_xero()
    customer.next()
    auth.store.update_connection(conn.connection_id, updated_at=utcnow() - timedelta(hours=1))
    auth.server.start_sweeper(interval=0.05)
    wait_for(lambda: auth.connection(conn.connection_id).status == "incomplete")
    assert auth.connection(conn.connection_id).status_reason == "abandoned"


def test_two_callbacks_racing_with_one_state_exchange_the_code_once(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    import threading

    _, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()
    customer.open(link)
    customer.choose_xero()
    outcome = customer.consent(customer.next(), org["admin"], tenant_ids=[org["tenantId"]])
    cookies = dict(customer.http.cookies)
    statuses: list[int] = []

    def hit() -> None:
        with auth.http(cookies=cookies) as http:
            statuses.append(http.get(outcome.location).status_code)

    threads = [threading.Thread(target=hit) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [303, 400, 400, 400]
    assert len(auth.store.list_grants()) == 1


def test_progress_of_the_first_sync_as_json(auth: RunningAuth, org: dict[str, Any]) -> None:
    from tests.auth_server.helpers import wait_for

    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()
    assert customer.get("/connect/progress").status_code == 400  # nothing connected here yet
    customer.connect(link, org["admin"], tenant_ids=[org["tenantId"]])
    wait_for(lambda: auth.connection(conn.connection_id).sync_state == "synced")
    progress = customer.get("/connect/progress").json()
    assert progress["sync_state"] == "synced"
    assert progress["last_sync_rows"] == 123
    assert progress["organisation_name"] == org["name"]


def test_a_resend_during_confirmation_still_lets_the_allowed_organisation_go(
    auth: RunningAuth, org: dict[str, Any]
) -> None:
    conn, link = create_invite(auth.store, auth.settings, org["name"], org["admin"]["email"])
    customer = auth.customer()
    customer.to_confirm(link, org["admin"], tenant_ids=[org["tenantId"]])
    resend_invite(auth.store, auth.settings, conn.connection_id)
    page = customer.post("/connect/confirm", {"action": "confirm", "tenant": org["tenantId"]})
    assert page.status_code == 404  # the visit belonged to the replaced link
    assert _xero_tenants(auth) == {org["tenantId"]}
    later = utcnow() + timedelta(minutes=auth.settings.flow_ttl_minutes + 1)
    flow.sweep(auth.store, auth.settings, auth.xero, now=later)
    assert _xero_tenants(auth) == set()
    assert auth.connection(conn.connection_id).status == "invited"
