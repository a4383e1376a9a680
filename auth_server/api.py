"""The JSON API under ``/api/v1`` for the platform that embeds us (described in openapi.json).

Authenticated by API keys (``Authorization: Bearer <key>``, keys from ``xero-elt apikey
create``); a wrong key counts towards the same per-client back-off as the admin token
(``throttle.py``). JSON in and out, errors ``{"error": {"code", "message"}}`` with the stable
codes of ``ERROR_CODES``; no HTML, no cookies, no CSRF tokens (no browser session can reach
this surface: only the header authenticates).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from auth_server import connections, invites
from auth_server.background import cli_work
from auth_server.errors import (
    InvalidInput,
    InviteError,
    MailError,
    NotFound,
    UnsupportedMediaType,
    XeroCallFailed,
)
from auth_server.support_reference import log_reference, new_reference
from auth_server.web import Request, Response, json_response, parse_json
from store import Connection, ConnectionStatus, StoreError, lifecycle, schedules
from store.jobs import Job, JobsBusy
from store.webhook_outbox import connection_payload

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
OPENAPI_FILE = Path(__file__).with_name("openapi.json")

ERROR_CODES = {
    "unauthorized": 401,  # no key, a wrong key or a revoked one (never told apart)
    "forbidden": 403,  # the key lacks the scope this route needs
    "too_many_attempts": 429,  # wrong keys from this client: wait Retry-After seconds
    "invalid_request": 400,  # a malformed request, or a body not JSON of the documented shape
    "length_required": 411,  # a chunked body: send a Content-Length
    "too_large": 413,  # the body is over the limit
    "uri_too_long": 414,
    "unsupported_media_type": 415,  # a body that is not application/json
    "headers_too_large": 431,
    "invalid_field": 422,  # a field's value is not acceptable (message says which)
    "not_found": 404,  # no such connection, or no such route
    "method_not_allowed": 405,
    "conflict": 409,  # the connection's status does not allow this (message says why)
    "xero_unavailable": 502,  # Xero could not be reached; nothing changed here
    "mail_failed": 502,  # the invite email could be neither sent nor written
    "internal_error": 500,
    "unavailable": 503,  # the server is at its connection cap: retry after Retry-After seconds
    "busy": 429,  # as many background jobs run as the server allows: retry after Retry-After
}
_CODE_OF_STATUS = {status: code for code, status in reversed(ERROR_CODES.items())}


def owns(path: str) -> bool:
    """Whether ``path`` is the API's: its answers are JSON, whatever goes wrong."""
    return path == "/api" or path.startswith("/api/")


def error(code: str, message: str, *, headers: list[tuple[str, str]] | None = None) -> Response:
    """An API error: ``{"error": {"code", "message"}}`` with the code's HTTP status."""
    response = json_response({"error": {"code": code, "message": message}}, ERROR_CODES[code])
    response.headers.extend(headers or [])
    return response


def error_for_status(status: int, message: str) -> Response:
    """An API error for a status decided before routing (a bad request line, a body too large)."""
    response = error(_CODE_OF_STATUS.get(status, "invalid_request"), message)
    response.status = status
    return response


ApiHandler = Callable[[Request], Response]


def api_key_required(handler: ApiHandler, scope: str) -> ApiHandler:
    """Wrap a handler: 401 (or 429 while backing off) without an active API key, 403 without
    ``scope``; the key's id is on the log line of every action it takes."""

    def wrapped(request: Request) -> Response:
        header = request.headers.get("Authorization") or ""
        key = header[7:].strip() if header[:7].lower() == "bearer " else ""
        record = request.app.store.check_api_key(key) if key else None
        if record is not None:
            request.app.admin_failures.success(request.client)
            if not record.allows(scope):
                log.warning("API key %s (scope %s) refused %s %s: needs %s", record.key_id,
                            record.scope, request.method, request.path, scope)
                return error("forbidden", f"This API key's scope ({record.scope}) does not "
                             f"allow this; it needs {scope}.")
            request.actor = f"api:{record.key_id}"
            response = handler(request)
            if request.method != "GET":
                log.info("API key %s: %s %s -> %d", record.key_id, request.method,
                         request.path, response.status)
            return response
        if not key:
            return error("unauthorized", "Send an API key: Authorization: Bearer <key>.",
                         headers=[("WWW-Authenticate", 'Bearer realm="xero-elt api"')])
        wait = request.app.admin_failures.failure_logged(request.client, "API key", log)
        if wait:
            return error("too_many_attempts", "Too many wrong API keys; wait and try again.",
                         headers=[("Retry-After", str(max(1, round(wait))))])
        return error("unauthorized", "That API key is not valid (wrong or revoked).",
                     headers=[("WWW-Authenticate", 'Bearer realm="xero-elt api"')])

    wrapped.__doc__ = handler.__doc__
    return wrapped


