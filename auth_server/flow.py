"""The connection flow, step by step, over the store and Xero's OAuth (no HTTP in here).

1. ``open_link``: the invite link opens a *visit*: this browser (its ``browser id`` cookie) is
   now working on this invite.
2. ``start_authorization``: a fresh ``state`` and PKCE verifier, bound to the visit (the browser)
   and the invite's current token; returns Xero's authorize URL.
3. ``handle_callback``: checks ``state`` (single use, same browser, same invite), then either
   records why it came back without a code, or exchanges the code, stores the grant and finds the
   organisations allowed in this very consent (by ``authEventId``; a re-consented organisation
   may keep its old one, see ``oauth.consent_organisations``).
4. ``confirm`` / ``decline``: the person confirms one organisation; whatever was allowed but not
   confirmed is disconnected at Xero.
5. ``sweep``: flows left half-way (window closed at Xero or on the confirm page) become
   ``incomplete`` with the reason, and unconfirmed organisations are let go.

Every step re-checks that the invite is still the one the visit started from, so a resent link
(or an expired one) stops old visits too; and every step names the invite its page was shown for
(``invite_id``, carried in the page's CSRF token), so a page left open while another invite was
opened in the same browser cannot act on the other invite.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from auth_server import oauth
from auth_server.connections import (
    IN_USE,
    connection_capacity,
    discard_pending,
    let_go_of_consent,
    pending_key,
    release_grant,
    retire_replaced_grant,
    tenants_in_use,
)
from auth_server.errors import InvalidInput
from auth_server.invites import LinkProblem, check_open, expire_stale_invites, lookup_invite
from auth_server.oauth import Organisation
from auth_server.security import looks_like_token, new_token, same, token_hash
from auth_server.settings import AuthServerSettings
from connector import errors, identity
from connector.errors import OAuthError, XeroError
from connector.settings import XeroSettings
from store import Connection, ConnectionStatus, Store, StoreError, lifecycle, utcnow

log = logging.getLogger(__name__)

VISIT_TTL = timedelta(hours=4)
PENDING_KEEP = timedelta(days=2)  # the sweep needs the pending record after the confirm window
MAX_PARAM_LEN = 2048

# Reasons recorded on an ``incomplete`` connection (``status_reason``).
NO_PERMISSION = "no_permission"
CANCELLED = "cancelled"
ABANDONED = "abandoned"
CODE_EXCHANGE_FAILED = "code_exchange_failed"
# Xero answered ``invalid_client`` to the code exchange: the app's id or secret is wrong, which
# no retry by the customer fixes. The connection's ``status_reason`` is the sentence below.
CLIENT_REJECTED = "client_rejected"
CLIENT_REJECTED_TEXT = errors.CLIENT_REJECTED
NOT_CONFIRMED = "not_confirmed"
NO_ORGANISATION = "no_organisation"
XERO_ERROR = "xero_error"
# A Cancel at Xero while the app is at ``[auth_server] max_connections``: at the cap Xero greys
# organisations out and answers a bare access_denied, so a Cancel is read as the cap.
CONNECTION_LIMIT = "connection_limit"
# Transient markers on a ``link_opened`` connection while the person is at Xero / confirming.
AUTHORIZING = "authorizing"
CONFIRMING = "confirming"


class FlowProblem(Exception):
    """The request does not fit the flow; ``kind`` picks the page shown. Nothing was changed.

    Kinds: ``no_visit`` (no flow in this browser), ``bad_callback`` (malformed callback),
    ``unknown_state`` (expired, replayed or forged state), ``other_browser`` (state from another
    browser), ``nothing_to_confirm``, ``already_connected`` (organisation connected elsewhere),
    ``wrong_organisation`` (a reconnection link used for another organisation),
    ``other_invite`` (the page was shown for another invite than the one this browser is on now),
    ``confirm_raced`` (another request confirmed or declined this consent first).
    """

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {detail}" if detail else kind)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Visit:
    """A browser working on an invite."""

    key: str
    connection: Connection
    data: dict[str, Any]


@dataclass(frozen=True)
class CallbackResult:
    """What came back from Xero: ``confirm`` (organisations to confirm) or an incomplete reason."""

    outcome: str
    connection: Connection


def _visit_key(browser_id: str) -> str:
    return "visit:" + token_hash(browser_id)


def _state_key(state: str) -> str:
    return "state:" + token_hash(state)


# -- 1. the link ---------------------------------------------------------------------------------

def open_link(
    store: Store, token: str, browser_id: str, *, now: datetime | None = None,
    previous_browser_id: str | None = None,
) -> Connection:
    """Open an invite link in this browser (status ``invited`` → ``link_opened``).

    Args:
        browser_id: the browser's fresh id (issued on every open, so a planted one is useless).
        previous_browser_id: the id it had until now; its visit is forgotten.

    Raises:
        LinkProblem: the link is invalid, replaced, expired, withdrawn or already connected.
    """
    now = now or utcnow()
    conn = lookup_invite(store, token, now=now)
    fields: dict[str, Any] = {"link_opened_at": now, "updated_at": now}
    # One transaction (one fsync on SQLite): a burst of customers opening their links queues
    # on the store's writes, so each open costs one commit rather than two or three.
    with store.together():
        opened = False
        if conn.status == ConnectionStatus.INVITED:
            try:
                conn = lifecycle.apply(store, conn.connection_id, lifecycle.Event.OPEN_LINK,
                                       **fields)
                opened = True
            except lifecycle.TransitionRefused:
                # Another tab opened (or someone withdrew) the link since we read it: ask again,
                # so a withdrawn link says so and an opened one is simply open.
                conn = lookup_invite(store, token, now=now)
        if not opened:
            conn = store.update_connection(conn.connection_id, **fields)
        store.put_flow(
            _visit_key(browser_id),
            {"connection_id": conn.connection_id, "token_hash": conn.invite_token_hash},
            expires_at=now + VISIT_TTL,
        )
        if looks_like_token(previous_browser_id) and previous_browser_id != browser_id:
            assert previous_browser_id is not None
            store.delete_flow(_visit_key(previous_browser_id))
    return conn


def unfinished_visit(store: Store, browser_id: str | None) -> Visit | None:
    """The invite this browser is still working on (not connected yet), if any."""
    try:
        visit = current_visit(store, browser_id)
    except (FlowProblem, LinkProblem):
        return None
    return None if visit.data.get("done") else visit


def current_visit(
    store: Store, browser_id: str | None, *, now: datetime | None = None, finished_ok: bool = False,
    invite_id: str | None = None,
) -> Visit:
    """The invite this browser is working on, checked to be still usable.

    Args:
        finished_ok: accept a visit whose company is already connected (the success page).
        invite_id: the invite the submitted page was shown for; must be the visit's.

    Raises:
        FlowProblem: ``no_visit``, ``other_invite``.
        LinkProblem: the invite was resent (``invalid``), expired, withdrawn or connected.
    """
    if not looks_like_token(browser_id):
        raise FlowProblem("no_visit")
    assert browser_id is not None
    key = _visit_key(browser_id)
    data = store.get_flow(key)
    if not data:
        raise FlowProblem("no_visit")
    try:
        conn = store.get_connection(str(data.get("connection_id")))
    except StoreError:
        raise FlowProblem("no_visit") from None
    if invite_id is not None and not same(conn.connection_id, invite_id):
        raise FlowProblem("other_invite")
    if finished_ok and data.get("done") and conn.status == ConnectionStatus.CONNECTED:
        return Visit(key, conn, data)
    if not same(conn.invite_token_hash, data.get("token_hash")):
        raise LinkProblem("invalid", conn)
    return Visit(key, check_open(store, conn, now=now), data)


# -- 2. off to Xero --------------------------------------------------------------------------------

def start_authorization(
    store: Store,
    settings: AuthServerSettings,
    xero: XeroSettings,
    browser_id: str | None,
    *,
    invite_id: str | None = None,
    now: datetime | None = None,
) -> str:
    """Create ``state`` + PKCE for this visit and return Xero's authorize URL."""
    now = now or utcnow()
    visit = current_visit(store, browser_id, now=now, invite_id=invite_id)
    assert browser_id is not None
    state = new_token()
    verifier = oauth.new_code_verifier()
    store.put_flow(
        _state_key(state),
        {
            "visit": token_hash(browser_id),
            "connection_id": visit.connection.connection_id,
            "token_hash": visit.connection.invite_token_hash,
            "verifier": verifier,
            "redirect_uri": settings.redirect_uri,
            "started_at": now.isoformat(),
        },
        expires_at=now + timedelta(minutes=settings.flow_ttl_minutes),
    )
    if visit.connection.status != ConnectionStatus.NEEDS_RECONNECTION:
        lifecycle.apply(
            store, visit.connection.connection_id, lifecycle.Event.FLOW_PROGRESS,
            status_reason=AUTHORIZING, updated_at=now,
        )
    return oauth.authorize_url(
        xero.authorize_url, client_id=xero.client_id, redirect_uri=settings.redirect_uri,
        scopes=xero.scopes, state=state, challenge=oauth.code_challenge(verifier),
    )


