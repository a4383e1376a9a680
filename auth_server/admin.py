"""The admin page: connections with status and last sync; create and resend invites; disconnect.

Access: ``Authorization: Bearer <admin token>`` (scripts) or a session cookie obtained by signing
in with the token at ``/admin/login``. Without either: 401, and nothing is listed. The token is
compared in constant time; wrong tokens (sign-in form or bearer) make that client back off
(``throttle``), while the right token always gets through. Session ids are random and stored
only as hashes (in the store's flow table, encrypted, with an expiry).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from auth_server import connections, invites
from auth_server.errors import AuthServerError, InvalidInput, InviteError, NotFound, XeroCallFailed
from auth_server.render import Markup, escape, render, tag
from auth_server.security import (
    cookie,
    cookie_name,
    looks_like_token,
    new_token,
    same,
    token_hash,
)
from auth_server.web import (
    Request,
    Response,
    csrf_ok,
    json_response,
    message,
    page,
    redirect,
)
from store import Connection, ConnectionStatus, Store, lifecycle, utcnow
from store.egress import Egress, egress, size
from store.jobs import Job

log = logging.getLogger(__name__)

SESSION_COOKIE = "xelt_admin"
SESSION_TTL = timedelta(hours=12)
LOGIN_PURPOSE = "admin-login"
ADMIN_PURPOSE = "admin"


@dataclass(frozen=True)
class AdminAuth:
    """Who is asking: a bearer client (no CSRF needed) or a signed-in browser session."""

    session_id: str | None  # None for bearer clients

    @property
    def is_bearer(self) -> bool:
        """Scripts with the token in a header: no cookie, so no CSRF to guard against."""
        return self.session_id is None


def _session_key(session_id: str) -> str:
    return "admin:" + token_hash(session_id)


def authenticate(request: Request) -> AdminAuth | None:
    """The caller's admin credentials, or None."""
    token = request.app.settings.admin_token
    if not token:
        return None
    header = request.headers.get("Authorization") or ""
    if header[:7].lower() == "bearer ":
        return AdminAuth(None) if same(header[7:].strip(), token) else None
    session_id = request.cookie(SESSION_COOKIE)
    if looks_like_token(session_id):
        assert session_id is not None
        data = request.app.store.get_flow(_session_key(session_id))
        if data and same(data.get("token_hash"), token_hash(token)):
            return AdminAuth(session_id)
    return None


def _unauthorized(request: Request) -> Response:
    if not request.app.settings.admin_token:
        response = message(request, "The admin page is switched off", [
            Markup("Set <code>admin_token</code> under <code>[auth_server]</code> in "
                   "<code>.dlt/secrets.toml</code> (or <code>AUTH_SERVER__ADMIN_TOKEN</code>) "
                   "and restart the server."),
        ], status=401, tone="warning", reference=False)
    else:
        # Not an error: nothing went wrong, so no support reference and no warning in the log.
        response = message(request, "Sign in to see connections", [
            "This page is for the people who manage connections.",
        ], status=401, reference=False, action=tag("p", tag("a", "Sign in", href="/admin/login",
                                           class_="button primary"), class_="actions"))
    response.headers.append(("WWW-Authenticate", 'Bearer realm="xero-elt admin"'))
    return response


def admin_only(handler: Callable[[Request, AdminAuth], Response]) -> Callable[[Request], Response]:
    """Wrap a handler: 401 without credentials."""

    def wrapped(request: Request) -> Response:
        auth = authenticate(request)
        if auth is None:
            if _sent_bearer(request) and request.app.settings.admin_token:
                return _wrong_token(request, _unauthorized(request))
            return _unauthorized(request)
        if auth.is_bearer:
            request.app.admin_failures.success(request.client)
        return handler(request, auth)

    wrapped.__doc__ = handler.__doc__
    return wrapped


