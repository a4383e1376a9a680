"""Xero's identity service and connections API: the authorize/sign-in/consent pages, the token,
revocation and userinfo endpoints, OIDC discovery and JWKS, and `GET|DELETE /connections`.

The browser leg follows Xero's: `GET /identity/connect/authorize` checks the client, the exact
redirect URI (http only for localhost/127.0.0.1) and the scopes - any of them wrong shows an
error page and never redirects. Then a sign-in form (email, password, "Log in"; a session cookie
keeps the user signed in), then the consent page: the app's name, the scopes in words, the
user's organisations as a list with the first selected, "Allow access" and "Cancel". A standard
(non-admin) user gets "You don't have permission" instead, and going back sends the app
`error=access_denied&error_description=not_admin`. Allow connects the chosen organisations in one
consent event (its id is the `authEventId`) and redirects with `code`, `scope`, `state` and
`session_state`. Organisations already connected are marked so; at the app's connection cap
(`sb.settings.max_connections`) the ones that would add a connection are greyed out, and a post
choosing one anyway is refused (REFERENCE 0).
"""

from __future__ import annotations

import html
import re
import secrets
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode, urlsplit

from sandbox.gateway import apply_faults, bearer_grant
from sandbox.grants import (
    AuthCode,
    ConnectionLimitReached,
    OAuthError,
    PendingAuthorization,
    subject_id,
    user_claims,
)
from sandbox.web import (
    JSON_TYPE,
    Request,
    Response,
    Route,
    html_response,
    json_response,
    redirect,
)

if TYPE_CHECKING:
    from sandbox.state import Sandbox

SESSION_COOKIE = "xero_sandbox_session"
# Next to an organisation greyed out at the app's connection cap (Xero's words UNCONFIRMED).
BLOCKED_NOTE = "Unavailable: this app has reached its connection limit"
LIMIT_REFUSAL = (
    "This app has reached its connection limit: choose an organisation that is already "
    "connected, or select Cancel"
)
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

# Scopes Xero knows, with what the consent page says each one allows (in our words).
SCOPE_WORDS: dict[str, str] = {
    "openid": "Confirm who you are",
    "profile": "See your name",
    "email": "See your email address",
    "offline_access": "Keep access to your data when you are not using the app",
    "accounting.transactions": "View and manage your business transactions",
    "accounting.transactions.read": "View your business transactions",
    "accounting.invoices": "View and manage your invoices",
    "accounting.invoices.read": "View your invoices",
    "accounting.payments": "View and manage your payments",
    "accounting.payments.read": "View your payments",
    "accounting.banktransactions": "View and manage your bank transactions",
    "accounting.banktransactions.read": "View your bank transactions",
    "accounting.manualjournals": "View and manage your manual journals",
    "accounting.manualjournals.read": "View your manual journals",
    "accounting.classicexpenses": "View and manage your expense claims",
    "accounting.classicexpenses.read": "View your expense claims",
    "accounting.reports.read": "View your reports",
    "accounting.reports.tenninetynine.read": "View your 1099 reports",
    "accounting.journals.read": "View your general ledger",
    "accounting.budgets.read": "View your budgets",
    "accounting.settings": "View and manage your organisation settings",
    "accounting.settings.read": "View your organisation settings (chart of accounts, tax rates, "
    "tracking categories)",
    "accounting.contacts": "View and manage your contacts",
    "accounting.contacts.read": "View your contacts",
    "accounting.attachments": "View and manage your attachments",
    "accounting.attachments.read": "View your attachments",
    "payroll.employees": "View and manage your employees",
    "payroll.employees.read": "View your employees",
    "payroll.payruns": "View and manage your pay runs",
    "payroll.payruns.read": "View your pay runs",
    "payroll.payslip": "View and manage your payslips",
    "payroll.payslip.read": "View your payslips",
    "payroll.timesheets": "View and manage your timesheets",
    "payroll.timesheets.read": "View your timesheets",
    "payroll.settings": "View and manage your payroll settings",
    "payroll.settings.read": "View your payroll settings",
    "files": "View and manage your files",
    "files.read": "View your files",
    "assets": "View and manage your fixed assets",
    "assets.read": "View your fixed assets",
    "projects": "View and manage your projects",
    "projects.read": "View your projects",
}
_GRANULAR_REPORT = re.compile(r"^accounting\.reports\.[a-z]+\.read$")
_PKCE_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43,128}$")