def _body(request: Request, allowed: dict[str, type]) -> dict[str, Any]:
    """The JSON object sent, restricted to ``allowed`` fields of the given types."""
    if not request.body:
        return {}
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("Send the body as application/json.")
    data = parse_json(request.body)
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object.")
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(unknown)}.")
    for name, kind in allowed.items():
        if name in data and not isinstance(data[name], kind):
            raise InvalidInput(f"{name} must be a {kind.__name__}.", field=name)
    return data


def _connection(request: Request) -> Connection:
    """The path's connection; a malformed id is simply not found (no such route target)."""
    try:
        return invites.get_connection(request.app.store, request.params["connection_id"])
    except InvalidInput as exc:
        raise NotFound(str(exc)) from None


def _invite_answer(conn: Connection, link: str) -> dict[str, Any]:
    return {"connection_id": conn.connection_id, "invite_id": conn.connection_id, "link": link,
            "expires_at": connection_payload(conn)["invite_expires_at"]}


def _one(conn: Connection) -> dict[str, Any]:
    return {"connection": connection_payload(conn)}


def _answers(handler: ApiHandler) -> ApiHandler:
    """Turn the auth server's exceptions into API errors with their stable codes."""

    def wrapped(request: Request) -> Response:
        try:
            return handler(request)
        except NotFound as exc:
            return error("not_found", str(exc))
        except UnsupportedMediaType as exc:
            return error("unsupported_media_type", str(exc))
        except InvalidInput as exc:
            return error("invalid_field" if exc.field else "invalid_request", str(exc))
        except (InviteError, lifecycle.TransitionRefused) as exc:
            return error("conflict", str(exc))
        except XeroCallFailed as exc:
            # Xero's own words (its error body) stay in the log, under the reference we show.
            ref = new_reference(request.organisation)
            log_reference(ref, status=502, heading="Xero call failed", path=request.path,
                          detail=str(exc))
            return error("xero_unavailable", "Xero could not complete this; nothing changed "
                         f"here. Support reference: {ref.code}.")
        except MailError as exc:
            return error("mail_failed", str(exc))

    wrapped.__doc__ = handler.__doc__
    return wrapped


def endpoint(scope: str) -> Callable[[ApiHandler], ApiHandler]:
    """An authenticated API route that needs ``scope`` (``read``, ``write`` or ``admin``)."""

    def decorate(handler: ApiHandler) -> ApiHandler:
        return api_key_required(_answers(handler), scope)

    return decorate


@endpoint("write")
def create_invite(request: Request) -> Response:
    """``POST /api/v1/invites``: a new invite; its link, which the platform may send itself."""
    data = _body(request, {"company": str, "email": str, "send_email": bool, "language": str})
    conn, link = invites.create_invite(request.app.store, request.app.settings,
                                       data.get("company", ""), data.get("email", ""),
                                       send_email=data.get("send_email", True),
                                       language=data.get("language"))
    return json_response(_invite_answer(conn, link), 201)


@endpoint("read")
def list_connections(request: Request) -> Response:
    """``GET /api/v1/connections``: every connection record."""
    invites.expire_stale_invites(request.app.store)
    conns = request.app.store.list_connections()
    return json_response({"connections": [connection_payload(c) for c in conns]})


@endpoint("read")
def get_connection(request: Request) -> Response:
    """``GET /api/v1/connections/{id}``: the connection and its latest background jobs."""
    conn = _connection(request)
    jobs = request.app.store.list_jobs(conn.connection_id, limit=5)
    return json_response({**_one(conn), "jobs": [j.summary() for j in jobs]})