def _topbar(request: Request, auth: AdminAuth) -> Markup:
    if auth.is_bearer:
        return Markup("")
    csrf = request.app.csrf.token(auth.session_id or "", ADMIN_PURPOSE)
    return Markup(
        '<form method="post" action="/admin/logout">'
        f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
        '<button type="submit" class="button secondary small">Sign out</button></form>'
    )


# -- sign in / out -------------------------------------------------------------------------------

def login_page(request: Request, error: str = "", status: int = 200) -> Response:
    """``GET /admin/login``."""
    browser = request.browser_id(create=True) or ""
    content = render(
        "admin_login.html", csrf=request.app.csrf.token(browser, LOGIN_PURPOSE),
        error=tag("p", error, class_="form-error", role="alert") if error else "",
    )
    return page(request, "Sign in", content, status=status)


def _sent_bearer(request: Request) -> bool:
    return (request.headers.get("Authorization") or "")[:7].lower() == "bearer "


def _wrong_token(request: Request, refused: Response) -> Response:
    """Count a wrong token against this client: ``refused`` while it may retry, else 429."""
    wait = request.app.admin_failures.failure_logged(request.client, "admin token", log)
    if not wait:
        return refused
    response = message(request, "Too many attempts", [
        f"Wait {wait:.0f} seconds before trying again.",
    ], status=429, tone="error")
    response.headers.append(("Retry-After", str(max(1, round(wait)))))
    return response


def login_submit(request: Request) -> Response:
    """``POST /admin/login``: the admin token → a session cookie."""
    settings = request.app.settings
    if not settings.admin_token:
        return _unauthorized(request)
    try:
        form = request.form("token")
    except InvalidInput as exc:
        return login_page(request, str(exc), status=400)
    if not csrf_ok(request, form, request.browser_id(), LOGIN_PURPOSE):
        return login_page(request, "The form expired; please sign in again.", status=403)
    if not same(form.get("token", ""), settings.admin_token):
        return _wrong_token(request, login_page(request, "That token is not right.", status=401))
    request.app.admin_failures.success(request.client)
    session_id = new_token()
    request.app.store.put_flow(
        _session_key(session_id), {"token_hash": token_hash(settings.admin_token)},
        expires_at=utcnow() + SESSION_TTL,
    )
    response = redirect("/admin")
    response.headers.append(("Set-Cookie", cookie(
        cookie_name(SESSION_COOKIE, https=settings.is_https), session_id,
        secure=request.secure, path="/admin",
        max_age=int(SESSION_TTL.total_seconds()), same_site="Strict",
    )))
    return response


def logout(request: Request) -> Response:
    """``POST /admin/logout``: forget the session."""
    session_id = request.cookie(SESSION_COOKIE)
    if looks_like_token(session_id):
        assert session_id is not None
        try:
            form = request.form()
        except InvalidInput:
            form = {}
        if csrf_ok(request, form, session_id, ADMIN_PURPOSE):
            request.app.store.delete_flow(_session_key(session_id))
    response = redirect("/admin/login")
    response.headers.append(("Set-Cookie", cookie(
        cookie_name(SESSION_COOKIE, https=request.app.settings.is_https), "",
        secure=request.secure, path="/admin", max_age=0, same_site="Strict",
    )))
    return response


# -- the connections page ------------------------------------------------------------------------

def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value else "–"


def _badge(conn: Connection, failed_purge: Job | None = None) -> Markup:
    tone = {
        ConnectionStatus.CONNECTED: "ok", ConnectionStatus.INCOMPLETE: "warn",
        ConnectionStatus.NEEDS_RECONNECTION: "bad", ConnectionStatus.EXPIRED: "warn",
        ConnectionStatus.PURGING: "bad" if failed_purge else "warn",
    }.get(ConnectionStatus(conn.status), "")
    badge = tag("span", conn.status.replace("_", " "), class_=f"badge {tone}".strip())
    detail = ""
    if conn.status != ConnectionStatus.CONNECTED:  # the sync column speaks for connected ones
        detail = connections.status_label(conn).removeprefix(conn.status.replace("_", " "))
        detail = detail.strip(" ·()")
    if failed_purge is not None:  # still `purging`: no run loads it, but data may remain
        detail = (f"purge failed {_when(failed_purge.finished_at)}: {failed_purge.outcome}; "
                  "ask for the purge again (API or `xero-elt purge`)")
    return Markup(badge + (tag("span", detail, class_="sub") if detail else ""))