def is_known_scope(scope: str) -> bool:
    """Would Xero accept this scope on an authorize request?"""
    return scope in SCOPE_WORDS or bool(_GRANULAR_REPORT.match(scope))


def redirect_uri_problem(uri: str) -> str | None:
    """Why Xero would refuse to register this redirect URI, or None."""
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"redirect URI {uri!r} is not an absolute http(s) URL"
    if parts.fragment:
        return f"redirect URI {uri!r} must not have a fragment"
    if parts.scheme == "http" and (parts.hostname or "") not in LOOPBACK_HOSTS:
        return f"redirect URI {uri!r} must use https (http is allowed for localhost/127.0.0.1 only)"
    return None


# --- pages ----------------------------------------------------------------------------------

_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;background:#f4f6f8;
margin:0;color:#1f2933}
header{background:#13b5ea;color:#fff;padding:14px 24px;font-weight:700;font-size:20px}
main{max-width:460px;margin:40px auto;background:#fff;border-radius:8px;padding:28px 32px;
box-shadow:0 1px 4px rgba(0,0,0,.12)}
label{display:block;margin:14px 0 4px;font-weight:600}
input[type=email],input[type=password]{width:100%;box-sizing:border-box;padding:9px;font-size:15px;
border:1px solid #b8c2cc;border-radius:4px}
fieldset{border:1px solid #d9e0e6;border-radius:6px;margin:16px 0;padding:8px 14px}
fieldset label{font-weight:400}
button{font-size:15px;padding:9px 18px;border-radius:4px;border:1px solid #0078c8;
margin:18px 8px 0 0;cursor:pointer}
button.primary{background:#0078c8;color:#fff}
button.secondary{background:#fff;color:#0078c8}
.error{color:#b42318;font-weight:600}
.muted{color:#616e7c;font-size:14px}
label.disabled{color:#9aa5b1}
button:disabled{opacity:.45;cursor:not-allowed}
"""


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><header>Xero</header><main>{body}</main></body></html>"
    )


def error_page(error: str, description: str, status: int = 400) -> Response:
    """Xero's own error screen: shown instead of redirecting to an untrusted redirect URI."""
    body = (
        "<h1>Sorry, something went wrong</h1>"
        f'<p class="error">Error: {html.escape(error)} : {html.escape(description)}</p>'
        '<p class="muted">Go back to the app you came from and try again, or contact its '
        "developer.</p>"
    )
    return html_response(status, _page("Error", body))


def _login_page(rid: str, app_name: str, message: str | None = None, email: str = "") -> Response:
    error = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    body = (
        "<h1>Log in to Xero</h1>"
        f'<p class="muted">to continue to {html.escape(app_name)}</p>{error}'
        '<form method="post" action="/identity/login">'
        f'<input type="hidden" name="rid" value="{html.escape(rid)}">'
        '<label for="email">Email address</label>'
        f'<input id="email" type="email" name="email" value="{html.escape(email)}" '
        'autocomplete="username" required autofocus>'
        '<label for="password">Password</label>'
        '<input id="password" type="password" name="password" '
        'autocomplete="current-password" required>'
        '<button class="primary" type="submit">Log in</button>'
        "</form>"
    )
    return html_response(200, _page("Log in | Xero", body), {"Cache-Control": "no-store"})


def _organisation_choice(
    org: Any, kind: str, *, checked: bool, note: str | None, disabled: bool
) -> str:
    attrs = (" checked" if checked else "") + (" disabled" if disabled else "")
    extra = f' <span class="muted">{html.escape(note)}</span>' if note else ""
    label = '<label class="disabled">' if disabled else "<label>"
    return (
        f'{label}<input type="{kind}" name="tenant_id" '
        f'value="{html.escape(org.tenant_id)}"{attrs}> {html.escape(org.name)}{extra}</label>'
    )


def _consent_page(
    rid: str,
    app_name: str,
    user: Any,
    scopes: list[str],
    organisations: list[Any],
    *,
    multi: bool,
    message: str | None = None,
    connected: frozenset[str] = frozenset(),
    blocked: frozenset[str] = frozenset(),
    status: int = 200,
) -> Response:
    """The consent form. `connected`: organisations this user already connected to the app
    (marked, still choosable); `blocked`: greyed out because the app is at its connection cap."""
    items = "".join(
        f'<li>{html.escape(SCOPE_WORDS.get(s, s))} <span class="muted">({html.escape(s)})</span>'
        "</li>"
        for s in scopes
    )
    kind = "checkbox" if multi else "radio"
    choosable = [org.tenant_id for org in organisations if org.tenant_id not in blocked]
    choices = "".join(
        _organisation_choice(
            org,
            kind,
            checked=bool(choosable) and org.tenant_id == choosable[0],
            disabled=org.tenant_id in blocked,
            note=BLOCKED_NOTE
            if org.tenant_id in blocked
            else "Already connected"
            if org.tenant_id in connected
            else None,
        )
        for org in organisations
    )
    switch = (
        f'<a href="/identity/consent?rid={quote(rid)}">Connect one organisation</a>'
        if multi
        else f'<a href="/identity/consent?rid={quote(rid)}&amp;multi=1">'
        "Connect more than one organisation</a>"
    )
    limit = (
        f'<p class="error">{html.escape(app_name)} has reached its limit of connected '
        "organisations, so it can't be connected to another one. Contact "
        f"{html.escape(app_name)} for help, or select Cancel.</p>"
        if not choosable
        else ""
    )
    error = f'<p class="error" role="alert">{html.escape(message)}</p>' if message else ""
    body = (
        f"<h1>{html.escape(app_name)} wants to access your Xero data</h1>"
        f'<p class="muted">Logged in as {html.escape(user.email)} · '
        f'<a href="/identity/logout?rid={quote(rid)}">Not you?</a></p>{error}'
        f"<h2>{html.escape(app_name)} will be able to</h2><ul>{items}</ul>"
        '<form method="post" action="/identity/consent">'
        f'<input type="hidden" name="rid" value="{html.escape(rid)}">'
        "<fieldset><legend>Select the organisation to connect</legend>"
        f'{choices}</fieldset>{limit}<p class="muted">{switch}</p>'
        '<button class="primary" type="submit" name="action" value="allow"'
        f"{'' if choosable else ' disabled'}>Allow access</button>"
        '<button class="secondary" type="submit" name="action" value="cancel">Cancel'
        "</button></form>"
    )
    return html_response(status, _page("Allow access | Xero", body), {"Cache-Control": "no-store"})


def _no_permission_page(rid: str, app_name: str, organisations: list[Any]) -> Response:
    names = ", ".join(html.escape(o.name) for o in organisations) or "your organisation"
    body = (
        "<h1>You don't have permission</h1>"
        f"<p>You don't have permission to connect {html.escape(app_name)} to {names}. "
        "Only users with admin access to an organisation can connect apps to it.</p>"
        "<p>Ask an admin of the organisation to connect the app, or to give you admin access.</p>"
        f'<p><a href="/identity/consent/back?rid={quote(rid)}">Back to '
        f"{html.escape(app_name)}</a></p>"
    )
    return html_response(200, _page("No permission | Xero", body), {"Cache-Control": "no-store"})


def _expired_page() -> Response:
    return error_page(
        "invalid_request", "This sign-in has expired; go back to the app and start again"
    )


def _with_params(uri: str, params: dict[str, str | None]) -> str:
    query = urlencode({k: v for k, v in params.items() if v is not None}, quote_via=quote)
    return f"{uri}{'&' if '?' in uri else '?'}{query}"


# --- the browser leg ------------------------------------------------------------------------


def authorize(sb: Sandbox, req: Request, _params: dict[str, str]) -> Response:
    """`GET /identity/connect/authorize`."""
    q = req.query
    app = sb.grants.apps.get(q.get("client_id", ""))
    if app is None:
        return error_page("unauthorized_client", "Unknown client or client not enabled")
    redirect_uri = q.get("redirect_uri", "")
    if redirect_uri not in app.redirect_uris:
        return error_page("invalid_request", "Invalid redirect_uri")
    scopes = q.get("scope", "").split()
    if not scopes:
        return error_page("invalid_request", "Missing scope")
    if not all(is_known_scope(s) for s in scopes):
        return error_page("unauthorized_client", "Invalid scope for client")
    state = q.get("state")

    def refuse(error: str, description: str) -> Response:
        return redirect(
            _with_params(
                redirect_uri, {"error": error, "error_description": description, "state": state}
            )
        )

    if q.get("response_type") != "code":
        return refuse("unsupported_response_type", "response_type must be code")
    challenge = q.get("code_challenge")
    if challenge is not None:
        if q.get("code_challenge_method") != "S256":
            return refuse("invalid_request", "code_challenge_method must be S256")
        if not _PKCE_CHALLENGE.match(challenge):
            return refuse("invalid_request", "invalid code_challenge")
    elif app.client_secret is None:
        return refuse("invalid_request", "code_challenge is required")
    pending = PendingAuthorization(
        client_id=app.client_id,
        redirect_uri=redirect_uri,
        scopes=list(dict.fromkeys(scopes)),
        state=state,
        code_challenge=challenge,
        nonce=q.get("nonce"),
        created=sb.clock.now(),
    )
    rid = sb.grants.start_authorization(pending)
    signed_in = sb.grants.sessions.get(req.cookie(SESSION_COOKIE) or "")
    if signed_in is not None:
        return redirect(f"/identity/consent?rid={quote(rid)}")
    return _login_page(rid, app.name)


def login(sb: Sandbox, req: Request, _params: dict[str, str]) -> Response:
    """`POST /identity/login`: the sign-in form."""
    form = req.form()
    pending = sb.grants.pending_request(form.get("rid", ""), sb.clock.now())
    if pending is None:
        return _expired_page()
    app = sb.grants.apps[pending.client_id]
    email = form.get("email", "").strip()
    user = sb.user(email) if email else None
    if user is None or not secrets.compare_digest(form.get("password", ""), user.password):
        return _login_page(form["rid"], app.name, "Your email or password is incorrect", email)
    session = sb.grants.sign_in(user.email)
    cookie = f"{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Lax"
    return redirect(f"/identity/consent?rid={quote(form['rid'])}", {"Set-Cookie": cookie})


def logout(sb: Sandbox, req: Request, _params: dict[str, str]) -> Response:
    """`GET /identity/logout`: end the sign-in session (back to the login form if `rid`)."""
    session = req.cookie(SESSION_COOKIE)
    if session:
        with sb.grants.lock:
            sb.grants.sessions.pop(session, None)
    clear = f"{SESSION_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
    pending = sb.grants.pending_request(req.query.get("rid", ""), sb.clock.now())
    if pending is not None:
        pending.user_email = None
        response = _login_page(req.query["rid"], sb.grants.apps[pending.client_id].name)
    else:
        response = html_response(200, _page("Logged out | Xero", "<h1>You have logged out</h1>"))
    response.headers["Set-Cookie"] = clear
    return response


def _consent_context(sb: Sandbox, req: Request, rid: str) -> tuple[Any, Any, Any] | Response:
    pending = sb.grants.pending_request(rid, sb.clock.now())
    if pending is None:
        return _expired_page()
    app = sb.grants.apps.get(pending.client_id)
    email = sb.grants.sessions.get(req.cookie(SESSION_COOKIE) or "")
    user = sb.user(email) if email else None
    if app is None:
        return _expired_page()
    if user is None:
        return _login_page(rid, app.name)
    pending.user_email = user.email
    return pending, app, user


def _organisations_of(sb: Sandbox, user: Any) -> list[Any]:
    return [org for t in user.tenant_ids if (org := sb.organisation(t)) is not None]


def _already_connected(sb: Sandbox, user: Any, client_id: str) -> frozenset[str]:
    """Organisations this user has connected to the app (a re-consent adds no connection)."""
    return frozenset(c.tenant_id for c in sb.grants.connections_of(user.email, client_id))


def _blocked_at_cap(
    sb: Sandbox, client_id: str, organisations: list[Any], connected: frozenset[str]
) -> frozenset[str]:
    """At the app's cap, every organisation that would add a connection is greyed out."""
    cap = sb.settings.max_connections
    if cap is None or sb.grants.app_connection_count(client_id) < cap:
        return frozenset()
    return frozenset(o.tenant_id for o in organisations if o.tenant_id not in connected)


def consent_page(sb: Sandbox, req: Request, _params: dict[str, str]) -> Response:
    """`GET /identity/consent?rid=…`: what the app asks for, and which organisation(s)."""
    rid = req.query.get("rid", "")
    context = _consent_context(sb, req, rid)
    if isinstance(context, Response):
        return context
    pending, app, user = context
    organisations = _organisations_of(sb, user)
    if user.role != "admin":
        return _no_permission_page(rid, app.name, organisations)
    multi = req.query.get("multi") == "1"
    connected = _already_connected(sb, user, app.client_id)
    return _consent_page(
        rid,
        app.name,
        user,
        pending.scopes,
        organisations,
        multi=multi,
        connected=connected,
        blocked=_blocked_at_cap(sb, app.client_id, organisations, connected),
    )


def consent_decision(sb: Sandbox, req: Request, _params: dict[str, str]) -> Response:
    """`POST /identity/consent`: Allow access or Cancel."""
    form = req.form_all()
    rid = (form.get("rid") or [""])[0]
    context = _consent_context(sb, req, rid)
    if isinstance(context, Response):
        return context
    pending, app, user = context
    action = (form.get("action") or ["allow"])[0]
    if action == "cancel":
        sb.grants.pending.pop(rid, None)
        return redirect(
            _with_params(pending.redirect_uri, {"error": "access_denied", "state": pending.state})
        )
    if user.role != "admin":
        return _deny_not_admin(sb, pending, rid)
    organisations = {org.tenant_id: org for org in _organisations_of(sb, user)}
    chosen = list(dict.fromkeys(form.get("tenant_id", [])))
    connected = _already_connected(sb, user, app.client_id)
    blocked = _blocked_at_cap(sb, app.client_id, list(organisations.values()), connected)

    def again(message: str, status: int = 200) -> Response:
        return _consent_page(
            rid,
            app.name,
            user,
            pending.scopes,
            list(organisations.values()),
            multi=len(chosen) > 1,
            message=message,
            connected=connected,
            blocked=blocked,
            status=status,
        )

    if not chosen or any(t not in organisations for t in chosen):
        return again("Select an organisation to connect")
    if any(t in blocked for t in chosen):
        return again(LIMIT_REFUSAL, status=403)
    now = sb.clock.now()
    try:
        auth_event_id = sb.grants.connect(
            user.email,
            app.client_id,
            [(t, organisations[t].name) for t in chosen],
            now,
            keep_auth_event=sb.settings.reconsent_auth_event == "keep",
            max_connections=sb.settings.max_connections,
        )
    except ConnectionLimitReached:  # below the cap, but this many would pass it
        return again(LIMIT_REFUSAL, status=403)
    scopes = sb.grants.consent_scopes(user.email, app.client_id, pending.scopes)
    code = sb.grants.issue_code(
        AuthCode(
            client_id=app.client_id,
            redirect_uri=pending.redirect_uri,
            user_email=user.email,
            scopes=scopes,
            auth_event_id=auth_event_id,
            auth_time=now,
            session_id=secrets.token_hex(16),
            code_challenge=pending.code_challenge,
            nonce=pending.nonce,
            issued_at=now,
        )
    )
    sb.grants.pending.pop(rid, None)
    params = {
        "code": code,
        "scope": " ".join(scopes),
        "state": pending.state,
        "session_state": f"{secrets.token_urlsafe(32)}.{secrets.token_hex(16)}",
    }
    return redirect(_with_params(pending.redirect_uri, params))


def consent_back(sb: Sandbox, req: Request, _params: dict[str, str]) -> Response:
    """`GET /identity/consent/back?rid=…`: the way back from "You don't have permission"."""
    rid = req.query.get("rid", "")
    pending = sb.grants.pending_request(rid, sb.clock.now())
    if pending is None:
        return _expired_page()
    return _deny_not_admin(sb, pending, rid)


def _deny_not_admin(sb: Sandbox, pending: PendingAuthorization, rid: str) -> Response:
    sb.grants.pending.pop(rid, None)
    params = {"error": "access_denied", "error_description": "not_admin", "state": pending.state}
    return redirect(_with_params(pending.redirect_uri, params))


# --- the token service ----------------------------------------------------------------------

_NO_STORE = {"Cache-Control": "no-store, no-cache, max-age=0", "Pragma": "no-cache"}
_TOKEN_JSON = "application/json; charset=UTF-8"  # noqa: S105 - a content type


def _oauth_error(error: OAuthError) -> Response:
    response = json_response(error.status, {"error": error.error}, _NO_STORE)
    response.headers["Content-Type"] = _TOKEN_JSON
    return response


def token(sb: Sandbox, req: Request, _params: dict[str, str]) -> Response:
    """`POST /connect/token`: authorization_code and refresh_token grants."""
    form = req.form()
    now = sb.clock.now()
    try:
        app = sb.grants.authenticate_client(req.headers.get("authorization"), form)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            code, redirect_uri = form.get("code"), form.get("redirect_uri")
            if not code or not redirect_uri:
                raise OAuthError("invalid_request")
            issued = sb.grants.redeem_code(app, code, redirect_uri, form.get("code_verifier"), now)
            grant = sb.grants.create_grant(
                app.client_id,
                issued.user_email,
                issued.scopes,
                issued.auth_event_id,
                now,
                auth_time=issued.auth_time,
                session_id=issued.session_id,
                nonce=issued.nonce,
            )
        elif grant_type == "refresh_token":
            refresh_token = form.get("refresh_token")
            if not refresh_token:
                raise OAuthError("invalid_request")
            grant = sb.grants.grant_for_refresh(app, refresh_token, now)
        else:
            raise OAuthError("unsupported_grant_type")
        user = sb.user(grant.user_email)
        if user is None:  # the user was removed from the world
            raise OAuthError("invalid_grant")
        body = sb.grants.token_set(grant, user, now)
    except OAuthError as error:
        return _oauth_error(error)
    response = json_response(200, body, _NO_STORE)
    response.headers["Content-Type"] = _TOKEN_JSON
    return response


def revocation(sb: Sandbox, req: Request, _params: dict[str, str]) -> Response:
    """`POST /connect/revocation`: 200 whether or not the token was known (RFC 7009)."""
    form = req.form()
    try:
        app = sb.grants.authenticate_client(req.headers.get("authorization"), form)
        if not form.get("token"):
            raise OAuthError("invalid_request")
    except OAuthError as error:
        return _oauth_error(error)
    sb.grants.revoke_token(app, form["token"])
    return Response(200, dict(_NO_STORE))


def userinfo(sb: Sandbox, req: Request, _params: dict[str, str]) -> Response:
    """`GET|POST /connect/userinfo`: the signed-in user's claims."""
    grant = bearer_grant(sb, req, sb.clock.now())
    user = None if isinstance(grant, Response) else sb.user(grant.user_email)
    if isinstance(grant, Response) or user is None or "openid" not in grant.scopes:
        return Response(401, {"WWW-Authenticate": 'Bearer error="invalid_token"'})
    claims = {"sub": subject_id(user.xero_userid), "xero_userid": user.xero_userid}
    claims.update(user_claims(user, grant.scopes))
    return json_response(200, claims)


def discovery(sb: Sandbox, _req: Request, _params: dict[str, str]) -> Response:
    """`GET /.well-known/openid-configuration`, pointing at this sandbox."""
    base = sb.url
    return json_response(
        200,
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/identity/connect/authorize",
            "token_endpoint": f"{base}/connect/token",
            "userinfo_endpoint": f"{base}/connect/userinfo",
            "revocation_endpoint": f"{base}/connect/revocation",
            "jwks_uri": f"{base}/.well-known/openid-configuration/jwks",
            "scopes_supported": sorted(SCOPE_WORDS),
            "claims_supported": [
                "sub",
                "xero_userid",
                "global_session_id",
                "preferred_username",
                "email",
                "given_name",
                "family_name",
                "name",
                "authentication_event_id",
            ],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        },
    )


def jwks(sb: Sandbox, _req: Request, _params: dict[str, str]) -> Response:
    """`GET /.well-known/openid-configuration/jwks`."""
    return json_response(200, sb.signer.jwks())


# --- connections ----------------------------------------------------------------------------


def _connections_call(
    sb: Sandbox, req: Request
) -> tuple[Any, Response | None, dict[str, str], Any]:
    """Token check, app-minute limit and faults shared by GET and DELETE /connections."""
    grant = bearer_grant(sb, req, sb.clock.now())
    if isinstance(grant, Response):
        return None, grant, {}, None
    admission = sb.limits.admit(grant.client_id, None)
    headers = {**admission.headers, "Xero-Correlation-Id": str(uuid.uuid4())}
    if not admission.admitted:
        headers["X-Rate-Limit-Problem"] = admission.problem or "appminute"
        if admission.retry_after is not None:
            headers["Retry-After"] = str(admission.retry_after)
        return None, Response(429, headers), headers, None
    sb.latency()
    replacement, late_fault = apply_faults(sb, req, None)
    if replacement is not None:
        replacement.headers = {**headers, **replacement.headers}
        return None, replacement, headers, None
    return grant, None, headers, late_fault


def list_connections(sb: Sandbox, req: Request, _params: dict[str, str]) -> Response:
    """`GET /connections[?authEventId=…]`: a bare array of this user's connections for the app."""
    grant, refused, headers, late_fault = _connections_call(sb, req)
    if refused is not None:
        return refused
    event = next((v for k, v in req.query.items() if k.lower() == "autheventid"), None)
    rows = []
    for conn in sb.grants.connections_of(grant.user_email, grant.client_id):
        if event is not None and conn.auth_event_id != event:
            continue
        org = sb.organisation(conn.tenant_id)
        rows.append(conn.as_xero(org.name if org is not None else None))
    response = json_response(200, rows, headers)
    response.headers["Content-Type"] = JSON_TYPE
    response.fault = late_fault
    return response


def delete_connection(sb: Sandbox, req: Request, params: dict[str, str]) -> Response:
    """`DELETE /connections/{id}`: 204, or 404 when it is not this user's and app's."""
    grant, refused, headers, late_fault = _connections_call(sb, req)
    if refused is not None:
        return refused
    if not sb.grants.delete_connection(params["id"], grant.user_email, grant.client_id):
        response = json_response(
            404, {"Title": "Not Found", "Status": 404, "Detail": "Connection not found"}, headers
        )
    else:
        response = Response(204, headers)
    response.fault = late_fault
    return response


def routes() -> list[Route]:
    """Identity and connections routes for the server's table."""
    return [
        Route("GET", r"/identity/connect/authorize", authorize),
        Route("POST", r"/identity/login", login),
        Route("GET", r"/identity/logout", logout),
        Route("GET", r"/identity/consent", consent_page),
        Route("POST", r"/identity/consent", consent_decision),
        Route("GET", r"/identity/consent/back", consent_back),
        Route("POST", r"/connect/token", token),
        Route("POST", r"/connect/revocation", revocation),
        Route("GET", r"/connect/userinfo", userinfo),
        Route("POST", r"/connect/userinfo", userinfo),
        Route("GET", r"/\.well-known/openid-configuration", discovery),
        Route("GET", r"/\.well-known/openid-configuration/jwks", jwks),
        Route("GET", r"/connections", list_connections, dispatch_faults=False),
        Route("DELETE", r"/connections/(?P<id>[^/]+)", delete_connection, dispatch_faults=False),
    ]