@endpoint("write")
def resend(request: Request) -> Response:
    """``POST …/resend``: a new link (the reconnect link for one needing reconnection)."""
    data = _body(request, {"send_email": bool})
    conn, link = invites.resend_invite(request.app.store, request.app.settings,
                                       _connection(request).connection_id,
                                       send_email=data.get("send_email", True))
    return json_response(_invite_answer(conn, link))


@endpoint("write")
def withdraw(request: Request) -> Response:
    """``POST …/withdraw``: an invite not connected yet stops working."""
    conn = _connection(request)
    if conn.status in (ConnectionStatus.CONNECTED, ConnectionStatus.NEEDS_RECONNECTION):
        raise InviteError(f"{conn.connection_id} is {conn.status}: disconnect it instead")
    if conn.status == ConnectionStatus.PURGED:
        raise InviteError(f"{conn.connection_id} is purged")
    conn = connections.disconnect(request.app.store, request.app.xero, conn.connection_id,
                                  reason="invite withdrawn")
    return json_response(_one(conn))


@endpoint("admin")
def disconnect(request: Request) -> Response:
    """``POST …/disconnect``: at Xero, then here."""
    conn = _connection(request)
    if conn.status == ConnectionStatus.PURGED:
        raise InviteError(f"{conn.connection_id} is purged")
    conn = connections.disconnect(request.app.store, request.app.xero, conn.connection_id,
                                  reason="disconnected through the API")
    return json_response(_one(conn))


# How long a client refused for the job cap should wait: jobs take seconds to minutes.
JOBS_RETRY_AFTER_SECONDS = 30


def _job_answer(request: Request, job: Job | None) -> Response:
    conn = request.app.store.get_connection(_connection(request).connection_id)
    return json_response({"job": job.summary() if job else None, **_one(conn)}, 202)


def _busy(exc: JobsBusy) -> Response:
    return error("busy", f"{exc}; try again later.",
                 headers=[("Retry-After", str(JOBS_RETRY_AFTER_SECONDS))])


@endpoint("write")
def sync(request: Request) -> Response:
    """``POST …/sync``: start a sync of this organisation (202 with the job; a sync already
    queued or running is answered with that job)."""
    conn = _connection(request)
    if conn.status != ConnectionStatus.CONNECTED or not conn.tenant_id:
        raise InviteError(f"{conn.connection_id} is {conn.status}, not connected")
    try:
        # "Sync now" reads every entity, whatever the schedule says is due.
        job = request.app.first_sync.start(conn, requested_by=request.actor or "api",
                                           capped=True, every_entity=True)
    except JobsBusy as exc:
        return _busy(exc)
    return _job_answer(request, job)


@endpoint("admin")
def purge(request: Request) -> Response:
    """``POST …/purge``: remove the organisation's data, state and tokens (202 with the job;
    the status becomes ``purging`` at once and ``purged`` when done, and ``connection.purged``
    is sent; a failed purge sends ``purge.failed`` and may simply be asked for again)."""
    conn = _connection(request)
    if conn.status == ConnectionStatus.PURGED:
        done = request.app.store.list_jobs(conn.connection_id)
        return _job_answer(request, next((j for j in done if j.kind == "purge"), None))
    actor = request.actor or "api"
    work = cli_work(request.app.store, ["purge", "--connection", conn.connection_id, "--yes",
                                        "--by", actor], log_name=f"purge-{conn.connection_id}")
    try:
        job, created = request.app.jobs.submit("purge", conn.connection_id, work,
                                               requested_by=actor)
    except JobsBusy as exc:
        return _busy(exc)
    if created and conn.status != ConnectionStatus.PURGING:
        # From now on no run loads it, even before the purge's process has started.
        lifecycle.apply(request.app.store, conn.connection_id, lifecycle.Event.PURGE_REQUESTED,
                        status_reason=f"purge requested by {actor}", sync_state=None)
    return _job_answer(request, job)


