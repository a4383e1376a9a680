"""The sandbox's HTTP micro-framework, on the standard library's ThreadingHTTPServer: requests and
responses, the routing table's entries, what goes on the wire (body faults and gzip), and the
server that parses, routes, writes and hands each request to the application (``WebApp``).

Request flow: parse once -> find the route in a table -> the application answers -> body faults
and gzip (``wire_body``) -> the application records it -> write the whole response in one send.
Keep-alive (HTTP/1.1) is on and per-request work is small, so paging 100,000 contacts is bound by
rendering.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from sandbox import compression
from sandbox import faults as fault_kinds
from sandbox.faults import Fault

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


# A route handler: (the app's state, the request, the path's named groups) -> the answer.
Handler = Callable[[Any, Request, dict[str, str]], Response]


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


class WebApp(Protocol):
    """What the HTTP layer needs of the application it serves."""

    routes: list[Route]

    def now(self) -> datetime:
        """The application's clock (a request's log time)."""

    def compress(self) -> bool:
        """Whether Xero paths' bodies are gzipped for clients that accept it."""

    def respond(self, route: Route | None, req: Request, params: dict[str, str]) -> Response:
        """The answer to a request (``route`` None: no route matched; ``params["allow"]`` then
        lists the methods the path has, if any)."""

    def record(self, started: datetime, req: Request, response: Response,
               bytes_sent: int) -> None:
        """Log a request to a Xero path and what was sent."""


class SandboxHTTPServer(ThreadingHTTPServer):
    """ThreadingHTTPServer carrying the application it serves."""

    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up shutdown
    allow_reuse_address = True
    # socketserver listens with a backlog of 5: a client opening dozens of connections at once
    # (a run over many organisations) overflowed it, and each dropped SYN cost a 1 s
    # retransmit or a reset. Xero's servers take them; so must the sandbox.
    request_queue_size = 1024

    def __init__(self, address: tuple[str, int], app: WebApp) -> None:
        self.app = app
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
        app = self.server.app
        started = app.now()
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
            response = app.respond(route, req, params)
        except Exception as exc:  # a handler bug must answer, not kill the connection silently
            response = json_response(500, {"error": f"sandbox error: {type(exc).__name__}: {exc}"})
            print(f"sandbox: error on {req.method} {req.path}: {exc!r}", file=sys.stderr)
        xero_path = route is None or route.logged
        compress = xero_path and app.compress()
        wire = wire_body(response, req.headers.get("accept-encoding"), compress=compress)
        try:
            # Logged before the answer goes out, so a client reading the log right after its
            # response always finds its call there.
            if xero_path:
                app.record(started, req, response, wire.bytes_sent)
            self._write(response, wire)
        except OSError:
            self.close_connection = True  # the client went away
        finally:
            for callback in response.on_sent:
                callback()

    def _route(self, req: Request) -> tuple[Route | None, dict[str, str]]:
        allowed: list[str] = []
        for route in self.server.app.routes:
            match = route.regex.match(req.path)
            if match is None:
                continue
            if route.method == req.method:
                return route, {k: v for k, v in match.groupdict().items() if v is not None}
            allowed.append(route.method)
        if allowed:
            return None, {"allow": ", ".join(sorted(set(allowed)))}
        return None, {}

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