# -- 3. back from Xero -----------------------------------------------------------------------------

def _clean_param(params: dict[str, str], name: str) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if not value or len(value) > MAX_PARAM_LEN or not value.isprintable() or not value.isascii():
        raise FlowProblem("bad_callback", f"malformed {name}")
    return value


def mark_incomplete(
    store: Store, conn: Connection, reason: str, *, now: datetime | None = None
) -> Connection:
    """Record why the flow stopped; a reconnection keeps ``needs_reconnection``."""
    now = now or utcnow()
    if conn.status == ConnectionStatus.NEEDS_RECONNECTION:
        return store.update_connection(
            conn.connection_id,
            status_reason=(f"reconnection failed: {reason}" if " " in reason
                           else f"reconnection {reason.replace('_', ' ')}"),
            updated_at=now,
        )
    return lifecycle.apply(
        store, conn.connection_id, lifecycle.Event.FLOW_STOPPED, status_reason=reason,
        updated_at=now,
    )


def _started_at(state: dict[str, Any]) -> datetime | None:
    """When this flow left for Xero (connections updated since then belong to its consent)."""
    try:
        return datetime.fromisoformat(str(state["started_at"]))
    except (KeyError, ValueError):
        return None


def _at_connection_limit(store: Store, settings: AuthServerSettings) -> bool:
    return connection_capacity(store, settings.max_connections).level == "reached"