def _failed_purges(store: Store, conns: list[Connection]) -> dict[str, Job]:
    """The last purge job of each connection still ``purging``, when that job failed."""
    failed = {}
    for conn in conns:
        if conn.status == ConnectionStatus.PURGING:
            last = next((j for j in store.list_jobs(conn.connection_id) if j.kind == "purge"),
                        None)
            if last is not None and last.state == "failed":
                failed[conn.connection_id] = last
    return failed


def _last_sync(conn: Connection, sent: Egress) -> Markup:
    if conn.status != ConnectionStatus.CONNECTED and conn.last_synced_at is None:
        return Markup("–")
    lines = [tag("span", connections.sync_label(conn))]
    if conn.last_synced_at:
        lines.append(tag("span", _when(conn.last_synced_at), class_="sub"))
        if conn.last_sync_rows is not None:
            lines.append(tag("span", f"{conn.last_sync_rows:,} rows", class_="sub"))
    mine = sent.of(conn.tenant_id)
    if mine["bytes_30_days"]:
        lines.append(tag("span", f"from Xero: {size(mine['bytes_30_days'])} in 30 days, "
                                 f"{size(mine['bytes_month_projected'])} projected this month",
                         class_="sub"))
    return Markup("".join(lines))


def _actions(request: Request, auth: AdminAuth, conn: Connection) -> Markup:
    csrf = request.app.csrf.token(auth.session_id or "", ADMIN_PURPOSE)
    parts = []
    cid = escape(conn.connection_id)
    if conn.status == ConnectionStatus.PURGED:
        return Markup("")  # kept for the audit trail only
    if conn.status != ConnectionStatus.CONNECTED:
        label = "New invite" if conn.status == ConnectionStatus.DISCONNECTED else "Resend invite"
        if conn.status == ConnectionStatus.DISCONNECTED and not conn.tenant_id:
            label = "Resend invite"
        if conn.status == ConnectionStatus.NEEDS_RECONNECTION:
            label = "Send reconnect link"  # the same record comes back connected
        parts.append(Markup(
            f'<form method="post" action="/admin/connections/{cid}/resend">'
            f'<input type="hidden" name="csrf_token" value="{escape(csrf)}">'
            f'<button type="submit" class="button secondary small">{escape(label)}</button>'
            "</form>"
        ))
    if conn.status != ConnectionStatus.DISCONNECTED:
        label = "Disconnect" if conn.tenant_id else "Withdraw"
        parts.append(tag("a", label, href=f"/admin/connections/{conn.connection_id}/disconnect",
                         class_="button secondary small"))
    return Markup(" ".join(parts))


def _rows(request: Request, auth: AdminAuth, conns: list[Connection], sent: Egress) -> Markup:
    if not conns:
        return Markup('<tr><td colspan="6" class="empty">No connections yet. Invite a company '
                      "above.</td></tr>")
    rows = []
    failed = _failed_purges(request.app.store, conns)
    for conn in conns:
        org = tag("span", conn.organisation_name or "–")
        if conn.tenant_id:
            org = Markup(org + tag("span", conn.tenant_id, class_="sub"))
        company = Markup(tag("span", conn.company or "–")
                         + tag("span", f"{conn.email} · {conn.connection_id}".strip(" ·"),
                               class_="sub"))
        rows.append(Markup(
            # data-label: on a phone each row is a card and each cell says what it is.
            "<tr>" + tag("td", company, data_label="Company")
            + tag("td", org, data_label="Organisation")
            + tag("td", _badge(conn, failed.get(conn.connection_id)), data_label="Status")
            + tag("td", _last_sync(conn, sent), data_label="Last sync")
            + tag("td", _when(conn.invited_at), data_label="Invited")
            + tag("td", _actions(request, auth, conn), class_="actions-cell") + "</tr>"
        ))
    return Markup("\n".join(rows))


