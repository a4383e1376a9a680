"""The control plane under `/_sandbox/` (JSON in, JSON out): what real Xero does not have but
tests, the demo and the benchmarks need - apps, organisations, users, grants without a browser,
the request log and counters, mutations, faults, limits, the clock, and reset.

Shapes are fixed by CONVENTIONS.md ("The sandbox's control plane, by example"); `docs/sandbox.md`
documents every call with an example. Errors are `{"error": "<what is wrong>"}` with 400/404.
Control calls are neither logged, rate-limited nor faulted.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sandbox.clock import parse_iso
from sandbox.faults import parse_fault
from sandbox.grants import ConnectionLimitReached
from sandbox.identity import is_known_scope, redirect_uri_problem
from sandbox.web import Request, Response, Route, control_error, json_response
from sandbox.webhooks import check_subscription
from sandbox.world import User, counts

if TYPE_CHECKING:
    from sandbox.state import Sandbox

DEFAULT_GRANT_SCOPES = (
    "openid profile email offline_access accounting.contacts.read accounting.settings.read"
)


class BadRequest(ValueError):
    """A control-plane body that cannot be honoured (400, or `status`)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


ControlHandler = Callable[["Sandbox", Request, dict[str, str]], Any]


def _json_call(handler: ControlHandler, status: int = 200) -> Callable[..., Response]:
    """Wrap a handler returning a JSON-able value; BadRequest/ValueError become `{"error"}`."""

    def call(sb: Sandbox, req: Request, params: dict[str, str]) -> Response:
        try:
            return json_response(status, handler(sb, req, params))
        except BadRequest as exc:
            return control_error(exc.status, str(exc))
        except ValueError as exc:
            return control_error(400, str(exc))

    call.__doc__ = handler.__doc__
    return call


def _body(req: Request) -> dict[str, Any]:
    body = req.json()
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    return body