def handle_callback(
    store: Store,
    settings: AuthServerSettings,
    xero: XeroSettings,
    browser_id: str | None,
    params: dict[str, str],
    *,
    now: datetime | None = None,
) -> CallbackResult:
    """Handle ``/callback``; see the module docstring.

    Raises:
        FlowProblem: the callback itself is not acceptable (nothing changed).
        LinkProblem: the invite changed while the person was at Xero.
    """
    now = now or utcnow()
    state = _clean_param(params, "state")
    code = _clean_param(params, "code")
    error = _clean_param(params, "error")
    error_description = _clean_param(params, "error_description")
    if not looks_like_token(state):
        raise FlowProblem("bad_callback", "missing or malformed state")
    if not code and not error:
        raise FlowProblem("bad_callback", "neither code nor error")
    assert state is not None
    data = store.get_flow(_state_key(state))
    if not data:
        raise FlowProblem("unknown_state")
    if not looks_like_token(browser_id) or not same(
        data.get("visit"), token_hash(browser_id or "")
    ):
        raise FlowProblem("other_browser")
    # Single use, across every server sharing the store: of two racing callbacks (on one
    # machine or two), only the one whose delete removed the row goes on.
    if not store.delete_flow(_state_key(state)):
        raise FlowProblem("unknown_state")
    # The browser must still be on the invite this consent started from (not one opened since).
    on_now = store.get_flow(_visit_key(browser_id or ""))
    if not on_now or not same(str(on_now.get("connection_id")), str(data.get("connection_id"))):
        raise FlowProblem("other_invite")
    try:
        conn = store.get_connection(str(data["connection_id"]))
    except StoreError:
        raise FlowProblem("unknown_state") from None
    if not same(conn.invite_token_hash, data.get("token_hash")):
        raise LinkProblem("invalid", conn)
    conn = check_open(store, conn, now=now)

    if error:
        if error == "access_denied" and error_description == "not_admin":
            reason = NO_PERMISSION
        elif error == "access_denied":
            reason = CONNECTION_LIMIT if _at_connection_limit(store, settings) else CANCELLED
        else:
            reason = XERO_ERROR
        log.info("consent for %s came back with error %s", conn.connection_id, error)
        return CallbackResult(reason, mark_incomplete(store, conn, reason, now=now))

    assert code is not None
    try:
        tokens = identity.exchange_code(
            xero, code=code, redirect_uri=str(data["redirect_uri"]),
            code_verifier=str(data["verifier"]),
        )
        if not tokens.refresh_token:
            raise InvalidInput("no refresh token: offline_access was not granted")
        claims = identity.access_token_claims(tokens.access_token)
        grant = store.add_grant(
            tokens.raw, client_id=xero.client_id, xero_user_id=claims.get("xero_userid"),
            auth_event_id=claims.get("authentication_event_id"), now=now,
        )
    except OAuthError as exc:
        if exc.error in ("invalid_client", "unauthorized_client"):
            log.error("code exchange for %s: %s", conn.connection_id, CLIENT_REJECTED_TEXT)
            return CallbackResult(CLIENT_REJECTED, mark_incomplete(
                store, conn, CLIENT_REJECTED_TEXT, now=now))
        log.warning("code exchange for %s failed: %s", conn.connection_id, exc)
        return CallbackResult(CODE_EXCHANGE_FAILED,
                              mark_incomplete(store, conn, CODE_EXCHANGE_FAILED, now=now))
    except (XeroError, InvalidInput, StoreError) as exc:
        log.warning("code exchange for %s failed: %s", conn.connection_id, exc)
        return CallbackResult(CODE_EXCHANGE_FAILED,
                              mark_incomplete(store, conn, CODE_EXCHANGE_FAILED, now=now))

    event_id = claims.get("authentication_event_id")
    try:
        # All of them, not ?authEventId=: a re-consented organisation may keep its old event.
        listed = identity.list_connections(xero, tokens.access_token)
    except XeroError as exc:
        log.warning("listing organisations for %s failed: %s", conn.connection_id, exc)
        release_grant(store, xero, grant.grant_id)
        return CallbackResult(XERO_ERROR, mark_incomplete(store, conn, XERO_ERROR, now=now))
    organisations = oauth.consent_organisations(
        listed, event_id, since=_started_at(data), reconnecting=conn.tenant_id,
    )
    guessed = not organisations
    if guessed:  # nothing marks this consent's organisations: the person chooses
        organisations = oauth.grant_organisations(listed)
    if not organisations:
        release_grant(store, xero, grant.grant_id)
        return CallbackResult(NO_ORGANISATION,
                              mark_incomplete(store, conn, NO_ORGANISATION, now=now))

    # A consent left unconfirmed earlier for this invite (another tab, a racing callback) is
    # replaced by this one in one step; organisations allowed again now are the same Xero
    # connections, so they stay, and the replaced grant is retired.
    replaced = store.swap_flow(
        pending_key(conn.connection_id),
        {
            "grant_id": grant.grant_id,
            "organisations": [o.to_dict() for o in organisations],
            "guessed": guessed,
            "visit": data["visit"],
            "token_hash": data["token_hash"],
            "created_at": now.isoformat(),
        },
        expires_at=now + PENDING_KEEP,
    )
    if replaced:
        let_go_of_consent(store, xero, conn.connection_id, replaced,
                          keep={o.tenant_id for o in organisations}, revoke=False)
        retire_replaced_grant(store, xero, str(replaced.get("grant_id")), by=grant)
    if conn.status != ConnectionStatus.NEEDS_RECONNECTION:
        conn = lifecycle.apply(
            store, conn.connection_id, lifecycle.Event.FLOW_PROGRESS, status_reason=CONFIRMING,
            updated_at=now,
        )
    return CallbackResult("confirm", conn)