def _summary(conns: list[Connection]) -> str:
    counts: dict[str, int] = {}
    for conn in conns:
        counts[conn.status] = counts.get(conn.status, 0) + 1
    if not conns:
        return "No connections yet"
    order = [s.value for s in ConnectionStatus]
    return " · ".join(f"{counts[s]} {s.replace('_', ' ')}" for s in order if s in counts)


def _take_flash(request: Request, auth: AdminAuth) -> Markup:
    if auth.session_id is None:
        return Markup("")
    key = _session_key(auth.session_id)
    data = request.app.store.get_flow(key)
    if not data or not data.get("flash"):
        return Markup("")
    flash = data.pop("flash")
    request.app.store.put_flow(key, data, expires_at=utcnow() + SESSION_TTL)
    return _flash_markup(flash)


def _flash_markup(flash: dict[str, str]) -> Markup:
    text = tag("span", flash.get("text", ""))
    if flash.get("link"):
        text = Markup(text + Markup("<br>Invite link (also in the email): ")
                      + tag("code", flash["link"]))
    tone = "flash bad" if flash.get("tone") == "bad" else "flash"
    return tag("div", text, class_=tone, role="status")


def _capacity_warning(request: Request) -> Markup:
    """A banner as the app nears Xero's cap on connected organisations (with the figures)."""
    capacity = connections.connection_capacity(request.app.store,
                                               request.app.settings.max_connections)
    if capacity.warning is None:
        return Markup("")
    tone = "flash bad" if capacity.level == "reached" else "flash warn"
    return tag("div", capacity.warning, class_=tone, role="status")


def _egress_warning(sent: Egress) -> Markup:
    """A banner when the month's projected egress nears the allowance (with the figures)."""
    return tag("div", sent.warning, class_="flash warn", role="status") if sent.warning \
        else Markup("")


def _connections_page(request: Request, auth: AdminAuth, *, notice: Markup | str = "",
                      status: int = 200, company: str = "", email: str = "") -> Response:
    invites.expire_stale_invites(request.app.store)
    conns = sorted(request.app.store.list_connections(), key=lambda c: c.invited_at,
                   reverse=True)
    sent = egress(request.app.store, utcnow())
    content = render(
        "admin.html", summary=_summary(conns), rows=_rows(request, auth, conns, sent),
        notice=Markup(_capacity_warning(request) + _egress_warning(sent)
                      + _take_flash(request, auth) + escape(notice)),
        csrf_invite=request.app.csrf.token(auth.session_id or "", ADMIN_PURPOSE),
        company=company, email=email,
    )
    return page(request, "Connections", content, status=status,
                topbar_extra=_topbar(request, auth), body_class="admin")


@admin_only
def connections_page(request: Request, auth: AdminAuth) -> Response:
    """``GET /admin``: every connection with status and last sync."""
    return _connections_page(request, auth)


@admin_only
def connections_json(request: Request, auth: AdminAuth) -> Response:
    """``GET /admin/api/connections``: the same rows as ``xero-elt connections --json``."""
    return json_response(connections.list_connection_rows(request.app.store))


def _admin_form(request: Request, auth: AdminAuth, *fields: str) -> dict[str, str] | Response:
    try:
        form = request.form(*fields)
    except InvalidInput as exc:
        return _connections_page(request, auth, notice=_flash_markup(
            {"text": str(exc), "tone": "bad"}), status=400)
    if not auth.is_bearer and not csrf_ok(request, form, auth.session_id, ADMIN_PURPOSE):
        return message(request, "This form has expired", [
            "Nothing was changed. Go back to the connections page and try again.",
        ], status=403, tone="error",
            action=tag("p", tag("a", "Back to connections", href="/admin",
                                class_="button primary"), class_="actions"))
    return form