def _schedule_answer(request: Request, conn: Connection) -> Response:
    config = schedules.settings()
    mine = request.app.store.schedule_overrides().get(conn.connection_id, {})
    return json_response({"connection_id": conn.connection_id, "schedule": {
        entity: {"every_minutes": mine.get(entity, config.minutes(entity)),
                 "default_minutes": config.minutes(entity), "overridden": entity in mine}
        for entity in schedules.scheduled_entities()}})


@endpoint("read")
def get_schedule(request: Request) -> Response:
    """``GET …/schedule``: how often each entity of this organisation is read (the defaults,
    ``[pipelines.schedule]``, unless the connection has its own)."""
    return _schedule_answer(request, _connection(request))


@endpoint("write")
def put_schedule(request: Request) -> Response:
    """``PUT …/schedule``: ``{"every_minutes": {"suppliers": 5, "accounts": null}}`` sets the
    connection's own intervals (whole minutes, 1 to 43,200); null restores an entity's
    default; entities not named keep what they have."""
    conn = _connection(request)
    if conn.status in (ConnectionStatus.PURGING, ConnectionStatus.PURGED):
        raise InviteError(f"{conn.connection_id} is {conn.status}")
    data = _body(request, {"every_minutes": dict})
    if "every_minutes" not in data:
        raise InvalidInput("Send every_minutes: {entity: minutes or null}.")
    every = data["every_minutes"]
    for entity, minutes in every.items():
        if minutes is not None and (isinstance(minutes, bool)
                                    or not isinstance(minutes, int | float)):
            raise InvalidInput(f"every_minutes.{entity} must be a whole number of minutes or "
                               "null.", field=f"every_minutes.{entity}")
    try:
        request.app.store.set_schedule(conn.connection_id, every)
    except schedules.BadSchedule as exc:
        raise InvalidInput(f"every_minutes: {exc}.", field="every_minutes") from None
    return _schedule_answer(request, conn)


@endpoint("read")
def get_job(request: Request) -> Response:
    """``GET /api/v1/jobs/{id}``: a background job's state and outcome."""
    try:
        job = request.app.store.get_job(request.params["job_id"])
    except StoreError:
        raise NotFound("There is no such job.") from None
    return json_response({"job": job.summary()})


@cache
def _openapi() -> bytes:
    return OPENAPI_FILE.read_bytes()


def openapi(request: Request) -> Response:
    """``GET /api/v1/openapi.json``: this API's description (no key needed)."""
    return Response(body=_openapi(), content_type="application/json", no_store=False)


def not_found(request: Request) -> Response:
    """Unknown path under ``/api/``."""
    return error("not_found", "There is no API route at this path.")


def method_not_allowed(request: Request, allowed: list[str]) -> Response:
    """Known path, wrong method."""
    return error("method_not_allowed", "This route does not accept that method.",
                 headers=[("Allow", ", ".join(sorted(set(allowed))))])


def internal_error(request: Request) -> Response:
    """An unexpected failure (logged with its traceback by the server)."""
    return error("internal_error", "Something went wrong on our side; try again later.")


ID = r"(?P<connection_id>[^/]{1,64})"
ROUTES: list[tuple[str, str, ApiHandler]] = [
    ("GET", rf"{PREFIX}/openapi\.json", openapi),
    ("POST", rf"{PREFIX}/invites", create_invite),
    ("GET", rf"{PREFIX}/connections", list_connections),
    ("GET", rf"{PREFIX}/connections/{ID}", get_connection),
    ("POST", rf"{PREFIX}/connections/{ID}/resend", resend),
    ("POST", rf"{PREFIX}/connections/{ID}/withdraw", withdraw),
    ("POST", rf"{PREFIX}/connections/{ID}/disconnect", disconnect),
    ("POST", rf"{PREFIX}/connections/{ID}/sync", sync),
    ("POST", rf"{PREFIX}/connections/{ID}/purge", purge),
    ("GET", rf"{PREFIX}/connections/{ID}/schedule", get_schedule),
    ("PUT", rf"{PREFIX}/connections/{ID}/schedule", put_schedule),
    ("GET", rf"{PREFIX}/jobs/(?P<job_id>[^/]{{1,64}})", get_job),
]