# -- 4. confirm ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Confirmation:
    """What the confirm page shows: organisations that may be confirmed, and those connected
    already through another invite (shown, not selectable). ``guessed``: Xero did not mark which
    organisations this consent chose, so all the grant reaches are listed."""

    connection: Connection
    choices: list[Organisation]
    unavailable: list[tuple[Organisation, Connection]]
    guessed: bool = False


def _pending(store: Store, visit: Visit) -> dict[str, Any]:
    data = store.get_flow(pending_key(visit.connection.connection_id))
    if not data or not same(data.get("visit"), visit.key.removeprefix("visit:")):
        raise FlowProblem("nothing_to_confirm")
    return data


def confirmation(store: Store, browser_id: str | None, *, now: datetime | None = None,
                 invite_id: str | None = None) -> Confirmation:
    """The organisations this browser's consent allowed, for the confirm page."""
    visit = current_visit(store, browser_id, now=now, invite_id=invite_id)
    data = _pending(store, visit)
    in_use = tenants_in_use(store, besides=visit.connection.connection_id)
    choices, unavailable = [], []
    for org in (Organisation.from_dict(o) for o in data.get("organisations", [])):
        other = in_use.get(org.tenant_id)
        if other is not None and other.status == ConnectionStatus.CONNECTED:
            unavailable.append((org, other))
        elif visit.connection.tenant_id and org.tenant_id != visit.connection.tenant_id:
            continue  # a reconnection link reconnects its own organisation only
        else:
            choices.append(org)
    return Confirmation(visit.connection, choices, unavailable, bool(data.get("guessed")))