def _done(request: Request, auth: AdminAuth, flash: dict[str, str]) -> Response:
    """After a change: back to the list (PRG for browsers; the page itself for bearer clients)."""
    if auth.session_id is None:
        return _connections_page(request, auth, notice=_flash_markup(flash))
    key = _session_key(auth.session_id)
    data = request.app.store.get_flow(key) or {}
    request.app.store.put_flow(key, {**data, "flash": flash}, expires_at=utcnow() + SESSION_TTL)
    return redirect("/admin")


@admin_only
def create_invite(request: Request, auth: AdminAuth) -> Response:
    """``POST /admin/invites``: a new invite (the email goes out; the link is shown once)."""
    form = _admin_form(request, auth, "company", "email")
    if isinstance(form, Response):
        return form
    try:
        conn, link = invites.create_invite(request.app.store, request.app.settings,
                                           form.get("company", ""), form.get("email", ""))
    except InvalidInput as exc:
        return _connections_page(
            request, auth, notice=_flash_markup({"text": str(exc), "tone": "bad"}), status=400,
            company=form.get("company", "")[:200], email=form.get("email", "")[:254],
        )
    except AuthServerError as exc:
        return _done(request, auth, {"text": f"Could not create the invite: {exc}", "tone": "bad"})
    return _done(request, auth, {
        "text": f"Invite {conn.connection_id} sent to {conn.email} for {conn.company}.",
        "link": link,
    })


@admin_only
def resend(request: Request, auth: AdminAuth) -> Response:
    """``POST /admin/connections/<id>/resend``: a new link; the old one stops working."""
    form = _admin_form(request, auth)
    if isinstance(form, Response):
        return form
    try:
        conn, link = invites.resend_invite(request.app.store, request.app.settings,
                                           request.params["connection_id"])
    except NotFound as exc:
        return message(request, "No such connection", [str(exc)], status=404, tone="error")
    except (InviteError, InvalidInput) as exc:
        return _done(request, auth, {"text": str(exc), "tone": "bad"})
    return _done(request, auth, {
        "text": f"New invite link for {conn.company} ({conn.connection_id}) sent to {conn.email};"
                " the previous link no longer works.",
        "link": link,
    })


def _get_connection(request: Request) -> Connection | Response:
    try:
        return invites.get_connection(request.app.store, request.params["connection_id"])
    except (NotFound, InvalidInput) as exc:
        return message(request, "No such connection", [str(exc)], status=404, tone="error")


@admin_only
def disconnect_page(request: Request, auth: AdminAuth) -> Response:
    """``GET /admin/connections/<id>/disconnect``: are you sure?"""
    conn = _get_connection(request)
    if isinstance(conn, Response):
        return conn
    content = render(
        "admin_disconnect.html", organisation=conn.organisation_name or conn.company,
        company=conn.company, product=request.app.settings.product_name,
        connection_id=conn.connection_id,
        csrf=request.app.csrf.token(auth.session_id or "", ADMIN_PURPOSE),
    )
    return page(request, "Disconnect", content, topbar_extra=_topbar(request, auth),
                body_class="admin")


@admin_only
def disconnect(request: Request, auth: AdminAuth) -> Response:
    """``POST /admin/connections/<id>/disconnect``: at Xero, then here."""
    conn = _get_connection(request)
    if isinstance(conn, Response):
        return conn
    form = _admin_form(request, auth)
    if isinstance(form, Response):
        return form
    try:
        conn = connections.disconnect(request.app.store, request.app.xero, conn.connection_id)
    except (XeroCallFailed, lifecycle.TransitionRefused) as exc:
        return _done(request, auth, {"text": f"Nothing changed: {exc}", "tone": "bad"})
    return _done(request, auth, {
        "text": f"Disconnected {conn.organisation_name or conn.company} ({conn.connection_id})."
    })
