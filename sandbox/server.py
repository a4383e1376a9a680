"""The sandbox's HTTP server: one origin serving Xero's identity, connections and accounting paths
plus the `/_sandbox/` control plane, on the standard library's ThreadingHTTPServer.

Request flow: parse once -> find the route in a table -> (faults for non-accounting Xero paths)
-> handler -> body faults and gzip (`wire_body`) -> append to the request log -> write the whole
response in one send. Keep-alive (HTTP/1.1) is on and per-request work is small, so paging
100,000 contacts is bound by rendering.

Accounting calls are checked in Xero's order: Bearer token (401 AuthenticationUnsuccessful),
expiry (401 TokenExpired), tenant header and connection (403), the user's role (403 while still
connected), scope (401 AuthorizationUnsuccessful), rate limits (429), then scheduled mutations
due, then faults, then `sandbox.accounting`.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox import compression
from sandbox import faults as fault_kinds
from sandbox.clock import Clock
from sandbox.faults import Fault, FaultBook
from sandbox.grants import Grant, GrantStore, JwtSigner
from sandbox.limits import LimitConfig, RateLimiter
from sandbox.schedule import MutationSchedule
from sandbox.settings import SandboxSettings
from sandbox.webhooks import Webhooks

REDACTED_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})
JSON_TYPE = "application/json; charset=utf-8"


# --- requests and responses -----------------------------------------------------------------


@dataclass
class Request:
    """One parsed HTTP request (header names lower-case)."""

    method: str
    path: str
    query: dict[str, str]
    query_all: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    fault: str | None = None  # kind of fault applied, for the request log

    def form_all(self) -> dict[str, list[str]]:
        """The urlencoded form body, every value of every field."""
        return parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)

    def form(self) -> dict[str, str]:
        """The urlencoded form body, first value of each field."""
        return {k: v[0] for k, v in self.form_all().items()}

    def json(self) -> Any:
        """The JSON body (an empty body is `{}`); ValueError if it is not JSON."""
        if not self.body.strip():
            return {}
        try:
            return json.loads(self.body)
        except json.JSONDecodeError as exc:
            raise ValueError(f"request body is not JSON: {exc.msg}") from exc

    def cookie(self, name: str) -> str | None:
        """A cookie's value from the Cookie header."""
        for part in self.headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None


@dataclass
class Response:
    """What a handler answers; `fault` mangles it on the way out (drop, malformed, truncated,
    corrupt_gzip)."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    fault: Fault | None = None
    tenant_id: str | None = None
    on_sent: list[Callable[[], None]] = field(default_factory=list)


def json_response(status: int, obj: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer."""
    body = json.dumps(obj).encode()
    return Response(status, {"Content-Type": JSON_TYPE, **(headers or {})}, body)


def html_response(status: int, html: str, headers: dict[str, str] | None = None) -> Response:
    """An HTML page."""
    return Response(
        status, {"Content-Type": "text/html; charset=utf-8", **(headers or {})}, html.encode()
    )


def redirect(location: str, headers: dict[str, str] | None = None) -> Response:
    """A 302 to `location`."""
    return Response(302, {"Location": location, **(headers or {})})


def problem(status: int, detail: str, headers: dict[str, str] | None = None) -> Response:
    """Xero's RFC 7807-like gateway error body (REFERENCE 6.1)."""
    body = {
        "Type": None,
        "Title": HTTPStatus(status).phrase,
        "Status": status,
        "Detail": detail,
        "Instance": str(uuid.uuid4()),
        "Extensions": {},
    }
    return json_response(
        status, body, {"Xero-Correlation-Id": str(uuid.uuid4()), **(headers or {})}
    )


def control_error(status: int, message: str) -> Response:
    """A control-plane error: `{"error": message}`."""
    return json_response(status, {"error": message})


Handler = Callable[["Sandbox", Request, dict[str, str]], Response]


@dataclass(frozen=True)
class Route:
    """One entry of the routing table."""

    method: str
    pattern: str
    handler: Handler
    logged: bool = True  # goes into the request log (everything but the control plane)
    dispatch_faults: bool = True  # faults applied around the handler by the dispatcher
    regex: re.Pattern[str] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "regex", re.compile(f"^{self.pattern}$", re.IGNORECASE))