def confirm(
    store: Store,
    xero: XeroSettings,
    browser_id: str | None,
    tenant_id: str | None,
    *,
    invite_id: str | None = None,
    now: datetime | None = None,
) -> Connection:
    """Connect the chosen organisation; disconnect at Xero whatever else the consent allowed.

    Raises:
        InvalidInput: ``tenant_id`` is not one of the organisations offered (nothing changed).
        FlowProblem, LinkProblem: as for the other steps.
    """
    now = now or utcnow()
    offered = confirmation(store, browser_id, now=now, invite_id=invite_id)
    visit = current_visit(store, browser_id, now=now, invite_id=invite_id)
    data = _pending(store, visit)
    chosen = next((o for o in offered.choices if same(o.tenant_id, tenant_id or "")), None)
    if chosen is None:
        if any(same(o.tenant_id, tenant_id or "") for o, _ in offered.unavailable):
            raise FlowProblem("already_connected")
        raise InvalidInput("Choose one of the organisations listed.", field="tenant")
    # Of confirms racing for this consent (two tabs, a double click), only the one that takes it
    # out of the store goes on; the others change nothing, here or at Xero.
    taken = store.take_flow(pending_key(visit.connection.connection_id))
    if not taken or taken.get("grant_id") != data.get("grant_id"):
        raise FlowProblem("confirm_raced")
    conn = visit.connection
    previous_grant = conn.grant_id
    # Another invite's record for this organisation that needs reconnection is taken over here.
    for other in store.connections_for_tenant(chosen.tenant_id):
        if other.connection_id != conn.connection_id and other.status in IN_USE:
            lifecycle.apply(
                store, other.connection_id, lifecycle.Event.TAKEN_OVER,
                status_reason=f"reconnected as {conn.connection_id}", disconnected_at=now,
                invite_token_hash=None, updated_at=now,
            )
    conn = lifecycle.apply(
        store, conn.connection_id, lifecycle.Event.CONFIRM, status_reason=None,
        tenant_id=chosen.tenant_id, organisation_name=chosen.name,
        xero_connection_id=chosen.xero_connection_id, grant_id=data["grant_id"],
        connected_at=now, disconnected_at=None, updated_at=now,
    )
    let_go_of_consent(store, xero, conn.connection_id, taken, keep={chosen.tenant_id})
    if previous_grant and previous_grant != data["grant_id"]:
        release_grant(store, xero, previous_grant)
    store.put_flow(visit.key, {**visit.data, "done": True}, expires_at=now + VISIT_TTL)
    log.info("%s connected to organisation %s", conn.connection_id, chosen.tenant_id)
    return conn