def _string_list(value: Any, name: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{name!r} must be a list of strings")
    return value


def _scopes(value: Any) -> list[str]:
    scopes = value.split() if isinstance(value, str) else _string_list(value, "scopes")
    unknown = [s for s in scopes if not is_known_scope(s)]
    if not scopes or unknown:
        raise BadRequest(f"unknown or missing scopes: {unknown or scopes}")
    return list(dict.fromkeys(scopes))


# --- apps, organisations, users -------------------------------------------------------------


def create_app(sb: Sandbox, req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Register an app: {"name", "redirect_uris", "pkce"?, "client_id"?, "client_secret"?}."""
    body = _body(req)
    uris = _string_list(body.get("redirect_uris"), "redirect_uris")
    if not uris:
        raise BadRequest("'redirect_uris' needs at least one URI")
    for uri in uris:
        if (why := redirect_uri_problem(uri)) is not None:
            raise BadRequest(why)
    name = body.get("name", "My Xero app")
    if not isinstance(name, str) or not name.strip():
        raise BadRequest("'name' must be a non-empty string")
    try:
        app = sb.grants.create_app(
            name,
            uris,
            pkce=bool(body.get("pkce", False)),
            client_id=body.get("client_id"),
            client_secret=body.get("client_secret"),
        )
    except ValueError as exc:
        raise BadRequest(str(exc), 409) from exc
    return app.as_dict()


def list_apps(sb: Sandbox, _req: Request, _p: dict[str, str]) -> list[dict[str, Any]]:
    """Every registered app."""
    return [app.as_dict() for app in sb.grants.apps.values()]


def list_tenants(sb: Sandbox, _req: Request, _p: dict[str, str]) -> list[dict[str, Any]]:
    """Every organisation with its record counts (archived included)."""
    return [
        {
            "tenantId": org.tenant_id,
            "name": org.name,
            "country_code": org.country_code,
            "base_currency": org.base_currency,
            "counts": counts(org),
        }
        for org in sb.world.organisations.values()
    ]


def rename_tenant(sb: Sandbox, req: Request, params: dict[str, str]) -> dict[str, Any]:
    """Rename an organisation, as its owner can in Xero's settings: {"name"}. `/connections`
    (tenantName), `/Organisation` and the consent page show the new name at once."""
    org = sb.organisation(params.get("tenant_id"))
    if org is None:
        raise BadRequest(f"unknown tenant_id {params.get('tenant_id')!r}", 404)
    name = _body(req).get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 500:
        raise BadRequest("'name' must be a non-empty string of at most 500 characters")
    with org.lock:
        org.name = name
    return {"tenantId": org.tenant_id, "name": org.name}


def _user_dict(user: Any) -> dict[str, Any]:
    return {
        "email": user.email,
        "password": user.password,
        "role": user.role,
        "tenant_ids": list(user.tenant_ids),
        "first_name": user.first_name,
        "last_name": user.last_name,
        "xero_userid": user.xero_userid,
        # Admins can always connect apps; a Standard user only when the organisation allows it.
        "connect_apps": user.role == "admin" or user.connect_apps,
    }


ROLES = ("admin", "standard")


def _role_and_connect_apps(body: dict[str, Any], default_role: str | None) -> tuple[str, bool]:
    """`role` ("admin" | "standard") and `connect_apps` (only meaningful for standard users)."""
    role = body.get("role", default_role)
    if role not in ROLES:
        raise BadRequest("'role' is 'admin' or 'standard'")
    connect_apps = body.get("connect_apps", False)
    if not isinstance(connect_apps, bool):
        raise BadRequest("'connect_apps' must be true or false")
    if role == "admin" and "connect_apps" in body and not connect_apps:
        raise BadRequest("an admin can always connect apps: 'connect_apps' false needs "
                         "'role': 'standard'")
    return role, connect_apps and role == "standard"


def list_users(sb: Sandbox, _req: Request, _p: dict[str, str]) -> list[dict[str, Any]]:
    """Every user who can sign in."""
    return [_user_dict(u) for u in sb.world.users]


def create_user(sb: Sandbox, req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Add a user: {"email", "password", "role", "tenant_ids", "first_name"?, "last_name"?}."""
    body = _body(req)
    email, password = body.get("email"), body.get("password")
    if not isinstance(email, str) or "@" not in email:
        raise BadRequest("'email' must be an email address")
    if sb.user(email) is not None:
        raise BadRequest(f"user {email} already exists", 409)
    if not isinstance(password, str) or not password:
        raise BadRequest("'password' must be a non-empty string")
    role, connect_apps = _role_and_connect_apps(body, "admin")
    tenant_ids = _string_list(body.get("tenant_ids", []), "tenant_ids")
    missing = [t for t in tenant_ids if sb.organisation(t) is None]
    if missing:
        raise BadRequest(f"unknown tenant_ids: {missing}")
    user = User(
        email=email,
        password=password,
        role=role,
        tenant_ids=tenant_ids,
        first_name=str(body.get("first_name", "Sandbox")),
        last_name=str(body.get("last_name", "User")),
        xero_userid=str(uuid.uuid4()),
        connect_apps=connect_apps,
    )
    sb.add_user(user)
    return _user_dict(user)


USER_CHANGE_FIELDS = frozenset({"role", "connect_apps"})


def change_user(sb: Sandbox, req: Request, params: dict[str, str]) -> dict[str, Any]:
    """An organisation changes a user's role: {"role", "connect_apps"?} -> the user.

    The role holds in every organisation of the user (the sandbox keeps one role per user).
    A grant whose user is no longer an admin (nor a Standard user allowed to connect apps)
    gets 403 on accounting calls while `/connections` still lists the organisation.
    """
    user = sb.user(params.get("email", ""))
    if user is None:
        raise BadRequest(f"unknown user {params.get('email')!r}", 404)
    body = _body(req)
    unknown = sorted(set(body) - USER_CHANGE_FIELDS)
    if unknown:
        raise BadRequest(f"unknown field(s) {unknown}; a role change takes "
                         f"{sorted(USER_CHANGE_FIELDS)} and applies to all the user's "
                         "organisations")
    if "role" not in body:
        raise BadRequest("give 'role': 'admin' or 'standard'")
    user.role, user.connect_apps = _role_and_connect_apps(body, None)
    return _user_dict(user)


# --- grants and connections -----------------------------------------------------------------


def create_grant(sb: Sandbox, req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Consent without a browser: {"client_id", "user", "tenant_ids"?, "scopes"?} -> Xero's token
    response. Connects the tenants (default: all of the user's) in one consent event."""
    body = _body(req)
    app = sb.grants.apps.get(body.get("client_id") or "")
    if app is None:
        raise BadRequest(f"unknown client_id {body.get('client_id')!r}")
    user = sb.user(body.get("user") or "")
    if user is None:
        raise BadRequest(f"unknown user {body.get('user')!r}")
    if user.role != "admin" and not user.connect_apps:
        raise BadRequest(f"user {user.email} is not an admin; Xero would refuse (not_admin)")
    tenant_ids = _string_list(body.get("tenant_ids", list(user.tenant_ids)), "tenant_ids")
    orgs = [sb.organisation(t) for t in tenant_ids]
    if not tenant_ids or any(o is None or o.tenant_id not in user.tenant_ids for o in orgs):
        raise BadRequest(f"tenant_ids must be some of {user.email}'s: {user.tenant_ids}")
    scopes = _scopes(body.get("scopes", DEFAULT_GRANT_SCOPES))
    now = sb.clock.now()
    # Exactly the scopes asked for (no adding up across consents): a test wants what it says.
    try:
        auth_event_id = sb.grants.connect(
            user.email, app.client_id, [(o.tenant_id, o.name) for o in orgs], now,
            keep_auth_event=sb.settings.reconsent_auth_event == "keep",
            max_connections=sb.settings.max_connections,
        )
    except ConnectionLimitReached as exc:
        raise BadRequest(f"the app is at its connection cap ({exc.limit} organisations); "
                         "Xero would grey these organisations out", 409) from exc
    grant = sb.grants.create_grant(app.client_id, user.email, scopes, auth_event_id, now)
    return sb.grants.token_set(grant, user, now)


def list_grants(sb: Sandbox, _req: Request, _p: dict[str, str]) -> list[dict[str, Any]]:
    """Every grant (no token values)."""
    return [g.as_dict() for g in sb.grants.grants.values()]


def revoke_grants(sb: Sandbox, req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Revoke as Xero's revocation endpoint would: {"refresh_token"} or {"client_id", "user"}.
    The grants die and the user's connections for the app are removed."""
    body = _body(req)
    with sb.grants.lock:
        if "refresh_token" in body:
            rec = sb.grants.refresh.get(body["refresh_token"])
            grants = [sb.grants.grants[rec.grant_id]] if rec is not None else []
        elif "client_id" in body and "user" in body:
            email = (body["user"] or "").lower()
            grants = [
                g
                for g in sb.grants.grants.values()
                if g.client_id == body["client_id"] and g.user_email.lower() == email
            ]
        else:
            raise BadRequest("give 'refresh_token', or 'client_id' and 'user'")
        removed = 0
        for grant in grants:
            sb.grants.revoke_grant(grant)
            removed += len(
                sb.grants.remove_connections(user_email=grant.user_email, client_id=grant.client_id)
            )
    return {"revoked": len(grants), "connections_removed": removed}


def list_connections(sb: Sandbox, _req: Request, _p: dict[str, str]) -> list[dict[str, Any]]:
    """Every connection of every user and app."""
    with sb.grants.lock:
        conns = list(sb.grants.connections.values())
    return [{**c.as_xero(), "client_id": c.client_id, "user": c.user_email} for c in conns]


def disconnect(sb: Sandbox, req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """An organisation removes the app in Xero's Connected apps: {"tenant_id", "client_id"?}.
    Every user's connection of that app (or of every app) to the tenant goes; a user left with
    no connection to an app loses the app's grants too (refresh then says invalid_grant)."""
    body = _body(req)
    tenant_id = body.get("tenant_id")
    if not isinstance(tenant_id, str) or sb.organisation(tenant_id) is None:
        raise BadRequest(f"unknown tenant_id {tenant_id!r}")
    client_id = body.get("client_id")
    with sb.grants.lock:
        gone = sb.grants.remove_connections(tenant_id=tenant_id, client_id=client_id)
        revoked = 0
        for user_email, app_id in {(c.user_email, c.client_id) for c in gone}:
            if sb.grants.connections_of(user_email, app_id):
                continue
            for grant in list(sb.grants.grants.values()):
                if (
                    grant.user_email == user_email
                    and grant.client_id == app_id
                    and not grant.revoked
                ):
                    sb.grants.revoke_grant(grant)
                    revoked += 1
    return {"removed": [c.id for c in gone], "grants_revoked": revoked}


# --- log, mutations, faults, limits, clock, reset -------------------------------------------


def list_requests(sb: Sandbox, req: Request, _p: dict[str, str]) -> list[dict[str, Any]]:
    """The request log, oldest first; `?path=<prefix>` and `?tenant_id=` filter it."""
    return sb.log.entries(req.query.get("path"), req.query.get("tenant_id"))


def clear_requests(sb: Sandbox, _req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Empty the request log and the counters of /_sandbox/stats."""
    sb.log.clear()
    return {"ok": True}


def stats(sb: Sandbox, _req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Counters since the last clear: per status, per path, per tenant, 429s, faults."""
    return sb.log.stats()


def mutate(sb: Sandbox, req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Change an organisation's data now (see sandbox.mutations), or, with "after_requests",
    arm the change to happen mid-read (see sandbox.schedule)."""
    body = _body(req)
    org = sb.organisation(body.get("tenant_id"))
    if org is None:
        raise BadRequest(f"unknown tenant_id {body.get('tenant_id')!r}", 404)
    if "after_requests" in body or "path" in body:
        return _schedule_mutation(sb, org.tenant_id, body)
    return sb.apply_mutation(org, body)


def _schedule_mutation(sb: Sandbox, tenant_id: str, body: dict[str, Any]) -> dict[str, Any]:
    """Arm a mutation: {..., "after_requests": N, "path"?} -> {"ok", "scheduled", "id"}."""
    from sandbox import mutations
    from sandbox.schedule import DEFAULT_PATH, ScheduledMutation

    mutation = {k: v for k, v in body.items() if k not in ("after_requests", "path")}
    after = body.get("after_requests")
    if not isinstance(after, int) or isinstance(after, bool) or after < 0:
        raise BadRequest("'after_requests' must be a whole number >= 0 (0: before the next "
                         "matching request)")
    path = body.get("path", DEFAULT_PATH)
    if not isinstance(path, str) or not path.startswith("/"):
        raise BadRequest("'path' must be a path prefix starting with '/', e.g. "
                         f"{DEFAULT_PATH!r}")
    mutations.check_mutation(mutation)
    if mutation["op"] == "create" and mutation.get("id") is None \
            and mutation["entity"] != "tax_rates":
        mutation["id"] = str(uuid.uuid4())  # chosen now, so the answer can name it
    record_id = mutations.known_id(mutation)
    sb.schedule.arm(ScheduledMutation(tenant_id, path, after, mutation, record_id,
                                      sb.clock.now().isoformat()))
    return {"ok": True, "scheduled": True, "id": record_id}


def scheduled_mutations(sb: Sandbox, _req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """{"armed": [...], "applied": [...]}: mutations waiting for their request, and those done."""
    return sb.schedule.snapshot()


def add_fault(sb: Sandbox, req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Arm a fault (see sandbox.faults)."""
    return sb.faults.add(parse_fault(_body(req))).as_dict()


def list_faults(sb: Sandbox, _req: Request, _p: dict[str, str]) -> list[dict[str, Any]]:
    """The faults still armed."""
    return sb.faults.active()


def clear_faults(sb: Sandbox, _req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Disarm every fault."""
    return {"cleared": sb.faults.clear()}


def set_webhook(sb: Sandbox, req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Xero's webhook: {"url", "key"} -> {"url", "status": "pending"}; intent to receive runs,
    then contact creates and updates are delivered (see sandbox.webhooks)."""
    url, key = check_subscription(_body(req))
    return sb.webhooks.subscribe(url, key)


def get_webhook(sb: Sandbox, _req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """{"url", "status", "disabled", "intent_to_receive", "deliveries", ...}."""
    return sb.webhooks.snapshot()


def delete_webhook(sb: Sandbox, _req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Remove the webhook: nothing more is sent."""
    return sb.webhooks.unsubscribe()


def get_limits(sb: Sandbox, _req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """The limits in force and the current counts."""
    return sb.limits.snapshot()


def set_limits(sb: Sandbox, req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Change limits, e.g. {"day": 1000} for Xero's Starter tier; reset restores them."""
    return sb.limits.configure(**_body(req)).as_dict()


def get_settings(sb: Sandbox, _req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """The switchable behaviours in force (see sandbox.settings)."""
    return sb.settings.as_dict()


def set_settings(sb: Sandbox, req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Change any subset of the settings; reset restores the start-up values."""
    try:
        sb.settings = sb.settings.updated(_body(req))
    except ValueError as exc:
        raise BadRequest(str(exc)) from exc
    return sb.settings.as_dict()


def get_clock(sb: Sandbox, _req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """The sandbox's time."""
    return {"now": sb.clock.now().isoformat()}


def move_clock(sb: Sandbox, req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """{"advance_seconds": n} or {"set": "<ISO 8601>"}."""
    body = _body(req)
    if "advance_seconds" in body:
        seconds = body["advance_seconds"]
        if not isinstance(seconds, int | float) or isinstance(seconds, bool):
            raise BadRequest("'advance_seconds' must be a number")
        now = sb.clock.advance(seconds)
    elif "set" in body:
        if not isinstance(body["set"], str):
            raise BadRequest("'set' must be an ISO 8601 timestamp")
        try:
            now = sb.clock.set(parse_iso(body["set"]))
        except ValueError as exc:
            raise BadRequest(f"'set' is not ISO 8601: {body['set']!r}") from exc
    else:
        raise BadRequest("give 'advance_seconds' or 'set'")
    return {"now": now.isoformat()}


def reset(sb: Sandbox, _req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """Back to the seeded state (data, apps, grants, faults, scheduled mutations, settings,
    limits, log, clock, webhook)."""
    sb.reset()
    return {"ok": True, "now": sb.clock.now().isoformat()}


def info(sb: Sandbox, _req: Request, _p: dict[str, str]) -> dict[str, Any]:
    """How this sandbox was started, and its time."""
    c = sb.config
    return {
        "url": sb.url,
        "seed": c.seed,
        "tenants": c.tenants,
        "suppliers": c.suppliers,
        "rate_limits": c.rate_limits,
        "latency_ms": c.latency_ms,
        "now": sb.clock.now().isoformat(),
    }


def routes() -> list[Route]:
    """Control-plane routes for the server's table (not logged, not faulted)."""
    table: list[tuple[str, str, ControlHandler, int]] = [
        ("GET", "", info, 200),
        ("POST", "/apps", create_app, 201),
        ("GET", "/apps", list_apps, 200),
        ("GET", "/tenants", list_tenants, 200),
        ("POST", "/tenants/(?P<tenant_id>[^/]+)", rename_tenant, 200),
        ("GET", "/users", list_users, 200),
        ("POST", "/users", create_user, 201),
        ("POST", "/users/(?P<email>[^/]+)", change_user, 200),
        ("POST", "/grants", create_grant, 201),
        ("GET", "/grants", list_grants, 200),
        ("POST", "/grants/revoke", revoke_grants, 200),
        ("GET", "/connections", list_connections, 200),
        ("POST", "/disconnect", disconnect, 200),
        ("GET", "/requests", list_requests, 200),
        ("DELETE", "/requests", clear_requests, 200),
        ("GET", "/stats", stats, 200),
        ("POST", "/mutations", mutate, 200),
        ("GET", "/mutations/scheduled", scheduled_mutations, 200),
        ("POST", "/faults", add_fault, 201),
        ("GET", "/faults", list_faults, 200),
        ("DELETE", "/faults", clear_faults, 200),
        ("POST", "/webhooks", set_webhook, 200),
        ("GET", "/webhooks", get_webhook, 200),
        ("DELETE", "/webhooks", delete_webhook, 200),
        ("GET", "/limits", get_limits, 200),
        ("POST", "/limits", set_limits, 200),
        ("GET", "/settings", get_settings, 200),
        ("POST", "/settings", set_settings, 200),
        ("GET", "/clock", get_clock, 200),
        ("POST", "/clock", move_clock, 200),
        ("POST", "/reset", reset, 200),
    ]
    return [
        Route(
            method,
            rf"/_sandbox{path}/?",
            _json_call(handler, status),
            logged=False,
            dispatch_faults=False,
        )
        for method, path, handler, status in table
    ]