# --- the request log ------------------------------------------------------------------------


class _Tally:
    """Calls per status and response body bytes sent, for one slice of the stats."""

    __slots__ = ("by_status", "bytes_out")

    def __init__(self) -> None:
        self.by_status: Counter[str] = Counter()
        self.bytes_out = 0

    def add(self, status: str, bytes_out: int) -> None:
        self.by_status[status] += 1
        self.bytes_out += bytes_out

    def summary(self) -> dict[str, Any]:
        return {
            "total": sum(self.by_status.values()),
            "by_status": dict(self.by_status),
            "bytes_out": self.bytes_out,
        }


class RequestLog:
    """Every request to a Xero path, newest last (the latest `maxlen` kept, to bound memory),
    plus counters for `GET /_sandbox/stats` that count everything since the last clear."""

    def __init__(self, maxlen: int = 50_000) -> None:
        self._entries: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self._all = _Tally()
        self._by_path: defaultdict[str, _Tally] = defaultdict(_Tally)
        self._by_tenant: defaultdict[str, _Tally] = defaultdict(_Tally)
        self._faults: Counter[str] = Counter()

    def append(self, entry: dict[str, Any], bytes_out: int = 0) -> None:
        """Record one request and the body bytes its answer puts on the wire."""
        status = str(entry["status"]) if entry["status"] is not None else "none"
        with self._lock:
            self._entries.append(entry)
            self._all.add(status, bytes_out)
            self._by_path[entry["path"]].add(status, bytes_out)
            if entry["tenant_id"]:
                self._by_tenant[entry["tenant_id"]].add(status, bytes_out)
            if entry.get("fault"):
                self._faults[entry["fault"]] += 1

    def entries(
        self, path: str | None = None, tenant_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Entries, optionally only those under a path prefix and/or for a tenant."""
        with self._lock:
            items = list(self._entries)
        if path:
            items = [e for e in items if e["path"].lower().startswith(path.lower())]
        if tenant_id:
            items = [e for e in items if e["tenant_id"] == tenant_id]
        return items

    def clear(self) -> None:
        """Empty the log and its counters."""
        with self._lock:
            self._entries.clear()
            self._all = _Tally()
            self._by_path.clear()
            self._by_tenant.clear()
            self._faults.clear()

    def stats(self) -> dict[str, Any]:
        """Counters per status, path and tenant (calls and body bytes) since the last clear."""
        with self._lock:
            return {
                **self._all.summary(),
                "rate_limited": self._all.by_status.get("429", 0),
                "faults": dict(self._faults),
                "by_path": {p: t.summary() for p, t in self._by_path.items()},
                "by_tenant": {t: tally.summary() for t, tally in self._by_tenant.items()},
            }


# --- the sandbox's state --------------------------------------------------------------------


@dataclass(frozen=True)
class SandboxConfig:
    """How a sandbox was started (also what `/_sandbox/reset` reseeds with)."""

    host: str = "127.0.0.1"
    port: int = 0
    seed: int = 42
    tenants: int = 2
    suppliers: int = 250
    rate_limits: bool = True
    latency_ms: int = 0


class Sandbox:
    """All of one sandbox's state: world (data), identity, limits, faults, clock and log."""

    def __init__(self, config: SandboxConfig) -> None:
        # Imported here, not at the top, so `--help` and the HTTP plumbing load without it.
        from sandbox import data

        self.config = config
        self.clock = Clock()
        self.started_at = self.clock.now()
        self.limits = RateLimiter(self.clock, LimitConfig(enforced=config.rate_limits))
        self.faults = FaultBook()
        self.schedule = MutationSchedule()
        self.settings = SandboxSettings()
        self.log = RequestLog()
        self.webhooks = Webhooks(self.clock, lambda: self.settings, lambda: self.url)
        self.signer = JwtSigner()
        self.grants = GrantStore(self.signer, issuer="")
        self.data = data
        self.world: Any = None
        self._users: dict[str, Any] = {}
        self.url = ""
        self._seed()

    def _seed(self) -> None:
        world = self.data.seed_world(
            seed=self.config.seed,
            tenants=self.config.tenants,
            suppliers=self.config.suppliers,
            start=self.started_at,
        )
        self.world = world
        self._users = {u.email.lower(): u for u in world.users}

    def set_url(self, url: str) -> None:
        """The origin clients reach us at (also the token issuer)."""
        self.url = url
        self.grants.issuer = url

    def reset(self) -> None:
        """Back to the seeded state: data, apps, grants, faults, scheduled mutations, settings,
        limits, log, clock and the webhook."""
        self.clock.reset()
        self.webhooks.reset()
        self.faults.clear()
        self.schedule.clear()
        self.settings = SandboxSettings()
        self.limits.reset()
        self.grants.reset()
        self._seed()
        self.log.clear()

    def apply_mutation(self, org: Any, body: dict[str, Any]) -> dict[str, Any]:
        """Apply a mutation now (sandbox.mutations) and queue the webhook event it causes."""
        from sandbox import mutations

        result = mutations.apply_mutation(org, body, self.clock.now())
        self.webhooks.mutation_applied(org.tenant_id, body, result)
        return result

    def user(self, email: str) -> Any | None:
        """A seeded (or added) user by email, case-insensitively."""
        return self._users.get(email.strip().lower())

    def add_user(self, user: Any) -> None:
        """Add a user to the world (control plane)."""
        self.world.users.append(user)
        self._users[user.email.lower()] = user

    def organisation(self, tenant_id: str | None) -> Any | None:
        """An organisation by tenant id (case-insensitive), or None."""
        if not tenant_id:
            return None
        orgs = self.world.organisations
        return orgs.get(tenant_id) or orgs.get(tenant_id.strip().lower())

    def latency(self) -> None:
        """The `--latency-ms` delay of accounting and connections responses."""
        if self.config.latency_ms > 0:
            time.sleep(self.config.latency_ms / 1000)


# --- shared checks for the API paths ------------------------------------------------------


def bearer_grant(sb: Sandbox, req: Request, now: datetime) -> Grant | Response:
    """The grant behind the request's access token, or the 401 Xero answers."""
    check = sb.grants.check_bearer(req.headers.get("authorization"), now)
    if check.problem == "expired" and check.expired_at is not None:
        return problem(401, f"TokenExpired: token expired at {check.expired_at:%m/%d/%Y %H:%M:%S}")
    if check.grant is None:
        return problem(401, "AuthenticationUnsuccessful")
    return check.grant


def user_standing(sb: Sandbox, email: str) -> str | None:
    """May this user's grants read their organisations? "admin", "standard" (a Standard user
    allowed to connect apps: reads, with masking), or None (Xero's 403 on accounting calls)."""
    user = sb.user(email)
    if user is None:
        return None
    if user.role == "admin":
        return "admin"
    return "standard" if user.connect_apps else None


def apply_scheduled_mutations(sb: Sandbox, req: Request, org: Any) -> None:
    """Apply the armed mutations due before this request (see sandbox.schedule). A mutation that
    fails is recorded with its error; the request is answered either way."""
    due = sb.schedule.due(org.tenant_id, req.path)
    for item in due:
        now = sb.clock.now()
        request = {"method": req.method, "path": req.path, "query": req.query}
        try:
            result = sb.apply_mutation(org, item.body)
        except ValueError as exc:
            sb.schedule.applied(item, now, request, error=str(exc))
        else:
            sb.schedule.applied(item, now, request, result=result)


def apply_faults(
    sb: Sandbox, req: Request, tenant_id: str | None
) -> tuple[Response | None, Fault | None]:
    """Take the next matching fault. Returns a replacement response (status/rate_limit), or a
    fault to apply on the way out (drop/malformed/truncated/corrupt_gzip); `slow` just waits."""
    fault = sb.faults.take(req.method, req.path, tenant_id)
    if fault is None:
        return None, None
    req.fault = fault.kind
    if fault.kind == "slow":
        time.sleep(fault.seconds or 0)
        return None, None
    if fault.kind == "status":
        status, headers, body = fault_kinds.status_answer(fault)
        return Response(status, headers, body), None
    if fault.kind == "rate_limit":
        status, headers, body = fault_kinds.rate_limit_answer(fault, sb.clock.now())
        return Response(status, headers, body), None
    if fault.kind == "offline":
        return Response(*fault_kinds.offline_answer()), None
    return None, fault


def handle_accounting_call(sb: Sandbox, req: Request, params: dict[str, str]) -> Response:
    """`/api.xro/2.0/<Resource>[/<subpath>]`: Xero's checks in Xero's order, then the data."""
    from sandbox import accounting

    now = sb.clock.now()
    grant = bearer_grant(sb, req, now)
    if isinstance(grant, Response):
        return grant
    tenant_id = (req.headers.get("xero-tenant-id") or "").strip()
    org = sb.organisation(tenant_id)
    if org is None or not sb.grants.is_connected(grant.user_email, grant.client_id, org.tenant_id):
        return problem(403, "AuthenticationUnsuccessful", sb.limits.app_headers(grant.client_id))
    standing = user_standing(sb, grant.user_email)
    if standing is None:  # still connected, but the user lost the right (REFERENCE 0: 403)
        return problem(403, "AuthenticationUnsuccessful", sb.limits.app_headers(grant.client_id))
    resource = _canonical_resource(params["resource"], accounting.ACCOUNTING_RESOURCES)
    if resource is None:
        return Response(
            404,
            {"Content-Type": "text/plain; charset=utf-8", "Xero-Correlation-Id": str(uuid.uuid4())},
            b"The resource you're looking for cannot be found",
            tenant_id=org.tenant_id,
        )
    required = accounting.REQUIRED_SCOPE.get(resource)
    if required and required not in grant.scopes and f"{required}.read" not in grant.scopes:
        return problem(401, "AuthorizationUnsuccessful", sb.limits.app_headers(grant.client_id))

    admission = sb.limits.admit(grant.client_id, org.tenant_id)
    limit_headers = {**admission.headers, "Xero-Correlation-Id": str(uuid.uuid4())}
    if not admission.admitted:
        headers = {**limit_headers, "X-Rate-Limit-Problem": admission.problem or "minute"}
        if admission.retry_after is not None:
            headers["Retry-After"] = str(admission.retry_after)
        return Response(429, headers, b"", tenant_id=org.tenant_id)
    try:
        apply_scheduled_mutations(sb, req, org)
        sb.latency()
        replacement, late_fault = apply_faults(sb, req, org.tenant_id)
        if replacement is not None:
            replacement.headers = {**limit_headers, **replacement.headers}
            replacement.tenant_id = org.tenant_id
            replacement.on_sent.append(admission.release)
            return replacement
        app = sb.grants.apps.get(grant.client_id)
        status, headers, body = accounting.handle_accounting(
            org,
            resource,
            params.get("subpath") or None,
            req.query,
            req.headers,
            now,
            app.name if app else "",
            accounting.ReadPolicy(
                high_volume_threshold=sb.settings.high_volume_threshold,
                modified_since_exempt=sb.settings.high_volume_exempts_modified_since,
                standard_user=standing == "standard",
            ),
        )
    except BaseException:
        admission.release()
        raise
    response = Response(status, {**headers, **limit_headers}, body, late_fault, org.tenant_id)
    response.on_sent.append(admission.release)
    return response


def _canonical_resource(name: str, known: Iterable[str]) -> str | None:
    lowered = name.lower()
    for resource in known:
        if resource.lower() == lowered:
            return resource
    return None


def not_found(_sb: Sandbox, _req: Request, _params: dict[str, str]) -> Response:
    """Unknown path."""
    return Response(404, {"Content-Type": "text/plain; charset=utf-8"}, b"Not Found")


def build_routes() -> list[Route]:
    """The routing table: identity, connections, accounting, control plane."""
    from sandbox import control, identity

    return [
        *identity.routes(),
        Route(
            "GET",
            r"/api\.xro/2\.0/(?P<resource>[^/]+)(?:/(?P<subpath>.+))?",
            handle_accounting_call,
            dispatch_faults=False,
        ),
        *control.routes(),
    ]


# --- what goes on the wire -----------------------------------------------------------------


@dataclass(frozen=True)
class WireBody:
    """A response body as sent: content-coding headers, the bytes, and how many of them go out
    (fewer than all for a `truncated` fault, none for `drop`)."""

    headers: dict[str, str]
    body: bytes
    bytes_sent: int


def wire_body(response: Response, accept_encoding: str | None, *, compress: bool) -> WireBody:
    """Apply the body faults and gzip (when `compress` and the client accepts it) to `response`.

    Order matters: `malformed` damages the plain body, then it is compressed, so the client's
    decoded body is what is broken; `truncated` cuts the stream as sent (compressed or not).
    """
    kind = response.fault.kind if response.fault is not None else None
    if kind == "drop":
        return WireBody({}, b"", 0)
    body = response.body
    if kind == "malformed":
        body = fault_kinds.malformed(body)
    compressible = compress and bool(body) and compression.is_compressible(
        response.headers.get("Content-Type")
    )
    gzipped = compressible and compression.accepts_gzip(accept_encoding)
    headers = {"Vary": "Accept-Encoding"} if compressible else {}
    if kind == "corrupt_gzip":
        body = compression.corrupt_gzip(body) if gzipped else fault_kinds.malformed(body)
    elif gzipped:
        body = compression.gzip_body(body)
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    sent = len(body) // 2 if kind == "truncated" else len(body)
    return WireBody(headers, body, sent)


# --- the HTTP layer ------------------------------------------------------------------------


class SandboxHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the sandbox and its routes."""

    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up shutdown
    allow_reuse_address = True
    # socketserver listens with a backlog of 5: a client opening dozens of connections at once
    # (a run over many organisations) overflowed it, and each dropped SYN cost a 1 s
    # retransmit or a reset. Xero's servers take them; so must the sandbox.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.routes = build_routes()
        super().__init__(address, SandboxRequestHandler)


class SandboxRequestHandler(BaseHTTPRequestHandler):
    """Parses, routes, writes and logs; the logic lives in the route handlers."""

    protocol_version = "HTTP/1.1"
    server_version = "xero-elt-sandbox"
    sys_version = ""
    disable_nagle_algorithm = True
    server: SandboxHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is the record."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def _dispatch(self) -> None:
        sb = self.server.sandbox
        started = sb.clock.now()
        split = urlsplit(self.path)
        path = unquote(split.path) or "/"
        query_all = parse_qs(split.query, keep_blank_values=True)
        headers = {k.lower(): v for k, v in self.headers.items()}
        length = int(headers.get("content-length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        req = Request(
            method=self.command,
            path=path,
            query={k: v[0] for k, v in query_all.items()},
            query_all=query_all,
            headers=headers,
            body=body,
        )
        route, params = self._route(req)
        try:
            response = self._respond(sb, route, req, params)
        except Exception as exc:  # a handler bug must answer, not kill the connection silently
            response = json_response(500, {"error": f"sandbox error: {type(exc).__name__}: {exc}"})
            print(f"sandbox: error on {req.method} {req.path}: {exc!r}", file=sys.stderr)
        xero_path = route is None or route.logged
        compress = xero_path and sb.settings.compress
        wire = wire_body(response, req.headers.get("accept-encoding"), compress=compress)
        try:
            # Logged before the answer goes out, so a client reading the log right after its
            # response always finds its call there.
            if xero_path:
                sb.log.append(self._log_entry(started, req, response), wire.bytes_sent)
            self._write(response, wire)
        except OSError:
            self.close_connection = True  # the client went away
        finally:
            for callback in response.on_sent:
                callback()

    @staticmethod
    def _log_entry(started: datetime, req: Request, response: Response) -> dict[str, Any]:
        dropped = response.fault is not None and response.fault.kind == "drop"
        return {
            "time": started.isoformat(),
            "method": req.method,
            "path": req.path,
            "query": req.query,
            "status": None if dropped else response.status,
            "tenant_id": response.tenant_id or req.headers.get("xero-tenant-id"),
            "headers": {
                k: ("REDACTED" if k in REDACTED_HEADERS else v) for k, v in req.headers.items()
            },
            "fault": req.fault,
        }

    def _route(self, req: Request) -> tuple[Route | None, dict[str, str]]:
        allowed: list[str] = []
        for route in self.server.routes:
            match = route.regex.match(req.path)
            if match is None:
                continue
            if route.method == req.method:
                return route, {k: v for k, v in match.groupdict().items() if v is not None}
            allowed.append(route.method)
        if allowed:
            return None, {"allow": ", ".join(sorted(set(allowed)))}
        return None, {}

    def _respond(
        self, sb: Sandbox, route: Route | None, req: Request, params: dict[str, str]
    ) -> Response:
        if route is None:
            if "allow" in params:
                return Response(
                    405,
                    {"Allow": params["allow"], "Content-Type": "text/plain; charset=utf-8"},
                    b"Method Not Allowed",
                )
            return not_found(sb, req, params)
        if not route.dispatch_faults:
            return route.handler(sb, req, params)
        replacement, late_fault = apply_faults(sb, req, req.headers.get("xero-tenant-id"))
        if replacement is not None:
            return replacement
        response = route.handler(sb, req, params)
        if late_fault is not None:
            response.fault = late_fault
        return response

    def _write(self, response: Response, wire: WireBody) -> None:
        if response.fault is not None and response.fault.kind == "drop":
            self._hang_up()
            return
        try:
            phrase = HTTPStatus(response.status).phrase
        except ValueError:
            phrase = ""
        lines = [f"HTTP/1.1 {response.status} {phrase}"]
        lines.append(f"Date: {formatdate(usegmt=True)}")
        lines.append(f"Server: {self.server_version}")
        for name, value in {**response.headers, **wire.headers}.items():
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(wire.body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + wire.body[: wire.bytes_sent])
        if wire.bytes_sent < len(wire.body):  # truncated: promise it all, send half, hang up
            self._hang_up()

    def _hang_up(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


# --- running it -----------------------------------------------------------------------------


@dataclass
class RunningSandbox:
    """A sandbox serving in a background thread (see `start_sandbox`)."""

    url: str
    sandbox: Sandbox
    server: SandboxHTTPServer
    thread: threading.Thread

    def shutdown(self) -> None:
        """Stop serving and close the listening socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def start_sandbox(
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    seed: int = 42,
    tenants: int = 2,
    suppliers: int = 250,
    rate_limits: bool = True,
    latency_ms: int = 0,
) -> RunningSandbox:
    """Seed and start a sandbox in this process; returns once it accepts connections."""
    config = SandboxConfig(host, port, seed, tenants, suppliers, rate_limits, latency_ms)
    sandbox = Sandbox(config)
    server = SandboxHTTPServer((host, port), sandbox)
    bound_host, bound_port = server.server_address[:2]
    url = f"http://{bound_host}:{bound_port}"
    sandbox.set_url(url)
    threading.Thread(target=sandbox.signer.warm_up, name="sandbox-jwt-key", daemon=True).start()
    thread = threading.Thread(target=server.serve_forever, name="sandbox-http", daemon=True)
    thread.start()
    return RunningSandbox(url, sandbox, server, thread)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The `xero-elt sandbox` / `python -m sandbox` command line."""
    parser = argparse.ArgumentParser(
        prog="xero-elt sandbox",
        description="A local, stateful Xero for tests, demos and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0: a free one)")
    parser.add_argument("--seed", type=int, default=42, help="seed of the generated data (42)")
    parser.add_argument("--tenants", type=_non_negative, default=2, help="organisations (2)")
    parser.add_argument(
        "--suppliers", type=_non_negative, default=250, help="suppliers per organisation (250)"
    )
    parser.add_argument(
        "--no-rate-limits", action="store_true", help="count calls but never answer 429"
    )
    parser.add_argument(
        "--latency-ms", type=_non_negative, default=0, help="delay of each API response (0)"
    )
    return parser.parse_args(argv)


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run a sandbox until SIGTERM/SIGINT. First stdout line: `sandbox listening on <url>`."""
    args = parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        running = start_sandbox(
            host=args.host,
            port=args.port,
            seed=args.seed,
            tenants=args.tenants,
            suppliers=args.suppliers,
            rate_limits=not args.no_rate_limits,
            latency_ms=args.latency_ms,
        )
    except OSError as exc:
        print(f"sandbox: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    print(f"sandbox listening on {running.url}", flush=True)
    while not stop.wait(0.1):
        pass
    running.shutdown()
    return 0