def decline(store: Store, xero: XeroSettings, browser_id: str | None,
            *, now: datetime | None = None, invite_id: str | None = None) -> Connection:
    """The person did not confirm: let the allowed organisations go; status incomplete."""
    now = now or utcnow()
    visit = current_visit(store, browser_id, now=now, invite_id=invite_id)
    _pending(store, visit)
    taken = store.take_flow(pending_key(visit.connection.connection_id))
    if not taken:
        raise FlowProblem("confirm_raced")  # a confirm (or another decline) came first
    let_go_of_consent(store, xero, visit.connection.connection_id, taken)
    return mark_incomplete(store, visit.connection, NOT_CONFIRMED, now=now)


def finished_visit(store: Store, browser_id: str | None) -> Connection:
    """The connection this browser just connected (the success page and its progress)."""
    visit = current_visit(store, browser_id, finished_ok=True)
    if not visit.data.get("done"):
        raise FlowProblem("no_visit")
    return visit.connection


# -- 5. flows left half-way ------------------------------------------------------------------------

def sweep(store: Store, settings: AuthServerSettings, xero: XeroSettings,
          *, now: datetime | None = None) -> list[Connection]:
    """Expire old invites, and close flows nobody finished within ``flow_ttl_minutes``.

    Returns:
        The records whose status changed to ``incomplete`` here.
    """
    now = now or utcnow()
    expire_stale_invites(store, now=now)
    cutoff = now - timedelta(minutes=settings.flow_ttl_minutes)
    changed = []
    for conn in store.list_connections(statuses=[ConnectionStatus.LINK_OPENED.value]):
        if conn.updated_at > cutoff:
            continue
        if conn.status_reason == AUTHORIZING:
            changed.append(mark_incomplete(store, conn, ABANDONED, now=now))
        elif conn.status_reason == CONFIRMING:
            discard_pending(store, xero, conn.connection_id)
            changed.append(mark_incomplete(store, conn, NOT_CONFIRMED, now=now))
    # Consents nobody confirmed in time let go of what they allowed, whatever happened to the
    # record meanwhile (a resent link, a reconnection that keeps its status, …).
    for conn in store.list_connections():
        if conn.status == ConnectionStatus.CONNECTED:
            continue
        pending = store.get_flow(pending_key(conn.connection_id))
        if not pending:
            continue
        created = datetime.fromisoformat(str(pending.get("created_at")))
        if created > cutoff:
            continue
        discard_pending(store, xero, conn.connection_id)
        if conn.status == ConnectionStatus.NEEDS_RECONNECTION:
            mark_incomplete(store, conn, NOT_CONFIRMED, now=now)
    return changed


__all__ = [
    "CallbackResult",
    "Confirmation",
    "FlowProblem",
    "LinkProblem",
    "confirm",
    "confirmation",
    "current_visit",
    "decline",
    "finished_visit",
    "handle_callback",
    "open_link",
    "start_authorization",
    "sweep",
    "unfinished_visit",
]
